"""Testing helpers for code that uses pgqueue; they work with or without pytest.

Plain functions: :func:`run_until_empty`, :func:`assert_enqueued`,
:func:`assert_not_enqueued`, :func:`enqueued_jobs`, :func:`bind_app` and
:func:`worker_running`, and :class:`TemplateDatabases` (fresh migrated databases
from a template). Importing this module doesn't import pytest.

The pytest plugin that serves them as fixtures (``pgqueue_dsn``, ``pgqueue_app``,
``pgqueue_eager``, ``pgqueue_worker``, ...) is :mod:`pgqueue.pytest_plugin`,
registered as entry point ``pgqueue`` in the ``pytest11`` group, so installing
pgqueue is enough. Its names stay importable from here, and ``-p pgqueue.testing``
(or ``pytest_plugins = ["pgqueue.testing"]``) still loads it.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgqueue import eager, encoding
from pgqueue.app import App
from pgqueue.migrate import migrate_dsn
from pgqueue.settings import Settings
from pgqueue.task import Task

if TYPE_CHECKING:
    from pgqueue.worker.loop import Worker

__all__ = [
    "EnqueuedJob", "TemplateDatabases", "assert_enqueued", "assert_not_enqueued", "bind_app",
    "enqueued_jobs", "run_until_empty", "worker_running",
]

# Loaded as a plugin itself (``-p pgqueue.testing``), this module brings the real one.
pytest_plugins = ["pgqueue.pytest_plugin"]
# The plugin's names, importable from here as before the split; importing one
# imports pytest, as it must.
_PLUGIN_NAMES = frozenset({
    "pytest_addoption", "pgqueue_server", "pgqueue_databases", "pgqueue_schema",
    "pgqueue_dsn", "pgqueue_settings", "pgqueue_app", "pgqueue_eager", "pgqueue_worker",
})

# The helpers' own queries. They read the jobs table the way a person with psql
# would, and are not part of pgqueue's runtime, so they live here rather than in
# sql/queries.
_JOBS = "SELECT id, task, queue, state::text, priority, args::text, kwargs::text " \
        "FROM {schema}.jobs ORDER BY id"
_OUTSTANDING = """
SELECT id, task, queue, state::text FROM {schema}.jobs
WHERE queue = ANY(%(queues)s)
  AND (state = 'running' OR (state = 'queued' AND (%(scheduled)s OR run_at <= now())))
ORDER BY id LIMIT 20"""
_WAITING_QUEUES = "SELECT DISTINCT queue FROM {schema}.jobs WHERE state IN ('queued', 'running')"


# -- databases -----------------------------------------------------------------------
class TemplateDatabases:
    """Fresh databases with pgqueue's schema on one server: a migrated template per
    schema (made on first use), then ``CREATE DATABASE ... TEMPLATE`` per test."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self._prefix = f"pgqueue_test_{os.getpid()}"
        self._templates: dict[str, str] = {}
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def _admin(self, statement: sql.Composed) -> None:
        # CREATE/DROP DATABASE can't run in a transaction block.
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            conn.execute(statement)

    def template(self, schema: str = "pgqueue") -> str:
        with self._lock:
            if schema not in self._templates:
                # Numbered, not named after the schema: names longer than 63 bytes
                # would be cut short by Postgres.
                name = f"{self._prefix}_template{len(self._templates)}"
                self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
                self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                migrate_dsn(make_conninfo(self.server_dsn, dbname=name), schema)
                self._templates[schema] = name
            return self._templates[schema]

    def create(self, schema: str = "pgqueue") -> str:
        """A new database migrated for ``schema``; returns its DSN."""
        template = self.template(schema)
        name = f"{self._prefix}_{next(self._counter)}"
        self._admin(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)))
        return make_conninfo(self.server_dsn, dbname=name)

    def drop(self, dsn: str) -> None:
        name = conninfo_to_dict(dsn)["dbname"]
        # FORCE: connections a test left open (a pool, a worker) must not keep it alive.
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(str(name))))

    def close(self) -> None:
        for name in self._templates.values():
            self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        self._templates.clear()


@contextmanager
def bind_app(app: App, dsn: str, **settings: Any) -> Iterator[App]:
    """Point ``app`` (with these settings changed) at ``dsn`` for the block, then restore it.

    Meant for a module-level ``app = App()`` that tests share: each test gets its
    own database and pools, and its eager results are forgotten after.
    """
    saved = app.settings
    _rebind(app, saved.with_(dsn=dsn, **settings))
    eager.clear(app)
    try:
        yield app
    finally:
        eager.clear(app)
        _rebind(app, saved)


def _rebind(app: App, settings: Settings) -> None:
    # App.configure() refuses a new DSN once connected, rightly for production;
    # between tests the old pools are closed first, so starting over is safe. An
    # async pool belongs to a test's event loop, usually closed by now: it is
    # dropped (DROP DATABASE ... FORCE ends its connections).
    app.close()
    app._dsn = None
    app.settings = settings
    app.configure()  # rebuilds the clients for the new settings


# -- running jobs ----------------------------------------------------------------------
@dataclass
class _WorkerThread:
    worker: Worker
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    def check(self) -> None:
        if self.errors:
            raise self.errors[0]
        if not self.thread.is_alive():
            raise RuntimeError("the in-process pgqueue worker stopped unexpectedly")


@contextmanager
def worker_running(app: App, **settings: Any) -> Iterator[Worker]:
    """A real worker for ``app`` on its own thread and event loop, for the block.

    ``settings`` override the app's (``queues=("emails",)``, ``concurrency=2``).
    The worker is stopped at the end; an error that stopped it early is raised.
    """
    with _worker_thread(app, **settings) as w:
        yield w.worker


@contextmanager
def _worker_thread(app: App, **settings: Any) -> Iterator[_WorkerThread]:
    from pgqueue.worker.loop import Worker

    worker = Worker(app, app.settings.with_(**settings))
    loop = asyncio.new_event_loop()
    errors: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(worker.run())
        except BaseException as exc:  # surfaced to the caller by check() or at the end
            errors.append(exc)

    w = _WorkerThread(worker, threading.Thread(target=main, name="pgqueue-test-worker",
                                               daemon=True), errors)
    w.thread.start()
    deadline = time.monotonic() + 30
    while not worker.worker_id and w.thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        w.check()
        yield w
    finally:
        if w.thread.is_alive():
            loop.call_soon_threadsafe(worker.stop)
        w.thread.join(60)
        loop.close()
        if errors:
            raise errors[0]


def run_until_empty(app: App, queues: Iterable[str] | None = None, *, timeout: float = 30.0,
                    include_scheduled: bool = False) -> int:
    """Run the app's jobs in this process with a real worker until none is left.

    Returns once no job of ``queues`` (default: the app's queues, its tasks'
    queues and those of jobs now waiting) is queued and due or running; jobs
    the tasks enqueue meanwhile are run too. Jobs due later (a ``countdown``, a
    retry's delay) are not waited for unless ``include_scheduled``. Raises
    ``TimeoutError`` listing the jobs left after ``timeout`` seconds. Returns how
    many attempts the worker recorded (a retried job counts each). From async
    code: ``await asyncio.to_thread(run_until_empty, app)``.
    """
    served = tuple(queues) if queues is not None else _known_queues(app)
    deadline = time.monotonic() + timeout
    # The threads pool runs plain and async tasks alike, in this process.
    with _worker_thread(app, queues=served, pool="threads") as w:
        while True:
            left = _outstanding(app, served, include_scheduled)
            # Rows say the jobs ended; the worker counts them once its write returns.
            if not left and not w.worker.held:
                return w.worker.jobs_done
            w.check()
            if time.monotonic() > deadline:
                listed = ", ".join(f"#{i} {task} ({queue}, {state})"
                                   for i, task, queue, state in left)
                raise TimeoutError(
                    f"run_until_empty: jobs still waiting after {timeout}s: {listed}; is "
                    "a task stuck, or a queue paused?")
            time.sleep(0.02)


def _known_queues(app: App) -> tuple[str, ...]:
    found = dict.fromkeys([*app.settings.queues, *(t.queue for t in app.tasks.values())])
    query = sql.SQL(_WAITING_QUEUES).format(schema=sql.Identifier(app.settings.schema))
    with app.client.connection() as conn:
        rows = conn.execute(query).fetchall()
    found.update(dict.fromkeys(r[0] for r in rows))
    return tuple(found)


def _outstanding(app: App, queues: Sequence[str],
                 include_scheduled: bool) -> list[tuple[int, str, str, str]]:
    query = sql.SQL(_OUTSTANDING).format(schema=sql.Identifier(app.settings.schema))
    with app.client.connection() as conn:
        rows = conn.execute(query, {"queues": list(queues),
                                    "scheduled": include_scheduled}).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


# -- assertions --------------------------------------------------------------------------
@dataclass(frozen=True)
class EnqueuedJob:
    """A job as the assertions see it: arguments decoded as the task would get them."""

    id: int
    task: str
    queue: str
    state: str
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]

    def call(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(parts)})"

    def __str__(self) -> str:
        return f"#{self.id} {self.call()} queue={self.queue!r} state={self.state}"


def enqueued_jobs(app: App, connection: psycopg.Connection[Any] | None = None
                  ) -> list[EnqueuedJob]:
    """Every job of the app, oldest first: rows of the jobs table, or in eager mode
    the jobs that ran eagerly. ``connection`` sees its own uncommitted jobs."""
    if app.settings.eager:
        return [EnqueuedJob(r.id, r.job.info.task, r.job.info.queue,
                            str(r.job.info.state), r.job.info.priority,
                            encoding.loads(r.job.request.args_json),
                            encoding.loads(r.job.request.kwargs_json))
                for r in eager.results(app)]
    query = sql.SQL(_JOBS).format(schema=sql.Identifier(app.settings.schema))
    if connection is not None:
        rows = connection.execute(query).fetchall()
    else:
        with app.client.connection() as conn:
            rows = conn.execute(query).fetchall()
    return [EnqueuedJob(i, task, queue, state, priority, encoding.loads(args),
                        encoding.loads(kwargs))
            for i, task, queue, state, priority, args, kwargs in rows]


def assert_enqueued(task: Task[Any, Any] | str, args: Sequence[Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None, *, queue: str | None = None,
                    count: int | None = None, app: App | None = None,
                    connection: psycopg.Connection[Any] | None = None) -> list[EnqueuedJob]:
    """Assert that jobs of ``task`` were enqueued, whatever their state now.

    ``args`` / ``kwargs`` / ``queue``, when given, must match (arguments compare
    as the task would receive them: tuples as lists). ``count`` asks for exactly
    that many; by default at least one. Returns the matching jobs. ``task`` may
    be a name, with ``app=``. The failure message lists what was enqueued.
    """
    __tracebackhide__ = True
    app, name = _target(task, app)
    jobs = enqueued_jobs(app, connection)
    want_args = _normalised(list(args)) if args is not None else None
    want_kwargs = _normalised(dict(kwargs)) if kwargs is not None else None
    found = [j for j in jobs if j.task == name
             and (want_args is None or j.args == want_args)
             and (want_kwargs is None or j.kwargs == want_kwargs)
             and (queue is None or j.queue == queue)]
    if (len(found) != count) if count is not None else not found:
        what = _describe(name, want_args, want_kwargs, queue)
        expected = f"exactly {count}" if count is not None else "at least one"
        raise AssertionError(f"expected {expected} job {what}, found {len(found)}.\n"
                             + _listing(jobs))
    return found


def assert_not_enqueued(task: Task[Any, Any] | str, args: Sequence[Any] | None = None,
                        kwargs: Mapping[str, Any] | None = None, *, queue: str | None = None,
                        app: App | None = None,
                        connection: psycopg.Connection[Any] | None = None) -> None:
    """Assert that no job of ``task`` (with these arguments, on this queue) was enqueued."""
    __tracebackhide__ = True
    assert_enqueued(task, args, kwargs, queue=queue, count=0, app=app, connection=connection)


def _target(task: Task[Any, Any] | str, app: App | None) -> tuple[App, str]:
    if isinstance(task, Task):
        return app or task.app, task.name
    if app is None:
        raise TypeError(f"assert_enqueued({task!r}, ...): a task given by name needs app=")
    return app, task


def _normalised(value: Any) -> Any:
    # The same round trip the job's arguments made, so (1, 2) matches [1, 2].
    return encoding.loads(encoding.dumps(value))


def _describe(name: str, args: list[Any] | None, kwargs: dict[str, Any] | None,
              queue: str | None) -> str:
    parts = ["..."] if args is None else [repr(a) for a in args]
    if kwargs is not None:
        parts += [f"{k}={v!r}" for k, v in kwargs.items()]
    elif args is not None:
        parts.append("...")  # any keyword arguments
    return f"{name}({', '.join(parts)})" + (f" on queue {queue!r}" if queue else "")


def _listing(jobs: list[EnqueuedJob], limit: int = 30) -> str:
    if not jobs:
        return "No job was enqueued at all."
    lines = [f"Enqueued jobs ({len(jobs)}):", *(f"  {j}" for j in jobs[:limit])]
    if len(jobs) > limit:
        lines.append(f"  ... and {len(jobs) - limit} more")
    return "\n".join(lines)


def __getattr__(name: str) -> Any:
    if name in _PLUGIN_NAMES:
        return getattr(importlib.import_module("pgqueue.pytest_plugin"), name)
    raise AttributeError(f"module 'pgqueue.testing' has no attribute {name!r}")
