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
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgqueue import encoding
from pgqueue.atomic import AtomicTarget, ConnectionLost, run_atomically
from pgqueue.context import JobContext
from pgqueue.errors import Retry, SoftTimeLimitExceeded, TimeLimitExceeded
from pgqueue.job import JobError
from pgqueue.outcome import (
    MAX_MESSAGE,
    Cancelled,
    Committed,
    Failed,
    Outcome,
    RetryRequested,
    Succeeded,
    TimedOut,
    Unrecorded,
    error_from,
    safe_text,
)

if TYPE_CHECKING:
    from pgqueue.hooks import Hooks
    from pgqueue.task import Task


def arguments(task: Task[Any, Any], ctx: JobContext, args: list[Any]) -> list[Any]:
    return [ctx, *args] if task.bind else args


def outcome_of_exception(task: Task[Any, Any], exc: BaseException) -> Outcome:
    if isinstance(exc, ConnectionLost):
        return Unrecorded(f"the atomic task's connection broke ({exc})")
    if isinstance(exc, Retry):
        cause = exc.exc or exc
        return RetryRequested(error_from(cause), exc.countdown, exc.max_retries)
    if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)):
        return TimedOut(error_from(exc))
    return Failed(error_from(exc), retryable=task.policy.retries_on(exc))


_NONE = Succeeded("null")


@dataclass(frozen=True, slots=True)
class Limits:
    """What a result may be: its JSON at most this many bytes (PGQ_MAX_RESULT_BYTES)."""

    max_result_bytes: int = 64 * 1024 * 1024


DEFAULT_LIMITS = Limits()


def outcome_of_value(task_name: str, value: Any, limits: Limits = DEFAULT_LIMITS) -> Outcome:
    """A return value as an outcome: stored if JSON can hold it and Postgres can store it,
    else a failure that says why (never an exception: the job must end recorded)."""
    if value is None:  # most tasks return nothing
        return _NONE
    try:
        text = encoding.dumps(value, "result")
        encoding.check_size(text, limits.max_result_bytes, "the result")
    except encoding.ValueTooLarge as exc:
        return Failed(JobError("ResultTooLarge", f"task {task_name!r}: {exc} "
                               "(PGQ_MAX_RESULT_BYTES)", ""))
    except Exception as exc:  # TypeError, ValueError (NaN, NUL), RecursionError, ...
        message = f"task {task_name!r} returned a value pgqueue can't store: {exc}"
        return Failed(JobError(type(exc).__name__, safe_text(message, MAX_MESSAGE), ""))
    return Succeeded(text)


def invoke(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
           ctx: JobContext, atomic: AtomicTarget | None = None,
           hooks: Hooks | None = None, limits: Limits = DEFAULT_LIMITS) -> Outcome:
    """Run a task to completion in this thread (an ``async def`` one gets its own loop),
    inside the app's around_task hooks, which see the task's exception if it raises.

    Whatever the task raises, ``SystemExit`` and ``KeyboardInterrupt`` included,
    becomes its outcome: the thread (or child process) that runs it lives on.
    """
    ctx.thread_id = threading.get_ident()
    pid = os.getpid()
    error: BaseException | None = None
    value: Any = None
    try:
        with hooks.around(ctx) if hooks else contextlib.nullcontext():
            outcome, value = _call(task, args, kwargs, ctx, atomic, limits)
    except BaseException as exc:
        error = exc
        outcome = Cancelled() if ctx.is_cancelled() else outcome_of_exception(task, exc)
    finally:
        ctx.thread_id = None
        leave_if_forked(pid)
    if error is None and ctx.is_cancelled():
        outcome = Cancelled()
    if hooks is not None:
        report(hooks, ctx, outcome, value, error)
    return outcome


async def invoke_async(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                       ctx: JobContext, hooks: Hooks | None = None,
                       limits: Limits = DEFAULT_LIMITS
                       ) -> tuple[Outcome, Any, BaseException | None]:
    """Await an ``async def`` task on this loop, inside the hooks: (outcome, value,
    exception). ``CancelledError`` is left to the caller, which knows whether it
    was a time limit, a cancel, or the worker stopping; anything else the task
    raises, ``SystemExit`` included, is its outcome."""
    pid = os.getpid()
    try:
        with hooks.around(ctx) if hooks else contextlib.nullcontext():
            value = await task.fn(*arguments(task, ctx, args), **kwargs)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        leave_if_forked(pid)
        return (Cancelled() if ctx.is_cancelled() else outcome_of_exception(task, exc)), \
            None, exc
    leave_if_forked(pid)
    return outcome_of_value(task.name, value, limits), value, None


def leave_if_forked(pid: int) -> None:
    """In a child the task forked (which then returned into our code), exit at once:
    only the process that claimed the job may record it, and the child must not go
    on serving the worker's queue with copies of its threads and connections."""
    if os.getpid() != pid:
        os._exit(0)


def _call(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], ctx: JobContext,
          atomic: AtomicTarget | None, limits: Limits) -> tuple[Outcome, Any]:
    if task.atomic and atomic is not None and ctx.lease is not None:
        recorded, value = run_atomically(
            task.fn, arguments(task, ctx, args), kwargs, atomic, ctx.job_id, ctx.queue,
            ctx.lease,
            lambda conn: setattr(ctx, "connection", conn),
            ignore_result=task.options.ignore_result, keep_for=task.options.result_expires)
        return Committed(recorded), value
    if task.is_async:
        value = asyncio.run(task.fn(*arguments(task, ctx, args), **kwargs))
    else:
        value = task.fn(*arguments(task, ctx, args), **kwargs)
    return outcome_of_value(task.name, value, limits), value


_LABELS = {Succeeded: "succeeded", Committed: "succeeded", Failed: "failed",
           RetryRequested: "retry", TimedOut: "timed_out", Cancelled: "cancelled",
           Unrecorded: "retry"}


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
