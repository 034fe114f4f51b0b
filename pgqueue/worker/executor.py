"""Runs one claimed job in the worker's pool and returns its Outcome; never raises for it.

Where a job runs depends on the pool and the task:

- ``threads`` (default): ``async def`` tasks on the event loop, plain functions
  in a thread pool.
- ``processes``: every task in a child process (:mod:`pgqueue.worker.processes`).
- ``asyncio``: ``async def`` tasks only, on the event loop; a plain function
  fails with an error saying to route it to a threads or processes worker.

Time limits and cancellation are applied here, as far as each kind of runner
allows: a coroutine is cancelled, a child process killed and replaced, a thread
can only be asked (a flag it checks, an exception raised at its next Python
instruction) since CPython cannot kill a thread. A thread past its hard limit is
reported as timed out and *abandoned*: it counts as busy until its function
returns, and what it returns then is dropped.

:meth:`Executor.start` never blocks and never raises; outcomes come back through
``on_done`` in batches (one call per event-loop turn, not one per job), which is
what lets a worker run tens of thousands of short jobs a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pgqueue import encoding
from pgqueue.atomic import AtomicTarget, close_pools
from pgqueue.context import JobContext
from pgqueue.errors import JobCancelled, SoftTimeLimitExceeded, TimeLimitExceeded, UnknownTask
from pgqueue.execution import (
    Limits,
    invoke_async,
    raise_in_thread,
    report,
)
from pgqueue.hooks import Hooks
from pgqueue.job import ClaimedJob, JobError
from pgqueue.outcome import Cancelled, Deferred, Failed, Outcome, TimedOut, error_from
from pgqueue.progress import ProgressStore
from pgqueue.worker.processes import ProcessPool
from pgqueue.worker.threads import Report, ThreadRunner

if TYPE_CHECKING:
    from pgqueue.settings import Settings
    from pgqueue.task import Task


log = logging.getLogger("pgqueue.worker")


def decode_job(job: ClaimedJob) -> tuple[list[Any], dict[str, Any], dict[str, str]]:
    """A claimed row's arguments and headers, or a ValueError that names what is wrong
    (rows written by SQL can hold what no producer would send)."""
    try:
        args = encoding.loads(job.args_json)
        kwargs = {} if job.kwargs_json == "{}" else encoding.loads(job.kwargs_json)
        headers = json.loads(job.headers_json) if job.headers_json else {}
    except RecursionError:
        raise ValueError(f"job {job.id}: its stored arguments or headers are nested too "
                         "deeply to decode") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise TypeError(f"job {job.id}: stored args must be a JSON list and kwargs a JSON "
                        f"object, not {type(args).__name__} and {type(kwargs).__name__}")
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise TypeError(f"job {job.id}: stored headers must be a JSON object of strings")
    return args, kwargs, headers


def _limit_error(kind: str, limit: float | None) -> JobError:
    return JobError("TimeLimitExceeded", f"{kind} time limit ({limit}s) exceeded", "")


class Executor:
    def __init__(self, tasks: dict[str, Task[Any, Any]], settings: Settings,
                 processes: ProcessPool | None, app_path: str | None, hooks: Hooks | None,
                 atomic: AtomicTarget, on_done: Callable[[list[Report]], None],
                 progress: ProgressStore | None = None) -> None:
        self.tasks = tasks
        self.hooks = hooks if hooks is not None and hooks.any_task_hooks else None
        self.pool = settings.pool
        self.limits = Limits(settings.max_result_bytes)
        self.processes = processes
        self.app_path = app_path
        self.on_done = on_done
        self.progress = progress  # where jobs on threads and the loop report progress
        self.loop = asyncio.get_running_loop()
        self.threads = (ThreadRunner(settings.concurrency, self.loop, self._thread_reports,
                                     self.hooks, atomic, self.limits)
                        if self.pool == "threads" else None)
        self.busy = 0  # jobs started and not reported, plus abandoned threads
        self.contexts: dict[int, JobContext] = {}
        self.coroutines: dict[int, asyncio.Task[None]] = {}  # async and process jobs
        self._timers: dict[int, list[asyncio.TimerHandle]] = {}
        self._abandoned: set[int] = set()
        self._unknown: set[str] = set()  # task names already logged as unknown
        self._reports: list[Report] = []
        self._flush_scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()

    def _task(self, name: str) -> Task[Any, Any]:
        task = self.tasks.get(name)
        if task is None:
            registered = ", ".join(sorted(self.tasks)) or "none"
            hint = f"--app {self.app_path}" if self.app_path else "--app module:app"
            raise UnknownTask(
                f"unknown task {name!r} (registered: {registered}); is the worker started "
                f"with the app that defines it ({hint}), and is it imported there?"
            )
        if self.pool == "asyncio" and not task.is_async:
            raise TypeError(f"task {name!r} is a plain function and this worker runs "
                            "--pool asyncio: route it to a threads or processes worker")
        return task

    # -- starting ------------------------------------------------------------
    def start(self, job: ClaimedJob) -> None:
        """Start running a claimed job; its outcome is reported through on_done."""
        self.busy += 1
        self._idle.clear()
        try:
            task = self._task(job.task)
            args, kwargs, headers = decode_job(job)
        except UnknownTask as exc:  # perhaps a worker with newer code can run it
            if job.task not in self._unknown:
                self._unknown.add(job.task)
                log.warning("%s; such jobs go back for a worker that knows the task, for "
                            "up to PGQ_UNKNOWN_TASK_GRACE seconds after they were enqueued",
                            exc)
            self._report(job, Deferred(error_from(exc)), 0.0)
            return
        except Exception as exc:  # a job nobody can run fails alone, with a clear error
            self._report(job, Failed(error_from(exc)), 0.0)
            return
        ctx = JobContext(job.id, job.task, job.queue, job.attempt, task.policy.max_retries,
                         lease=job.lease, headers=headers)
        # Only a bound task has a context to report with; children report on the pipe.
        if self.progress is not None and self.processes is None and task.bind:
            ctx.progress_sink = self.progress.sink(job.id, job.lease)
        self.contexts[job.id] = ctx
        if self.processes is not None:
            self.coroutines[job.id] = self.loop.create_task(self._in_process(job, task))
        elif task.is_async:
            self.coroutines[job.id] = self.loop.create_task(
                self._on_loop(job, task, args, kwargs, ctx))
        else:
            self._in_thread(job, task, args, kwargs, ctx)

    async def _in_process(self, job: ClaimedJob, task: Task[Any, Any]) -> None:
        started = time.perf_counter()
        outcome = await self.processes.run(  # type: ignore[union-attr]
            job, task.soft_time_limit, task.time_limit)
        self._report(job, outcome, time.perf_counter() - started)

    async def _on_loop(self, job: ClaimedJob, task: Task[Any, Any], args: list[Any],
                       kwargs: dict[str, Any], ctx: JobContext) -> None:
        """A coroutine task, in this asyncio task, inside the around_task hooks
        (which see its exception). Time limits and cancels cancel this task."""
        started = time.perf_counter()
        expired: list[str] = []
        if task.soft_time_limit or task.time_limit:
            me = asyncio.current_task()
            assert me is not None

            def expire(kind: str) -> None:
                expired.append(kind)
                me.cancel(f"{kind} time limit exceeded")

            self._timers[job.id] = [
                self.loop.call_later(limit, expire, kind)
                for kind, limit in (("soft", task.soft_time_limit), ("hard", task.time_limit))
                if limit]
        value: Any = None
        try:
            outcome, value, error = await invoke_async(task, args, kwargs, ctx, self.hooks,
                                                       self.limits)
        except asyncio.CancelledError as exc:
            if ctx.is_cancelled():
                outcome = Cancelled()
            elif expired:
                limit = task.time_limit if expired[-1] == "hard" else task.soft_time_limit
                outcome = TimedOut(_limit_error(expired[-1], limit))
            else:
                raise  # the worker itself is stopping
            error = exc
        if self.hooks is not None:
            report(self.hooks, ctx, outcome, value, error)
        self._report(job, outcome, time.perf_counter() - started)

    def _in_thread(self, job: ClaimedJob, task: Task[Any, Any], args: list[Any],
                   kwargs: dict[str, Any], ctx: JobContext) -> None:
        assert self.threads is not None
        # Threads never wait in the inbox: busy <= concurrency = number of threads,
        # so the limits can start counting now.
        soft, hard = task.soft_time_limit, task.time_limit
        if soft or hard:
            timers = []
            if soft:
                timers.append(self.loop.call_later(soft, self._soft_expired, job.id))
            if hard:
                timers.append(self.loop.call_later(hard, self._hard_expired, job, hard))
            self._timers[job.id] = timers
        self.threads.submit(job, task, args, kwargs, ctx)

    def _soft_expired(self, job_id: int) -> None:
        ctx = self.contexts.get(job_id)
        if ctx is not None:
            raise_in_thread(ctx.thread_id, SoftTimeLimitExceeded)

    def _hard_expired(self, job: ClaimedJob, limit: float) -> None:
        """A thread can't be killed: ask it to stop, report the limit, keep its slot."""
        ctx = self.contexts.get(job.id)
        if ctx is None:
            return
        raise_in_thread(ctx.thread_id, TimeLimitExceeded)
        ctx.cancel()
        self._abandoned.add(job.id)
        self.busy += 1  # released when the thread finally returns
        self._report(job, TimedOut(_limit_error("hard", limit)), float(limit))

    # -- reporting -----------------------------------------------------------
    def _forget(self, job_id: int) -> None:
        ctx = self.contexts.pop(job_id, None)
        if ctx is not None:  # an abandoned thread's reports go nowhere now
            ctx.progress_sink = None
        self.coroutines.pop(job_id, None)
        for timer in self._timers.pop(job_id, ()):
            timer.cancel()

    def _report(self, job: ClaimedJob, outcome: Outcome, seconds: float) -> None:
        """One outcome from the loop; reported with the others of this loop turn."""
        self._forget(job.id)
        self.busy -= 1
        self._reports.append((job, outcome, seconds))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        reports, self._reports = self._reports, []
        self._done(reports)

    def _thread_reports(self, reports: list[Report]) -> None:
        kept = []
        for report_ in reports:
            job_id = report_[0].id
            self.busy -= 1
            if job_id in self._abandoned:  # its timeout was reported already
                self._abandoned.discard(job_id)
                continue
            self._forget(job_id)
            kept.append(report_)
        self._done(kept)

    def _done(self, reports: list[Report]) -> None:
        if self.busy == 0:
            self._idle.set()
        self.on_done(reports)  # even empty: an abandoned thread's slot came free

    # -- the rest --------------------------------------------------------------
    async def idle(self, timeout: float | None) -> bool:
        """Wait until no job runs here (or the timeout); True if none does."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set()

    def cancel(self, job_id: int) -> bool:
        """Stop a running job as far as its runner allows; True if it was running here."""
        ctx = self.contexts.get(job_id)
        if ctx is None:
            return False
        ctx.cancel()
        if self.processes is not None:
            self.processes.cancel(job_id)
        elif job_id in self.coroutines:
            self.coroutines[job_id].cancel("cancelled")
        elif getattr(self.tasks.get(ctx.task), "interrupt_on_cancel", False):
            # A task that asked for it (Celery's revoke(terminate=True)) also gets an
            # exception at its thread's next Python instruction, not only the flag.
            raise_in_thread(ctx.thread_id, JobCancelled)
        return True

    def threads_alive(self) -> bool:
        return self.threads is not None and self.threads.alive()

    async def close(self) -> None:
        for task in list(self.coroutines.values()):
            task.cancel()
        await asyncio.gather(*self.coroutines.values(), return_exceptions=True)
        if self.processes is not None:
            await self.processes.close()
        if self.threads is not None:
            self.threads.close()
        await asyncio.to_thread(close_pools)
