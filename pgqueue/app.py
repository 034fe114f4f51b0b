"""App: settings, the task registry, and the enqueue / result API producers use."""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from pgqueue import current, embedded, encoding, statements, waiters, workflow
from pgqueue.args_cap import CappedEnqueuer
from pgqueue.canvas import Canvas, Signature
from pgqueue.client import Client
from pgqueue.client_async import AsyncClient
from pgqueue.eager import EagerEnqueuer
from pgqueue.enqueuer import DatabaseEnqueuer, Enqueuer
from pgqueue.group_result import GroupResult
from pgqueue.hooks import Hooks
from pgqueue.migrate import migrate_dsn
from pgqueue.options import UNKNOWN_TASK_DEFAULTS, EnqueueOptions, TaskOptions
from pgqueue.result import JobResult
from pgqueue.schedule import CatchUp, Rule, Schedule
from pgqueue.settings import Settings
from pgqueue.task import Task

if TYPE_CHECKING:
    import psycopg

P = ParamSpec("P")
R = TypeVar("R")


class App:
    """The entry point: ``app = App()`` (DSN from ``PGQ_DSN``) or ``App("postgresql://...")``.

    With no DSN at all, an embedded Postgres is started for local use (see
    :mod:`pgqueue.embedded`) and migrated automatically.
    """

    def __init__(self, dsn: str | None = None, *, schema: str | None = None,
                 settings: Settings | None = None, **options: Any) -> None:
        if settings is None:
            settings = Settings.from_env(dsn=dsn, schema=schema, **options)
        else:
            settings = settings.with_(dsn=dsn, schema=schema, **options)
        self.settings = settings
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.schedules: dict[str, Schedule] = {}
        self.hooks = Hooks()
        self._dsn: str | None = None
        self._dsn_lock = threading.Lock()
        self.client = Client(self.dsn, settings.pool_size, settings.pool_timeout,
                             prepared=settings.prepared_statements)
        self.async_client = AsyncClient(self.dsn, settings.pool_size, settings.pool_timeout,
                                        prepared=settings.prepared_statements)
        self.enqueuer: Enqueuer = self._enqueuer()
        atexit.register(self.close)
        current.set_current(self)  # by-name signatures that name no app use this one

    def _enqueuer(self) -> Enqueuer:
        inner = EagerEnqueuer(self) if self.settings.eager else DatabaseEnqueuer(self)
        return CappedEnqueuer(inner, self.settings.max_args_bytes)

    def configure(self, **changes: Any) -> None:
        """Change settings (those given and not None) before the app first connects."""
        if self._dsn is not None and changes.get("dsn") not in (None, self._dsn):
            raise RuntimeError("configure(dsn=...) after the app has connected")
        self.settings = self.settings.with_(**changes)
        self.enqueuer = self._enqueuer()
        if self._dsn is None:  # nothing opened yet: rebuild the clients with the new sizes
            s = self.settings
            self.client = Client(self.dsn, s.pool_size, s.pool_timeout,
                                 prepared=s.prepared_statements)
            self.async_client = AsyncClient(self.dsn, s.pool_size, s.pool_timeout,
                                            prepared=s.prepared_statements)

    def __repr__(self) -> str:
        return f"<App schema={self.settings.schema} tasks={len(self.tasks)}>"

    def dsn(self) -> str:
        """The DSN in use; starts (and migrates) the embedded Postgres if none is set."""
        if self._dsn is None:
            with self._dsn_lock:
                if self._dsn is None:
                    if self.settings.dsn:
                        self._dsn = self.settings.dsn
                    else:
                        dsn = embedded.ensure_server(self.settings.home)
                        migrate_dsn(dsn, self.settings.schema)
                        self._dsn = dsn
        return self._dsn

    # -- tasks --------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(self, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(self, fn: Callable[P, R] | None = None, /,  # type: ignore[misc]
             **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue="emails")``.

        The options are those of :class:`pgqueue.options.TaskOptions` (checked
        here, at import time). The task's name defaults to the function's name;
        it is what workers look up, so producers can ``send_task("name")``
        without importing the code. With ``bind=True`` the function gets a
        :class:`pgqueue.context.JobContext` first (``self.retry()``,
        ``self.is_cancelled()``, ``self.job_id``). ``time_limit`` stops the job
        (hard); ``soft_time_limit`` raises ``SoftTimeLimitExceeded`` inside it
        first, so it can clean up. With ``atomic=True`` (and ``bind=True`` to
        reach ``self.connection``) the task's writes on that connection commit
        together with its completion: exactly-once effects, see
        :mod:`pgqueue.atomic`. ``redact`` names arguments that monitoring
        (dashboard, ``pgq jobs show``) shows as •••.
        """
        task_options = TaskOptions.from_kwargs(options)

        def register(f: Callable[P, R]) -> Task[P, R]:
            t = Task(self, f, task_options)
            existing = self.tasks.get(t.name)
            if existing is not None and existing.fn is not f and (
                existing.fn.__module__, existing.fn.__qualname__
            ) != (f.__module__, f.__qualname__):
                raise ValueError(
                    f"a task named {t.name!r} is already registered "
                    f"({existing.fn.__module__}.{existing.fn.__qualname__}); "
                    "give one of them another name with @app.task(name=...)"
                )
            functools.update_wrapper(t, f, updated=())
            self.tasks[t.name] = t
            return t

        return register(fn) if fn is not None else register

    # -- periodic tasks ---------------------------------------------------------
    def periodic(self, *, cron: str | None = None, every: dt.timedelta | None = None,
                 tz: str = "UTC", name: str | None = None, args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, queue: str | None = None,
                 priority: int | None = None, catch_up: CatchUp = "latest",
                 catch_up_window: dt.timedelta | None = None,
                 ) -> Callable[[Any], Task[Any, Any]]:
        """Run a task on a schedule: ``@app.periodic(cron="0 3 * * *", tz="Europe/Paris")``.

        Put it above ``@app.task`` (or directly on a function, which then becomes a
        task with default options). See :meth:`add_periodic` for the options.
        """
        def register(target: Any) -> Task[Any, Any]:
            task = target if isinstance(target, Task) else self.task(target)
            self.add_periodic(name or task.name, task, cron=cron, every=every, tz=tz,
                              args=args, kwargs=kwargs, queue=queue, priority=priority,
                              catch_up=catch_up, catch_up_window=catch_up_window)
            return task

        return register

    def add_periodic(self, name: str, task: Task[Any, Any] | str, *, cron: str | None = None,
                     every: dt.timedelta | None = None, tz: str = "UTC",
                     args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                     queue: str | None = None, priority: int | None = None,
                     catch_up: CatchUp = "latest",
                     catch_up_window: dt.timedelta | None = None) -> Schedule:
        """Declare a schedule named ``name``: ``cron="*/15 * * * *"`` (in ``tz``) or
        ``every=timedelta(seconds=30)``.

        ``catch_up`` says what happens to ticks missed while no scheduler ran:
        ``"latest"`` (default) runs the most recent one once, ``"skip"`` drops
        them, ``"all"`` runs each one no older than ``catch_up_window`` (1 day).
        Schedules are written to the database when a scheduler starts.
        """
        request = self._request_by_name(task.name if isinstance(task, Task) else task, args,
                                        kwargs, EnqueueOptions(queue=queue, priority=priority))
        o = request.options
        schedule = Schedule(
            name=name, task=request.task, rule=Rule(cron=cron, every=every, tz=tz),
            args_json=request.args_json, kwargs_json=request.kwargs_json,
            queue=o.queue or "default", priority=o.priority or 0,
            max_attempts=o.max_attempts or 0, catch_up=catch_up,
            catch_up_window=catch_up_window)
        if name in self.schedules and self.schedules[name] != schedule:
            raise ValueError(f"a different schedule named {name!r} is already declared")
        self.schedules[name] = schedule
        return schedule

    # -- enqueue ------------------------------------------------------------
    def enqueue(self, request: statements.EnqueueRequest,
                connection: psycopg.Connection[Any] | None = None) -> JobResult:
        return self.enqueuer.enqueue(self._prepared([request]), connection)[0]

    async def enqueue_async(self, request: statements.EnqueueRequest,
                            connection: psycopg.AsyncConnection[Any] | None = None
                            ) -> JobResult:
        return (await self.enqueuer.enqueue_async(self._prepared([request]), connection))[0]

    def enqueue_many(self, requests: Iterable[statements.EnqueueRequest | Canvas], *,
                     connection: psycopg.Connection[Any] | None = None) -> list[Any]:
        """Write many jobs in one statement: ``app.enqueue_many([add.s(1, 2), ...])``.

        All or nothing, and inside ``connection``'s transaction when one is given.
        Plain signatures are written as plain jobs; a batch holding canvases
        (chains, groups, signatures with callbacks) is written as one workflow
        per item, still in one statement, and each item's result handle returned.
        """
        batch = list(requests)
        canvases = self._canvases(batch)
        if canvases is not None:
            plan, shapes = workflow.compile_many(self, canvases)
            written = self.enqueuer.enqueue_workflow(plan, connection)
            return [workflow.results(self, shape, written, i) for i, shape in enumerate(shapes)]
        return self.enqueuer.enqueue(self._prepared(self._plain(batch)), connection)

    async def enqueue_many_async(self, requests: Iterable[statements.EnqueueRequest | Canvas],
                                 *, connection: psycopg.AsyncConnection[Any] | None = None
                                 ) -> list[Any]:
        batch = list(requests)
        canvases = self._canvases(batch)
        if canvases is not None:
            plan, shapes = workflow.compile_many(self, canvases)
            written = await self.enqueuer.enqueue_workflow_async(plan, connection)
            return [workflow.results(self, shape, written, i) for i, shape in enumerate(shapes)]
        return await self.enqueuer.enqueue_async(self._prepared(self._plain(batch)), connection)

    def _canvases(self, batch: list[statements.EnqueueRequest | Canvas]) -> list[Canvas] | None:
        """The batch as canvases if any item needs a workflow, else None."""
        if all(type(r) is statements.EnqueueRequest or workflow.plain(r) for r in batch):
            return None
        return [r if isinstance(r, Canvas) else _as_signature(r) for r in batch]

    def _plain(self, batch: list[statements.EnqueueRequest | Canvas]
               ) -> list[statements.EnqueueRequest]:
        return [r.request(self) if isinstance(r, Signature) else r  # type: ignore[misc]
                for r in batch]

    def apply_canvas(self, canvas: Canvas, call: Any,
                     connection: psycopg.Connection[Any] | None = None) -> Any:
        """Enqueue a signature, chain, group or chord (what their ``apply_async`` calls)."""
        return workflow.apply(self, canvas, call, connection)

    async def apply_canvas_async(self, canvas: Canvas, call: Any,
                                 connection: psycopg.AsyncConnection[Any] | None = None
                                 ) -> Any:
        return await workflow.apply_async(self, canvas, call, connection)

    def GroupResult(self, group_id: int) -> GroupResult:
        """A GroupResult for a group id kept from earlier (``g.id``)."""
        return self.enqueuer.lookup_group(group_id) or GroupResult(self, group_id)

    def results(self, ids: list[int]) -> list[JobResult]:
        """Handles on jobs by id: ``app.results([12, 13])``."""
        return [JobResult(self, i) for i in ids]

    def _prepared(self, requests: Iterable[statements.EnqueueRequest]
                  ) -> list[statements.EnqueueRequest]:
        """The batch as written: with the headers enqueue hooks add to each job."""
        if not self.hooks.any_enqueue_hooks:
            return list(requests)
        return [dataclasses.replace(r, options=r.options.with_headers(self.hooks.headers(r.task)))
                for r in requests]

    def send_task(self, name: str, args: Sequence[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, *,
                  connection: psycopg.Connection[Any] | None = None,
                  **options: Any) -> JobResult:
        """Enqueue a task by name, without importing its code (or registering it).

        ``options`` are those of :class:`pgqueue.options.EnqueueOptions`.
        """
        return self.enqueue(self._request_by_name(name, args, kwargs,
                                                  EnqueueOptions.from_kwargs(options)),
                            connection)

    async def send_task_async(self, name: str, args: Sequence[Any] = (),
                              kwargs: Mapping[str, Any] | None = None, *,
                              connection: psycopg.AsyncConnection[Any] | None = None,
                              **options: Any) -> JobResult:
        return await self.enqueue_async(
            self._request_by_name(name, args, kwargs, EnqueueOptions.from_kwargs(options)),
            connection)

    def _request_by_name(self, name: str, args: Sequence[Any],
                         kwargs: Mapping[str, Any] | None,
                         options: EnqueueOptions) -> statements.EnqueueRequest:
        known = self.tasks.get(name)
        # Unknown here: max_attempts 0 lets the worker apply the task's own policy.
        if known is not None:  # the task's own merge (its defaults, its unique key)
            return known._request(args, kwargs, options)
        return statements.make_request(name, args, kwargs, options.over(UNKNOWN_TASK_DEFAULTS))

    def AsyncResult(self, job_id: int) -> JobResult:
        """A JobResult for an id kept from earlier (a web session, a log line)."""
        return self.enqueuer.lookup(job_id) or JobResult(self, job_id)

    # -- admin --------------------------------------------------------------
    def retry_failed(self, *, queue: str | None = None, task: str | None = None) -> list[int]:
        """Put every failed job (of this queue / task, if given) back; returns their ids."""
        return self.client.execute(statements.retry_jobs(self.settings.schema, queue=queue,
                                                         task=task))

    async def retry_failed_async(self, *, queue: str | None = None,
                                 task: str | None = None) -> list[int]:
        return await self.async_client.execute(
            statements.retry_jobs(self.settings.schema, queue=queue, task=task))

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names of those applied."""
        return [m.filename for m in migrate_dsn(self.dsn(), self.settings.schema)]

    def close(self) -> None:
        waiters.close(self)
        self.client.close()


def _as_signature(r: statements.EnqueueRequest) -> Signature:
    """An encoded request, in a batch that also holds canvases."""
    o = r.options
    options = {k: v for k, v in (("queue", o.queue), ("priority", o.priority),
                                 ("countdown", o.countdown), ("eta", o.eta),
                                 ("headers", o.headers), ("max_attempts", o.max_attempts))
               if v is not None}
    return Signature(r.task, encoding.loads(r.args_json), encoding.loads(r.kwargs_json),
                     options)
