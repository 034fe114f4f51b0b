"""``shared_task`` and ``current_app``: Celery's names for tasks and an app of no app in
particular (the reusable apps of a Django project)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

from pgqueue import current
from pgqueue.celery import registry
from pgqueue.celery.app import Celery

_default: list[Celery] = []


def current_celery() -> Celery:
    """The current app if it is a Celery one; else a default one, as Celery makes."""
    try:
        app = current.current()
    except RuntimeError:
        app = None
    if isinstance(app, Celery):
        return app
    if not _default:  # a race makes two; one is kept, as harmless as Celery's default app
        _default.append(Celery())
    return _default[0]


class SharedTask:
    """What ``@shared_task`` returns: the task of that name in the current app.

    Celery's decorator for reusable apps (Django apps): the function is a task of
    every Celery app, those made later included, and this object forwards to the
    current app's task (``delay``, ``s``, ``name``...).
    """

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.__wrapped__ = fn
        self.__name__ = fn.__name__
        self.__qualname__ = getattr(fn, "__qualname__", fn.__name__)
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self._options = options

    def _task(self) -> Any:
        app = current_celery()
        fn = self.__wrapped__
        task = app.tasks.get(self._options.get("name") or app.gen_task_name(
            fn.__name__, getattr(fn, "__module__", None) or "__main__"))
        if task is None:  # the app skipped registration (made through App.__new__): now
            task = app.task(**self._options)(fn)
        return task

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self._task(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._task()(*args, **kwargs)

    def __or__(self, other: Any) -> Any:
        return self._task() | other

    def __repr__(self) -> str:
        name = self._options.get("name") or f"{self.__module__}.{self.__name__}"
        return f"<@shared_task {name}>"


@overload
def shared_task(fn: Callable[..., Any], /) -> Any: ...
@overload
def shared_task(**options: Any) -> Callable[[Callable[..., Any]], Any]: ...


def shared_task(*args: Any, **options: Any) -> Any:
    """``@shared_task`` / ``@shared_task(bind=True, ...)``: a task of every Celery app."""
    def decorate(fn: Callable[..., Any]) -> SharedTask:
        opts = dict(options)
        with registry.lock:
            registry.shared.append((fn, opts))
            apps = list(registry.apps)
        for app in apps:
            app.task(**opts)(fn)
        return SharedTask(fn, opts)

    if len(args) == 1 and callable(args[0]) and not options:
        return decorate(args[0])
    return decorate


class _CurrentApp:
    """``current_app``: the app in use, looked up on each access (Celery's proxy)."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(current_celery(), attr)

    def __repr__(self) -> str:
        return repr(current_celery())


current_app: Any = _CurrentApp()
