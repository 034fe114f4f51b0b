"""The project's pgqueue App, and how it uses Django's database connection.

``get_app()`` (or ``from pgqueue.contrib.django import app``) returns the one
:class:`DjangoApp` of the process, configured from ``settings.PGQUEUE``. It is
an ordinary :class:`pgqueue.App` (``@app.task``, ``delay``, ``AsyncResult``,
...) with three differences:

- From synchronous code, a statement given no ``connection=`` runs on Django's
  own connection (``PGQUEUE["DATABASE"]``). Inside ``transaction.atomic()`` an
  enqueue therefore commits or rolls back with the rows written beside it: no
  second connection, no ``transaction.on_commit``. Outside ``atomic()``
  Django's connection is in autocommit, so the job is committed at once, as
  with pgqueue's pool. Async code, where Django's connection can't be used, and
  ``r.get()``, which LISTENs, use pgqueue's own pools as usual.
- Its DSN is Django's (see :mod:`pgqueue.contrib.django.conf`), read on first use.
- Its task registry also finds django.tasks tasks by module path
  (see :mod:`pgqueue.contrib.django.runner`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connections

from pgqueue.app import App
from pgqueue.client import Client
from pgqueue.contrib.django import conf
from pgqueue.statements import Statement
from pgqueue.task import Task

if TYPE_CHECKING:
    from pgqueue.context import JobContext

T = TypeVar("T")


def in_event_loop() -> bool:
    """Whether this thread runs an event loop: Django's connection is off limits there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def django_connection(alias: str = "default") -> psycopg.Connection[Any] | None:
    """Django's psycopg connection for ``alias``, opened if need be; None in async code.

    Pass it as ``connection=`` to put an enqueue in Django's transaction
    explicitly (the App of this package does it by default).
    """
    if in_event_loop():
        return None
    wrapper = connections[alias]
    wrapper.ensure_connection()
    raw = wrapper.connection
    if not isinstance(raw, psycopg.Connection):
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}] does not run on psycopg 3 ({type(raw).__module__}), so "
            "pgqueue can't enqueue in its transactions: use Django's postgresql backend "
            "with psycopg 3 installed, or set PGQUEUE['USE_DJANGO_CONNECTION'] = False"
        )
    return raw


class DjangoClient(Client):
    """pgqueue's sync client, except that a statement given no connection runs on Django's."""

    def __init__(self, conninfo: Callable[[], str], pool_size: int, timeout: float,
                 database: str, *, prepared: bool = True) -> None:
        super().__init__(conninfo, pool_size, timeout, prepared=prepared)
        self.database = database

    def execute(self, stmt: Statement[T], connection: psycopg.Connection[Any] | None = None) -> T:
        if connection is not None:
            return super().execute(stmt, connection)
        django_conn = django_connection(self.database)
        if django_conn is None:
            return super().execute(stmt)  # async code: pgqueue's pool
        try:
            return super().execute(stmt, django_conn)
        except (psycopg.DataError, psycopg.IntegrityError):
            raise
        except psycopg.Error:
            # Django's own cursors note such errors, so that the connection is health-checked
            # (and dropped if broken) at the next request; ours bypass them, so note it here.
            connections[self.database].errors_occurred = True
            raise


class TaskRegistry(dict[str, Task[Any, Any]]):
    """``app.tasks``, which on a miss asks ``resolve`` for the task (and keeps what it finds).

    The worker looks tasks up by the name stored in each job; for a django.tasks
    task that name is a module path, which may name a module the worker has not
    imported yet.
    """

    def __init__(self, resolve: Callable[[str], Task[Any, Any] | None]) -> None:
        super().__init__()
        self._resolve = resolve

    def __missing__(self, name: str) -> Task[Any, Any]:
        task = self._found(name)
        if task is None:
            raise KeyError(name)
        return task

    def get(self, name: str, default: Any = None) -> Any:
        task = super().get(name)
        if task is None:
            task = self._found(name)
        return default if task is None else task

    def _found(self, name: str) -> Task[Any, Any] | None:
        task = self._resolve(name)
        if task is not None:
            self[name] = task
        return task


@contextlib.contextmanager
def fresh_connections(ctx: JobContext | None = None) -> Iterator[None]:
    """Around a job, what Django does around a request: drop connections that are broken
    or past CONN_MAX_AGE, so a worker thread never runs a job on a dead connection."""
    if in_event_loop():  # Django's connections are not used on the event loop
        yield
        return
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


class DjangoApp(App):
    """A pgqueue App configured from Django settings, enqueueing on Django's connection."""

    def __init__(self, config: conf.DjangoConfig) -> None:
        self.database = config.database
        self.use_django_connection = config.use_django_connection
        self.dsn_from_django = not config.settings.dsn  # else PGQUEUE["DSN"] was given
        super().__init__(settings=config.settings)
        self.tasks = TaskRegistry(self._resolve_task)
        self._use_django_client()
        self.hooks.around_task(fresh_connections)  # for @app.task tasks, in the worker

    def __repr__(self) -> str:
        return f"<DjangoApp database={self.database} schema={self.settings.schema}>"

    def dsn(self) -> str:
        if not self.settings.dsn:
            # Read now, not at start-up: Django's test runner renames the database first.
            self.settings = self.settings.with_(dsn=conf.current_dsn(self.database))
        return super().dsn()

    def configure(self, **changes: Any) -> None:
        super().configure(**changes)
        self._use_django_client()  # configure() may have built a plain Client again

    def _use_django_client(self) -> None:
        if self.use_django_connection and not isinstance(self.client, DjangoClient):
            # Pools open on first use, so the Client replaced here never connected.
            self.client = DjangoClient(self.dsn, self.settings.pool_size,
                                       self.settings.pool_timeout, self.database,
                                       prepared=self.settings.prepared_statements)

    def _resolve_task(self, name: str) -> Task[Any, Any] | None:
        if "." not in name:  # django.tasks tasks are named by module path
            return None
        try:
            from pgqueue.contrib.django import runner
        except ImportError:  # neither django.tasks nor the backport: only @app.task tasks
            return None
        return runner.resolve(self, name)


_app: DjangoApp | None = None
_app_lock = threading.Lock()


def get_app() -> DjangoApp:
    """The process's App, made from ``settings.PGQUEUE`` on first call."""
    global _app
    if _app is None:
        with _app_lock:
            if _app is None:
                _app = DjangoApp(conf.load())
    return _app
