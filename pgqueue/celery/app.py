"""``celery.Celery`` for pgqueue: the app a Celery project builds, on a :class:`pgqueue.App`.

``Celery("proj", broker="postgresql://...")`` is a pgqueue App whose settings
are Celery's (:mod:`pgqueue.celery.conf`), whose tasks are named and built as
Celery's (``proj.tasks.add``; :func:`pgqueue.celery.task.make_task`), and whose
jobs are routed by ``task_routes`` to ``task_default_queue`` (``celery``) by
default. Tasks modules (``include=``, ``imports``, ``autodiscover_tasks()``) and
``beat_schedule`` are read when the app is finalized: when a worker or beat
starts (``pgq -A proj worker`` does it), at ``send_task``, or by ``app.finalize()``.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from pgqueue import current
from pgqueue.app import App
from pgqueue.celery import discovery, registry
from pgqueue.celery import routes as routing
from pgqueue.celery.conf import Config, import_object, retention_days, settings_of
from pgqueue.celery.exceptions import ImproperlyConfigured, NotRegistered
from pgqueue.celery.signals import Signal
from pgqueue.celery.urls import backend_dsn, broker_dsn

if TYPE_CHECKING:
    from pgqueue.celery.control import Control
    from pgqueue.celery.result import AsyncResult
    from pgqueue.schedule import Schedule

log = logging.getLogger("pgqueue.celery")



class Celery(App):
    """``Celery("proj", broker="postgresql://...", include=["proj.tasks"])``, as in Celery.

    ``broker`` (or ``backend``) is the Postgres DSN; without either, the
    ``broker_url`` setting or ``PGQ_DSN`` is. Other keyword arguments are Celery
    settings (``task_default_queue="q"``). ``schema=`` picks pgqueue's schema.
    """

    def __init__(self, main: str | None = None, loader: Any = None, backend: str | None = None,
                 amqp: Any = None, events: Any = None, log: Any = None, control: Any = None,
                 set_as_current: bool = True, tasks: Any = None, broker: str | None = None,
                 include: Iterable[str] | None = None, changes: Mapping[str, Any] | None = None,
                 config_source: Any = None, fixups: Any = None, task_cls: Any = None,
                 autofinalize: bool = True, namespace: str | None = None,
                 strict_typing: bool = True, *, schema: str | None = None,
                 **settings: Any) -> None:
        dsn = broker_dsn(broker) or backend_dsn(backend)
        previous = current._current  # App.__init__ makes every app current
        super().__init__(dsn, schema=schema)
        if not set_as_current:  # Celery's: leave current_app as it was
            current._current = previous
        self.main = main
        self.namespace = namespace
        if task_cls is None and discovery.is_django_process():
            # Celery's Django fixup: tasks get delay_on_commit / apply_async_on_commit.
            task_cls = "pgqueue.celery.contrib.django.task:DjangoTask"
        self.task_cls = task_cls
        self.on_configure = Signal("on_configure")
        self.on_after_configure = Signal("on_after_configure")
        self.on_after_finalize = Signal("on_after_finalize")
        self.on_after_fork = Signal("on_after_fork")
        self._lock = threading.RLock()
        self._finalized = False
        self._declared = False  # beat_schedule turned into schedules (end of finalize)
        self._routers: list[Callable[..., Any]] | None = None
        self._discover: list[tuple[Any, str]] = []
        self._periodic: dict[str, dict[str, Any]] = {}
        self._explicit_dsn = dsn is not None
        # The worker serves task_default_queue (and task_queues) unless told otherwise.
        self._auto_queues: tuple[str, ...] | None = None
        if not os.environ.get("PGQ_QUEUES"):
            self._set_queues(("celery",))
        self.conf = Config(self._changed)
        given = {**(changes or {}), **settings}
        if include:
            given["include"] = list(include)
        if given:
            self.conf.update(given)
        if config_source is not None:
            self.config_from_object(config_source)
        with registry.lock:
            registry.apps.add(self)
            pending = list(registry.shared)
        for fn, opts in pending:
            self.task(**opts)(fn)

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'} tasks={len(self.tasks)}>"

    # -- configuration ------------------------------------------------------------
    def config_from_object(self, obj: Any, silent: bool = False, force: bool = False,
                           namespace: str | None = None) -> None:
        """Read settings from a module, an object, or their import path, as Celery does.

        ``"django.conf:settings"`` with ``namespace="CELERY"`` reads
        ``CELERY_BROKER_URL`` as ``broker_url``. Read when a setting is first
        needed (``force=True``: now), so Django's settings may still be loading.
        """
        namespace = namespace if namespace is not None else self.namespace

        def source() -> Mapping[str, Any]:
            self.on_configure.send(sender=self)
            try:
                found = settings_of(obj, namespace)
            except ImportError:
                if silent:
                    return {}
                raise
            return found

        self.conf.defer(source)
        if force:
            self.conf.load()

    def config_from_envvar(self, variable_name: str, silent: bool = False,
                           force: bool = False) -> None:
        """``config_from_object`` of the module named by an environment variable."""
        module = os.environ.get(variable_name)
        if not module:
            if silent:
                return
            raise ImproperlyConfigured(f"environment variable {variable_name} is not set: "
                                       "it should name a configuration module")
        self.config_from_object(module, silent=silent, force=force)

    def _changed(self, keys: set[str]) -> None:
        """Apply the settings that change what pgqueue does (conf.APPLIED)."""
        conf = self.conf
        changes: dict[str, Any] = {}
        if "broker_url" in keys or "result_backend" in keys:
            dsn = broker_dsn(conf.get("broker_url")) or backend_dsn(conf.get("result_backend"))
            if dsn is not None and not self._explicit_dsn:
                changes["dsn"] = dsn
        if "task_always_eager" in keys:
            changes["eager"] = bool(conf.task_always_eager)
        if "worker_concurrency" in keys and conf.worker_concurrency:
            changes["concurrency"] = int(conf.worker_concurrency)
        if "worker_max_tasks_per_child" in keys and conf.worker_max_tasks_per_child:
            changes["max_tasks_per_child"] = int(conf.worker_max_tasks_per_child)
        if "result_expires" in keys:
            changes["retention_days"] = retention_days(conf.result_expires)
        if "task_routes" in keys:
            self._routers = None
        if "task_priority_convention" in keys or "broker_transport_options" in keys:
            self._priority_convention()  # a bad value raises where it was set
        if keys & {"task_default_queue", "task_queues"}:
            self._set_queues(self._served_queues())
        if "beat_schedule" in keys and self._declared:  # set after finalize: declared now
            self._declare_schedules(replace=True)
        if changes:
            self.configure(**changes)

    def _served_queues(self) -> tuple[str, ...]:
        queues = self.conf.get("task_queues")
        if queues:
            names = list(queues) if isinstance(queues, Mapping) else [
                q if isinstance(q, str) else getattr(q, "name", q) for q in queues]
            return tuple(str(n) for n in names)
        return (str(self.conf.task_default_queue),)

    def _set_queues(self, queues: tuple[str, ...]) -> None:
        # Only while the queues are still ours to choose: -Q / PGQ_QUEUES / configure win.
        if self._auto_queues is None or self.settings.queues == self._auto_queues:
            self._auto_queues = queues
            if self.settings.queues != queues:
                self.configure(queues=queues)

    def dsn(self) -> str:
        self.conf.load()  # broker_url may be in a config source not read yet
        return super().dsn()

    # -- tasks ------------------------------------------------------------------
    @property
    def Task(self) -> type[Any]:  # Celery's name
        """The app's base task class (``class MyTask(app.Task)``, ``base=MyTask``)."""
        if self.task_cls is not None:
            return self.task_cls if isinstance(self.task_cls, type) else import_object(
                self.task_cls)
        from pgqueue.celery.task import Task

        return Task

    @overload
    def task(self, fn: Callable[..., Any], /) -> Any: ...
    @overload
    def task(self, **options: Any) -> Callable[[Callable[..., Any]], Any]: ...

    def task(self, *args: Any, **options: Any) -> Any:
        """``@app.task``, ``@app.task(bind=True, ...)``: Celery's task decorator.

        The task is named ``module.function`` (``name=`` overrides) and built by
        :func:`pgqueue.celery.task.make_task` with Celery's options.
        """
        options.pop("shared", None)  # every task is this app's; shared_task is for others
        options.pop("lazy", None)

        def decorate(fn: Callable[..., Any]) -> Any:
            from pgqueue.celery.task import make_task

            opts = dict(options)
            opts["name"] = opts.get("name") or self.gen_task_name(
                fn.__name__, getattr(fn, "__module__", None) or "__main__")
            if opts.get("base") is None and self.task_cls is not None:
                opts["base"] = self.Task
            return make_task(self, fn, opts)

        if len(args) == 1 and callable(args[0]) and not options:
            return decorate(args[0])
        if args:
            raise TypeError("use @app.task or @app.task(**options): positional arguments "
                            "other than the function are not taken")
        return decorate

    def gen_task_name(self, name: str, module: str) -> str:
        """Celery's naming rule, overridable as in Celery: ``module.name``; in a script
        (``__main__``), the app's main name stands for the module."""
        if module == "__main__" and self.main:
            module = self.main
        return f"{module}.{name}" if module else name

    def register_task(self, task: Any) -> Any:
        """Celery's ``app.register_task(Add())``: a class-based task made this app's."""
        from pgqueue.celery.task import bind_task

        return bind_task(self, task)

    # -- routing and priorities ---------------------------------------------------
    def route(self, name: str, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None,
              options: Mapping[str, Any], task: Any = None) -> dict[str, Any]:
        """A call's options with its queue and priority decided as Celery decides them.

        ``options`` are the call's over the task's own (``queue=`` of the
        decorator); they win over ``task_routes``, which wins over
        ``task_default_queue``. The priority stays on Celery's scale.
        """
        if self._routers is None:
            self._routers = routing.routers(self.conf.task_routes)
        route = routing.lookup(self._routers, name, tuple(args or ()), dict(kwargs or {}),
                               options, task) if self._routers else None
        return routing.merge(route, options, str(self.conf.task_default_queue),
                             self.conf.task_default_priority)

    def _priority_convention(self) -> str:
        return routing.priority_convention(self.conf)

    def celery_priority(self, priority: int | None) -> int | None:
        """A Celery priority as pgqueue's (higher runs first): see
        :func:`pgqueue.celery.routes.celery_priority`."""
        return routing.celery_priority(self.conf, priority)

    # -- calling ------------------------------------------------------------------
    def send_task(self, name: str, args: Sequence[Any] | None = None,  # type: ignore[override]
                  kwargs: Mapping[str, Any] | None = None, countdown: float | None = None,
                  eta: Any = None, task_id: str | None = None, producer: Any = None,
                  connection: Any = None, router: Any = None, result_cls: Any = None,
                  expires: Any = None, link: Any = None, link_error: Any = None,
                  **options: Any) -> AsyncResult:
        """Send a task by name (Celery's options), as Celery does.

        A name this app doesn't know raises :class:`NotRegistered` at once when the
        app declares where all its tasks are (``include``, ``imports`` or
        ``autodiscover_tasks()``, the layout of a Celery project): it is a typo, not
        a task of another service. An app without that declaration sends any name,
        which is what Celery's docs use ``send_task`` for. ``send_task_check_registry``
        True checks whenever the app has tasks, False never.
        """
        import psycopg

        from pgqueue.celery.task import send

        self.finalize()
        known = self.tasks.get(name)
        if known is None and self._checks_registry():
            short = name.rpartition(".")[2]
            close = [t for t in self.tasks if t.rpartition(".")[2] == short] or \
                difflib.get_close_matches(name, list(self.tasks), n=1)
            hint = f"; did you mean {' or '.join(map(repr, close[:3]))}?" if close else ""
            raise NotRegistered(
                f"no task named {name!r} in {self!r}{hint} (task names are module-qualified, "
                "as in Celery: 'proj.tasks.add'; set send_task_check_registry=False to send "
                "to tasks only other services know)")
        given = {k: v for k, v in (("countdown", countdown), ("eta", eta), ("task_id", task_id),
                                   ("expires", expires), ("link", link),
                                   ("link_error", link_error)) if v is not None}
        merged = {**routing.task_defaults(known), **options, **given}
        conn = connection if isinstance(connection, psycopg.Connection) else None
        return send(self, name, args, kwargs, merged, connection=conn)

    def _checks_registry(self) -> bool:
        check = self.conf.get("send_task_check_registry")
        if check is not None:
            return bool(check) and bool(self.tasks)
        return bool(self.tasks) and bool(self._discover or self.conf.include
                                         or self.conf.imports)

    def AsyncResult(self, task_id: Any, **kwargs: Any) -> AsyncResult:  # type: ignore[override]
        """A result handle by id: a Celery task id (text) or a job id; never raises."""
        from pgqueue.celery.result import AsyncResult

        return AsyncResult(task_id, app=self, **kwargs)

    def signature(self, name: str, args: Sequence[Any] | None = None,
                  kwargs: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """``app.signature("proj.tasks.add", args=(2, 2))``: a by-name signature of this app."""
        from pgqueue.celery.canvas import signature

        return signature(name, args=tuple(args or ()), kwargs=dict(kwargs or {}), app=self,
                         **options)

    # -- running pgq from code ----------------------------------------------------
    def import_path(self) -> str:
        """``module:attribute`` where this app is bound (what ``-A`` would name)."""
        for module_name, module in list(sys.modules.items()):
            for attr, value in list(getattr(module, "__dict__", {}).items()):
                if value is self and not attr.startswith("_"):
                    return f"{module_name}:{attr}"
        raise ImproperlyConfigured(f"{self!r} is not bound to a module attribute: assign it "
                                   "(app = Celery(...)) at module level to start it from code")

    def start(self, argv: Sequence[str] | None = None) -> None:
        """Celery's ``app.start(["worker", "-l", "INFO"])``: run a ``pgq`` command on this app."""
        from pgqueue.cli import main

        args = list(sys.argv[1:] if argv is None else argv)
        if args and args[0] in ("celery", "pgq"):
            args = args[1:]
        main(args=["-A", self.import_path(), *args], prog_name="pgq")

    def worker_main(self, argv: Sequence[str] | None = None) -> None:
        """Celery's ``app.worker_main(argv=["worker", "--loglevel=INFO"])``."""
        args = list(sys.argv[1:] if argv is None else argv)
        if "worker" not in args:
            raise ValueError("worker_main() runs the worker sub-command: put 'worker' in argv "
                             "(app.start() runs the others)")
        self.start(args)

    @property
    def control(self) -> Control:
        """``app.control``: revoke, inspect and rate_limit, answered from Postgres."""
        from pgqueue.celery.control import Control

        return Control(self)

    # -- finalize: task modules, autodiscovery, periodic tasks ---------------------
    def autodiscover_tasks(self, packages: Iterable[str] | Callable[[], Iterable[str]]
                           | None = None, related_name: str = "tasks",
                           force: bool = False) -> None:
        """Import each package's ``tasks`` module when the app is finalized.

        With no packages, Django's ``INSTALLED_APPS`` (Django is set up first if
        needed). A package without that module is skipped; an error inside one
        is raised. ``force=True`` imports now.
        """
        with self._lock:
            self._discover.append((packages, related_name))
            now = force or self._finalized
        if now:
            discovery.discover(packages, related_name)

    def finalize(self, auto: bool = False) -> None:
        """Import ``include``/``imports``, autodiscover, and declare ``beat_schedule``: once."""
        with self._lock:
            if self._finalized:
                return
            self._finalized = True
            self.conf.load()
            self.on_after_configure.send(sender=self, source=self.conf)
            discovery.setup_django()
            for module in [*self.conf.imports, *self.conf.include]:
                discovery.import_module(module)
            for packages, related_name in self._discover:
                discovery.discover(packages, related_name)
            # Settings read after tasks were declared (shared_task before
            # config_from_object) reach them now, as Celery binds tasks at finalize.
            for task in list(self.tasks.values()):
                self._annotate(task)
                from_config = getattr(task, "from_config", None)
                if callable(from_config):
                    from_config()
            self.on_after_finalize.send(sender=self)
            self._declare_schedules()
            self._declared = True

    def _annotate(self, task: Any) -> None:
        """``task_annotations``: attributes set on tasks by name (or ``"*"``), a list of
        such dicts, or objects with ``annotate(task)`` returning a dict, as in Celery."""
        annotations = self.conf.task_annotations
        if not annotations:
            return
        for annotation in annotations if isinstance(annotations, (list, tuple)) else [
                annotations]:
            if isinstance(annotation, str):
                annotation = import_object(annotation)
            if isinstance(annotation, Mapping):
                found = annotation.get(task.name) or annotation.get("*")
            else:
                found = annotation.annotate(task)
            for key, value in (found or {}).items():
                setattr(task, key, value)

    @property
    def finalized(self) -> bool:
        return self._finalized

    def add_periodic_task(self, schedule: Any, sig: Any, args: Sequence[Any] = (),
                          kwargs: Mapping[str, Any] | None = None, name: str | None = None,
                          **options: Any) -> str:
        """Celery's ``add_periodic_task(10.0, add.s(2, 2), name="add every 10")``."""
        task = getattr(sig, "task", sig)
        task = getattr(task, "name", task)
        entry = {"task": task, "schedule": schedule,
                 "args": tuple(getattr(sig, "args", ()) or args),
                 "kwargs": dict(getattr(sig, "kwargs", {}) or kwargs or {}),
                 "options": {**(getattr(sig, "options", {}) or {}), **options}}
        key = name or f"{task}{entry['args']!r}{entry['kwargs']!r}"
        with self._lock:
            self._periodic[key] = entry
            if self._finalized:
                self._declare(key, entry)
        return key

    def _declare_schedules(self, replace: bool = False) -> None:
        entries = {**dict(self.conf.beat_schedule or {}), **self._periodic}
        for key, entry in entries.items():
            if replace:  # a changed entry replaces the one declared before
                self.schedules.pop(key, None)
            self._declare(key, entry)

    def _declare(self, key: str, entry: Mapping[str, Any]) -> Schedule:
        from pgqueue.celery.beat import declare

        return declare(self, key, entry)
