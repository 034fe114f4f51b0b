"""``celery.Celery`` for pgqueue: the app a Celery project builds, on a :class:`pgqueue.App`.

Skeleton: configuration, task decoration and results; routing, beat and
discovery are filled in next.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pgqueue import current
from pgqueue.app import App
from pgqueue.errors import ConfigurationError

log = logging.getLogger("pgqueue.celery")

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_BACKEND_PREFIXES = ("sqla+", "db+")


def dsn_from_url(url: str | None, what: str) -> str | None:
    """The Postgres DSN in a Celery broker/backend URL; any other kind of URL is an error."""
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise ConfigurationError(f"{what} must be a URL string, not {type(url).__name__}")
    bare = url
    for prefix in _BACKEND_PREFIXES:
        if bare.startswith(prefix):
            bare = bare[len(prefix):]
            break
    if bare.startswith("postgresql+"):  # SQLAlchemy's driver form: postgresql+psycopg://
        bare = "postgresql://" + bare.split("://", 1)[1]
    if bare.startswith(_POSTGRES_SCHEMES):
        return bare
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ConfigurationError(
        f"{what} {scheme}:// is not supported: pgqueue keeps its queue and results in "
        "PostgreSQL, so give a postgresql:// URL (e.g. postgresql://user@host/db)")


class Config(dict[str, Any]):
    """``app.conf``: a dict that also reads and writes its keys as attributes."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


def _fallback_make_task(app: App, fn: Callable[..., Any], options: dict[str, Any]) -> Any:
    # Stand-in until pgqueue.celery.task.make_task exists.
    native = {k: v for k, v in options.items() if k in ("name", "queue", "priority", "bind")}
    return App.task(app, **native)(fn)


def _make_task(app: Celery, fn: Callable[..., Any], options: dict[str, Any]) -> Any:
    try:
        from pgqueue.celery.task import make_task
    except ImportError:
        return _fallback_make_task(app, fn, options)
    return make_task(app, fn, options)


def task_name(fn: Callable[..., Any], main: str | None) -> str:
    """Celery's rule: ``module.function``; a script's ``__main__`` is the app's main name."""
    module = fn.__module__
    if module == "__main__" and main:
        module = main
    return f"{module}.{fn.__name__}"


class Celery(App):
    def __init__(self, main: str | None = None, broker: str | None = None,
                 backend: str | None = None, *, include: Iterable[str] | None = None,
                 **kwargs: Any) -> None:
        dsn = dsn_from_url(broker, "broker") or dsn_from_url(backend, "backend")
        super().__init__(dsn)
        self.main = main
        self.conf = Config()
        self._include = list(include or ())
        self._lock = threading.RLock()
        with _shared_lock:
            _apps.add(self)
            pending = list(_shared)
        for fn, opts in pending:
            self.task(**opts)(fn)

    def task(self, *args: Any, **options: Any) -> Any:
        def decorate(fn: Callable[..., Any]) -> Any:
            opts = dict(options)
            opts["name"] = opts.get("name") or task_name(fn, self.main)
            return _make_task(self, fn, opts)

        if len(args) == 1 and callable(args[0]) and not options:
            return decorate(args[0])
        return decorate

    def AsyncResult(self, task_id: Any) -> Any:
        try:
            from pgqueue.celery.result import AsyncResult
        except ImportError:
            return App.AsyncResult(self, task_id)
        return AsyncResult(task_id, app=self)

    def send_task(self, name: str, args: Sequence[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, **options: Any) -> Any:
        r = App.send_task(self, name, args, kwargs,
                          **{k: v for k, v in options.items() if k in ("queue", "countdown")})
        return self.AsyncResult(r.id)

    def celery_priority(self, priority: int | None) -> int | None:
        """A Celery priority as pgqueue's (higher runs first)."""
        return priority


_shared_lock = threading.Lock()
_shared: list[tuple[Callable[..., Any], dict[str, Any]]] = []
_apps: weakref.WeakSet[Celery] = weakref.WeakSet()


def _current_celery() -> Celery:
    """The current app if it is a Celery one; else a default one, as Celery makes."""
    try:
        app = current.current()
    except RuntimeError:
        app = None
    return app if isinstance(app, Celery) else Celery()


class SharedTask:
    """What ``@shared_task`` returns: the task of that name in the current app.

    Celery's reusable-app decorator: the function is registered with every
    Celery app, those made later included, and the object forwards to the
    current app's task (``delay``, ``s``, ``name``...).
    """

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.__wrapped__ = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self._options = options

    def _task(self) -> Any:
        app = _current_celery()
        fn = self.__wrapped__
        task = app.tasks.get(self._options.get("name") or task_name(fn, app.main))
        if task is None:  # the app was made in a way that skipped registration: do it now
            task = app.task(**self._options)(fn)
        return task

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._task(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._task()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<@shared_task {self.__module__}.{self.__name__}>"


def shared_task(*args: Any, **options: Any) -> Any:
    """``@shared_task`` / ``@shared_task(bind=True, ...)``: a task of every Celery app."""
    def decorate(fn: Callable[..., Any]) -> SharedTask:
        opts = dict(options)
        with _shared_lock:
            _shared.append((fn, opts))
            apps = list(_apps)
        for app in apps:
            app.task(**opts)(fn)
        return SharedTask(fn, opts)

    if len(args) == 1 and callable(args[0]) and not options:
        return decorate(args[0])
    return decorate
