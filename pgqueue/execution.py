"""Calls a task function and turns whatever happens into an Outcome.

Shared by the worker's thread pool, its process pool's children and eager mode,
so a job behaves the same wherever it runs; it sits below both the worker and
the producer, and imports neither. Also holds the one unsafe tool threads need: raising
an exception inside another thread (for soft time limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import threading
from typing import TYPE_CHECKING, Any

from pgqueue import encoding
from pgqueue.atomic import AtomicTarget, run_atomically
from pgqueue.context import JobContext
from pgqueue.errors import Retry, SoftTimeLimitExceeded, TimeLimitExceeded
from pgqueue.job import JobError
from pgqueue.outcome import (
    Cancelled,
    Committed,
    Failed,
    Outcome,
    RetryRequested,
    Succeeded,
    TimedOut,
    error_from,
)

if TYPE_CHECKING:
    from pgqueue.hooks import Hooks
    from pgqueue.task import Task


def arguments(task: Task[Any, Any], ctx: JobContext, args: list[Any]) -> list[Any]:
    return [ctx, *args] if task.bind else args


def outcome_of_exception(task: Task[Any, Any], exc: BaseException) -> Outcome:
    if isinstance(exc, Retry):
        cause = exc.exc or exc
        return RetryRequested(error_from(cause), exc.countdown, exc.max_retries)
    if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)):
        return TimedOut(error_from(exc))
    return Failed(error_from(exc), retryable=task.policy.retries_on(exc))


_NONE = Succeeded("null")


def outcome_of_value(task_name: str, value: Any) -> Outcome:
    if value is None:  # most tasks return nothing
        return _NONE
    try:
        return Succeeded(encoding.dumps(value))
    except TypeError as exc:
        message = f"task {task_name!r} returned a value pgqueue can't store: {exc}"
        return Failed(JobError("TypeError", message, ""))


def invoke(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
           ctx: JobContext, atomic: AtomicTarget | None = None,
           hooks: Hooks | None = None) -> Outcome:
    """Run a task to completion in this thread (an ``async def`` one gets its own loop),
    inside the app's around_task hooks, which see the task's exception if it raises."""
    ctx.thread_id = threading.get_ident()
    error: BaseException | None = None
    value: Any = None
    try:
        with hooks.around(ctx) if hooks else contextlib.nullcontext():
            outcome, value = _call(task, args, kwargs, ctx, atomic)
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not ctx.is_cancelled():
            raise
        error = exc
        outcome = Cancelled() if ctx.is_cancelled() else outcome_of_exception(task, exc)
    finally:
        ctx.thread_id = None
    if error is None and ctx.is_cancelled():
        outcome = Cancelled()
    if hooks is not None:
        report(hooks, ctx, outcome, value, error)
    return outcome


def _call(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], ctx: JobContext,
          atomic: AtomicTarget | None) -> tuple[Outcome, Any]:
    if task.atomic and atomic is not None and ctx.lease is not None:
        recorded, value = run_atomically(
            task.fn, arguments(task, ctx, args), kwargs, atomic, ctx.job_id, ctx.lease,
            lambda conn: setattr(ctx, "connection", conn))
        return Committed(recorded), value
    if task.is_async:
        value = asyncio.run(task.fn(*arguments(task, ctx, args), **kwargs))
    else:
        value = task.fn(*arguments(task, ctx, args), **kwargs)
    return outcome_of_value(task.name, value), value


_LABELS = {Succeeded: "succeeded", Committed: "succeeded", Failed: "failed",
           RetryRequested: "retry", TimedOut: "timed_out", Cancelled: "cancelled"}


def report(hooks: Hooks, ctx: JobContext, outcome: Outcome, value: Any,
           error: BaseException | None) -> None:
    """Tell the after/failure/retry hooks how the attempt ended."""
    retrying = isinstance(outcome, RetryRequested) or (
        isinstance(outcome, Failed) and outcome.retryable
        and (ctx.max_retries is None or ctx.attempt <= ctx.max_retries))
    label = "retry" if retrying else _LABELS[type(outcome)]
    hooks.finished(ctx, label, value if error is None else None, error, retrying)


def raise_in_thread(thread_id: int | None, exc_type: type[BaseException]) -> bool:
    """Ask another thread to raise ``exc_type`` at its next Python instruction.

    It can't interrupt a blocking call in C (``time.sleep``, a socket read):
    the exception arrives when that call returns. That is all CPython offers.
    """
    if thread_id is None:
        return False
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                      ctypes.py_object(exc_type))
    return bool(done == 1)
