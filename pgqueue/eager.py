"""Eager mode: run jobs inline at enqueue, like Celery's ``task_always_eager``.

With ``App(eager=True)`` (or ``PGQ_EAGER=1``) ``delay()``, ``apply_async()``,
``map()`` and ``enqueue_many()`` run each task in the calling thread and return
an :class:`EagerResult` instead of writing a row. It is meant for tests of code
that enqueues, where no worker runs. Workflows (chains, groups, chords, link
callbacks) run inline too, step by step, by the rules their trigger applies in
the database (:mod:`pgqueue.eager_workflow`).

What stays as in production, on purpose:

- Arguments go through the same JSON encoding, so a bad argument still raises
  ``TypeError`` at enqueue, and the task receives decoded values (a tuple comes
  back as a list, a ``datetime`` as a ``datetime``).
- The return value is encoded and decoded again, so ``get()`` gives what a real
  worker would have stored, and a value JSON can't hold fails the job.
- Failures are recorded, not raised: ``get()`` raises :class:`TaskError` with
  the type, message and traceback; retries follow the task's policy (run again
  at once, with no delay); an unknown task name fails like it would in a worker.

The app's task hooks (``app.hooks``) run around each attempt, as in a worker.
What differs: ``countdown`` and ``eta`` are ignored (retries run again at once),
time limits are not enforced, and nothing is written to the jobs table (a bound
task's ``self.update_progress()`` is kept in memory: ``r.progress`` is its last
report, timed by this process's clock). An
``atomic=True`` task gets ``self.connection``: the caller's connection (inside a
savepoint) when one was passed, else one from the app's pool, in a transaction
that rolls back if the task fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import itertools
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue import eager_workflow, encoding
from pgqueue.context import JobContext
from pgqueue.eager_workflow import Todo, Walk
from pgqueue.enqueuer import each
from pgqueue.errors import UnknownTask
from pgqueue.execution import (
    invoke,
    invoke_async,
    report,
)
from pgqueue.job import ClaimedJob, JobError, JobInfo, JobState
from pgqueue.outcome import Outcome, Succeeded, decide, error_from
from pgqueue.progress import Number, Progress, Sink
from pgqueue.result import JobResult, settle
from pgqueue.statements import EnqueueRequest

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.group_result import GroupResult
    from pgqueue.plan import Plan
    from pgqueue.task import Task
    from pgqueue.workflow import Written

# Eager ids come from one process-wide counter, so two eager results never share
# an id, even across apps. They name no row in the database.
_ids = itertools.count(1)
_ids_lock = threading.Lock()
# Each app's latest eager results, for app.AsyncResult(id) and assert_enqueued;
# bounded, so an app left in eager mode (a dev server) doesn't grow without end.
_KEEP = 10_000
_results: dict[App, dict[int, EagerResult]] = {}
_IDLE = psycopg.pq.TransactionStatus.IDLE


def _next_id() -> int:
    with _ids_lock:
        return next(_ids)


@dataclass(frozen=True, slots=True)
class EagerJob:
    """What was "enqueued": the request as a worker would have claimed it."""

    id: int
    request: EnqueueRequest
    info: JobInfo


class EagerResult(JobResult):
    """A finished job kept in memory: the :class:`JobResult` interface, no database.

    ``state``, ``ready()``, ``successful()``, ``failed()`` and ``result`` work as
    for a real job (the base class derives them from :meth:`info`).
    """

    def __init__(self, app: App, job: EagerJob) -> None:
        super().__init__(app, job.id, enqueued_at=job.info.created_at)
        self.job = job

    def __repr__(self) -> str:
        return f"<EagerResult {self.id} {self.job.info.task} {self.job.info.state}>"

    def info(self) -> JobInfo:
        return self.job.info

    async def info_async(self) -> JobInfo:
        return self.job.info

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """The value, or the job's error raised as :class:`TaskError` (never waits)."""
        return settle(self.job.info, propagate)

    async def get_async(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        return self.get(timeout, propagate=propagate)

    # An eager job has already finished: there is nothing left to cancel or retry.
    def cancel(self) -> JobState | None:
        return None

    async def cancel_async(self) -> JobState | None:
        return None

    def retry(self) -> bool:
        return False

    async def retry_async(self) -> bool:
        return False

    @property
    def progress(self) -> Progress | None:
        """The last progress the task reported (the attempt that ended), if any."""
        return self.job.info.progress

    async def progress_async(self) -> Progress | None:
        return self.job.info.progress


def results(app: App) -> list[EagerResult]:
    """The app's eager results so far, oldest first."""
    return list(_results.get(app, {}).values())


def lookup(app: App, job_id: int) -> EagerResult | None:
    """The eager result with this id, for ``app.AsyncResult(id)`` in eager mode."""
    return _results.get(app, {}).get(job_id)


def clear(app: App) -> None:
    """Forget the app's eager results and groups (between tests)."""
    _results.pop(app, None)
    eager_workflow.clear(app)


class EagerEnqueuer:
    """The App's enqueuer in eager mode: each job runs inline and is kept in memory."""

    def __init__(self, app: App) -> None:
        self.app = app

    def enqueue(self, batch: list[EnqueueRequest],
                connection: psycopg.Connection[Any] | None) -> list[JobResult]:
        return run(self.app, batch, connection)

    async def enqueue_async(self, batch: list[EnqueueRequest],
                            connection: psycopg.AsyncConnection[Any] | None
                            ) -> list[JobResult]:
        return await run_async(self.app, batch, connection)

    def enqueue_same(self, task: Task[..., Any], arglists: list[Sequence[Any]],
                     connection: psycopg.Connection[Any] | None) -> list[JobResult]:
        return self.app.enqueue_many(each(task, arglists), connection=connection)

    async def enqueue_same_async(self, task: Task[..., Any], arglists: list[Sequence[Any]],
                                 connection: psycopg.AsyncConnection[Any] | None
                                 ) -> list[JobResult]:
        return await self.app.enqueue_many_async(each(task, arglists), connection=connection)

    def enqueue_workflow(self, plan: Plan, connection: psycopg.Connection[Any] | None
                         ) -> Written:
        return run_plan(self.app, plan, connection)

    async def enqueue_workflow_async(self, plan: Plan,
                                     connection: psycopg.AsyncConnection[Any] | None
                                     ) -> Written:
        return await run_plan_async(self.app, plan)

    def lookup_group(self, group_id: int) -> GroupResult | None:
        return eager_workflow.lookup_group(self.app, group_id)

    def lookup(self, job_id: int) -> JobResult | None:
        return lookup(self.app, job_id)


# -- running ------------------------------------------------------------------------
def run(app: App, batch: Sequence[EnqueueRequest],
        connection: psycopg.Connection[Any] | None = None) -> list[JobResult]:
    """Run each request now, in order (``App.enqueue_many`` in eager mode)."""
    return [_ran(app, Todo(_next_id(), request), connection) for request in batch]


async def run_async(app: App, batch: Sequence[EnqueueRequest],
                    connection: psycopg.AsyncConnection[Any] | None = None
                    ) -> list[JobResult]:
    """``run`` for ``enqueue_many_async``: ``async def`` tasks are awaited on this loop.

    Plain functions still run to completion before this returns (blocking the
    loop, as a test can afford). An atomic task needs a sync connection, so it
    gets one from the app's pool rather than ``connection``.
    """
    return [await _ran_async(app, Todo(_next_id(), request)) for request in batch]


def run_plan(app: App, plan: Plan, connection: psycopg.Connection[Any] | None = None
             ) -> Written:
    """Run a workflow's steps now, in plan order, each with the arguments its upstream
    decided (``enqueue_workflow`` in eager mode)."""
    walk = Walk(app, plan, _next_id)
    for todo in walk:
        walk.ended(todo, _ran(app, todo, connection))
    return walk.written()


async def run_plan_async(app: App, plan: Plan) -> Written:
    walk = Walk(app, plan, _next_id)
    for todo in walk:
        walk.ended(todo, await _ran_async(app, todo))
    return walk.written()


def _ran(app: App, todo: Todo, connection: psycopg.Connection[Any] | None) -> EagerResult:
    """One job run to its end and recorded (or, cancelled by its workflow, only recorded)."""
    ending = _skipped(todo) or _attempts(app, todo.job_id, todo.request, connection)
    return _record(app, todo.job_id, todo.request, ending)


async def _ran_async(app: App, todo: Todo) -> EagerResult:
    ending = _skipped(todo) or await _attempts_async(app, todo.job_id, todo.request)
    return _record(app, todo.job_id, todo.request, ending)


@dataclass(frozen=True, slots=True)
class _Ending:
    """How the last attempt ended: the state, the stored value or error, and the count."""

    state: JobState
    attempts: int
    value_json: str | None = None
    error: JobError | None = None


def _skipped(todo: Todo) -> _Ending | None:
    """A workflow step that never runs: what it waited for failed."""
    if todo.cancelled is None:
        return None
    return _Ending(JobState.CANCELLED, 0, None, todo.cancelled)


def _decided(task: Task[Any, Any], request: EnqueueRequest, attempt: int,
             outcome: Outcome) -> _Ending | None:
    """The ending after this attempt, or None if the retry policy runs it again.

    The worker's own pure decide() judges, so retries follow the same rules;
    it ends every job within its budget, so the callers' loops end too.
    """
    job = ClaimedJob(id=0, task=request.task, queue=request.options.queue or "default",
                     attempt=attempt, max_attempts=request.options.max_attempts or 0,
                     lease=uuid.uuid4(),
                     args_json=request.args_json, kwargs_json=request.kwargs_json)
    record = decide(job, outcome, task.policy)
    if record.state is JobState.QUEUED:
        return None
    return _Ending(record.state, attempt, record.value_json, record.error)


def _unknown(app: App, request: EnqueueRequest) -> _Ending:
    registered = ", ".join(sorted(app.tasks)) or "none"
    exc = UnknownTask(f"unknown task {request.task!r} (registered: {registered}); "
                      "in eager mode the task must be registered on this App")
    return _Ending(JobState.FAILED, 1, None, error_from(exc))


def _attempts(app: App, job_id: int, request: EnqueueRequest,
              connection: psycopg.Connection[Any] | None) -> _Ending:
    """Run the task until it succeeds or its retries are spent (no delay between)."""
    task = app.tasks.get(request.task)
    if task is None:
        return _unknown(app, request)
    for attempt in itertools.count(1):
        outcome = _attempt(app, task, _call(job_id, task, request, attempt), connection)
        ending = _decided(task, request, attempt, outcome)
        if ending is not None:
            return ending
    raise AssertionError("unreachable")


async def _attempts_async(app: App, job_id: int, request: EnqueueRequest) -> _Ending:
    task = app.tasks.get(request.task)
    if task is None:
        return _unknown(app, request)
    if not task.is_async:
        return _attempts(app, job_id, request, None)
    for attempt in itertools.count(1):
        outcome = await _attempt_async(app, task, _call(job_id, task, request, attempt))
        ending = _decided(task, request, attempt, outcome)
        if ending is not None:
            return ending
    raise AssertionError("unreachable")


@dataclass
class _Call:
    """One attempt's context and decoded arguments, decoded afresh each time, as a
    worker would (so a task that mutates its arguments can't leak into a retry)."""

    ctx: JobContext
    args: list[Any]
    kwargs: dict[str, Any]


def _call(job_id: int, task: Task[Any, Any], request: EnqueueRequest,
             attempt: int) -> _Call:
    ctx = JobContext(job_id, task.name, request.options.queue or "default", attempt,
                     task.policy.max_retries, headers=dict(request.options.headers or {}),
                     progress_sink=_keep_progress(job_id))
    _reported.pop(job_id, None)  # each attempt reports its own, as in a worker
    return _Call(ctx, encoding.loads(request.args_json), encoding.loads(request.kwargs_json))


async def _attempt_async(app: App, task: Task[Any, Any], call: _Call) -> Outcome:
    """An ``async def`` task on this loop, inside the app's hooks, as the worker runs it."""
    outcome, value, error = await invoke_async(task, call.args, call.kwargs, call.ctx,
                                               app.hooks)
    report(app.hooks, call.ctx, outcome, value, error)
    return outcome


def _attempt(app: App, task: Task[Any, Any], call: _Call,
             connection: psycopg.Connection[Any] | None) -> Outcome:
    if not task.atomic:
        return _inline(app, task, call)
    with contextlib.ExitStack() as stack:
        conn = connection if connection is not None else stack.enter_context(
            app.client.connection())
        if not conn.autocommit and conn.info.transaction_status == _IDLE:
            # A real enqueue's INSERT would open the caller's transaction; do the same,
            # or psycopg would run the block below as a transaction of its own and
            # commit it whatever the caller does next.
            conn.execute("SELECT 1")
        # A savepoint in the caller's transaction, or (autocommit, pool) its own.
        with conn.transaction() as tx:
            call.ctx.connection = conn
            outcome = _inline(app, task, call)
            if not isinstance(outcome, Succeeded):
                raise psycopg.Rollback(tx)  # like the worker: a failed atomic task writes nothing
        return outcome


def _inline(app: App, task: Task[Any, Any], call: _Call) -> Outcome:
    """The worker's own invoke() (hooks included); in a helper thread if this one runs
    an event loop, since invoke() runs an ``async def`` task with asyncio.run()."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return invoke(task, call.args, call.kwargs, call.ctx, None, app.hooks)
    with ThreadPoolExecutor(1, thread_name_prefix="pgq-eager") as pool:
        # In the caller's context (contextvars), so hooks and tasks see what it set.
        return pool.submit(contextvars.copy_context().run, invoke, task, call.args,
                           call.kwargs, call.ctx, None, app.hooks).result()


def _record(app: App, job_id: int, request: EnqueueRequest, ending: _Ending) -> EagerResult:
    now = dt.datetime.now(dt.UTC)
    task = app.tasks.get(request.task)
    o = request.options
    info = JobInfo(
        id=job_id, task=request.task, queue=o.queue or "default", state=ending.state,
        attempts=ending.attempts,
        max_attempts=o.max_attempts if o.max_attempts else (
            task.policy.max_attempts if task else 1),
        priority=o.priority or 0, run_at=now, created_at=now,
        started_at=now if ending.attempts else None,  # a cancelled step never started
        finished_at=now,
        result=encoding.loads(ending.value_json) if ending.value_json is not None else None,
        error=ending.error, progress=_reported.pop(job_id, None))
    result = EagerResult(app, EagerJob(job_id, request, info))
    kept = _results.setdefault(app, {})
    kept[job_id] = result
    if len(kept) > _KEEP:
        del kept[next(iter(kept))]  # the oldest
    return result


# -- progress -------------------------------------------------------------------------
# The running eager job's latest report, by id, until _record() puts it in its JobInfo.
_reported: dict[int, Progress] = {}


def _keep_progress(job_id: int) -> Sink:
    """An eager job's progress sink: its meta decoded again, as a reader of a worker's
    row would get it; the time is this process's clock (there is no database's)."""
    def keep(done: Number, total: Number | None, meta: str | None) -> None:
        _reported[job_id] = Progress(done, total, encoding.loads(meta) if meta else None,
                                     dt.datetime.now(dt.UTC))
    return keep
