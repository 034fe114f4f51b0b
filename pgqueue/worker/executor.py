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
instruction) since CPython cannot kill a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pgqueue import encoding
from pgqueue.context import JobContext
from pgqueue.errors import SoftTimeLimitExceeded, TimeLimitExceeded, UnknownTask
from pgqueue.hooks import Hooks
from pgqueue.job import ClaimedJob, JobError
from pgqueue.worker.atomic import AtomicTarget, close_pools
from pgqueue.worker.invoke import (
    arguments,
    invoke,
    outcome_of_exception,
    outcome_of_value,
    raise_in_thread,
    report,
)
from pgqueue.worker.outcome import Cancelled, Failed, Outcome, TimedOut, error_from
from pgqueue.worker.processes import ProcessPool

if TYPE_CHECKING:
    from pgqueue.task import Task


def _hard_limit_error(limit: float | None) -> JobError:
    return JobError("TimeLimitExceeded", f"hard time limit ({limit}s) exceeded", "")


class Executor:
    def __init__(self, tasks: dict[str, Task[Any, Any]], pool: str,
                 threads: ThreadPoolExecutor | None, processes: ProcessPool | None,
                 app_path: str | None, hooks: Hooks | None = None) -> None:
        self.tasks = tasks
        self.hooks = hooks or Hooks()
        self.pool = pool
        self.threads = threads
        self.processes = processes
        self.app_path = app_path
        self.contexts: dict[int, JobContext] = {}
        self.atomic: AtomicTarget | None = None  # set once the worker is registered
        self.coroutines: dict[int, asyncio.Future[Any]] = {}

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

    async def execute(self, job: ClaimedJob) -> Outcome:
        try:
            task = self._task(job.task)
            args = encoding.loads(job.args_json)
            kwargs = encoding.loads(job.kwargs_json)
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise TypeError("stored arguments must be a JSON list and a JSON object")
        except Exception as exc:
            return Failed(error_from(exc))
        ctx = JobContext(job.id, job.task, job.queue, job.attempt, task.policy.max_retries,
                         lease=job.lease,
                         headers=json.loads(job.headers_json) if job.headers_json else {})
        self.contexts[job.id] = ctx
        try:
            if self.processes is not None:
                return await self.processes.run(job, task.soft_time_limit, task.time_limit)
            if task.is_async:
                return await self._on_loop(task, args, kwargs, ctx)
            return await self._in_thread(task, args, kwargs, ctx)
        finally:
            del self.contexts[job.id]

    async def _on_loop(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                       ctx: JobContext) -> Outcome:
        """A coroutine task, inside the around_task hooks (which see its exception)."""
        error: Exception | None = None
        value: Any = None
        try:
            with self.hooks.around(ctx):
                outcome, value = await self._await_task(task, args, kwargs, ctx)
        except Exception as exc:
            error = exc
            outcome = Cancelled() if ctx.is_cancelled() else outcome_of_exception(task, exc)
        report(self.hooks, ctx, outcome, value, error)
        return outcome

    async def _await_task(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                          ctx: JobContext) -> tuple[Outcome, Any]:
        """Run the coroutine under its time limits; the task's own exceptions propagate."""
        inner = asyncio.ensure_future(task.fn(*arguments(task, ctx, args), **kwargs))
        self.coroutines[ctx.job_id] = inner
        loop = asyncio.get_running_loop()
        timers = []
        expired: list[str] = []

        def expire(kind: str) -> None:
            expired.append(kind)
            inner.cancel(f"{kind} time limit exceeded")

        if task.soft_time_limit:
            timers.append(loop.call_later(task.soft_time_limit, expire, "soft"))
        if task.time_limit:
            timers.append(loop.call_later(task.time_limit, expire, "hard"))
        try:
            value = await inner
        except asyncio.CancelledError:
            if ctx.is_cancelled():
                return Cancelled(), None
            if not expired:
                raise  # the worker itself is being cancelled
            limit = task.time_limit if expired[-1] == "hard" else task.soft_time_limit
            return TimedOut(JobError("TimeLimitExceeded",
                                     f"{expired[-1]} time limit ({limit}s) exceeded", "")), None
        finally:
            for timer in timers:
                timer.cancel()
            del self.coroutines[ctx.job_id]
        return outcome_of_value(task.name, value), value

    async def _in_thread(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                         ctx: JobContext) -> Outcome:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.threads, invoke, task, args, kwargs, ctx,
                                      self.atomic, self.hooks)
        soft, hard = task.soft_time_limit, task.time_limit
        if soft:
            done, _ = await asyncio.wait({future}, timeout=soft)
            if not done:
                raise_in_thread(ctx.thread_id, SoftTimeLimitExceeded)
        if not hard:
            return await future
        done, _ = await asyncio.wait({future}, timeout=max(0.0, hard - (soft or 0.0)))
        if done:
            return future.result()
        # A thread can't be killed: ask it to stop, stop waiting, and record the limit.
        raise_in_thread(ctx.thread_id, TimeLimitExceeded)
        ctx.cancel()
        return TimedOut(_hard_limit_error(hard))

    def cancel(self, job_id: int) -> bool:
        """Stop a running job as far as its runner allows; True if it was running here."""
        ctx = self.contexts.get(job_id)
        if ctx is None:
            return False
        ctx.cancel()
        if self.processes is not None:
            self.processes.cancel(job_id)
        coro = self.coroutines.get(job_id)
        if coro is not None:
            coro.cancel("cancelled")
        return True

    async def close(self) -> None:
        if self.processes is not None:
            await self.processes.close()
        if self.threads is not None:
            with contextlib.suppress(RuntimeError):
                self.threads.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(close_pools)
