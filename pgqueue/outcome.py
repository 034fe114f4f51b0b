"""How an attempt ended (data), and the pure decision of what to record for it.

The executor only reports what happened; :func:`decide` maps (job, outcome,
retry policy) to the row finish_jobs writes. Retry rules are therefore tested
without a database or a clock.
"""

from __future__ import annotations

import random
import traceback as tb
from dataclasses import dataclass

from pgqueue import encoding
from pgqueue.job import ClaimedJob, JobError, JobState
from pgqueue.retry import RetryPolicy
from pgqueue.statements import Finish


@dataclass(frozen=True, slots=True)
class Succeeded:
    value_json: str


@dataclass(frozen=True, slots=True)
class Failed:
    error: JobError
    retryable: bool = False  # the task's policy says this exception is retried


@dataclass(frozen=True, slots=True)
class RetryRequested:
    """The task raised ``self.retry(...)``."""

    error: JobError
    countdown: float | None = None
    max_retries: int | None = None


@dataclass(frozen=True, slots=True)
class TimedOut:
    error: JobError


@dataclass(frozen=True, slots=True)
class Cancelled:
    pass


@dataclass(frozen=True, slots=True)
class Committed:
    """An atomic task already recorded its success with its own writes (or, if
    ``recorded`` is False, rolled both back because its lease was lost)."""

    recorded: bool


@dataclass(frozen=True, slots=True)
class Unrecorded:
    """The attempt can't say how it ended (an atomic task's connection broke, so its
    writes may or may not have committed): give the job back, the attempt uncounted,
    as for any job of a lost worker. The lease check makes that a no-op if the
    commit did happen."""

    reason: str


@dataclass(frozen=True, slots=True)
class Deferred:
    """This worker can't run the job yet (its task isn't registered here: a rolling
    deploy, new producers first). It goes back, uncounted, while it is younger than
    the grace; after that it fails with ``error``."""

    error: JobError


Outcome = (Succeeded | Failed | RetryRequested | TimedOut | Cancelled | Committed | Unrecorded
           | Deferred)


# Stored errors are for people: a 20 MB message is cut (and says so) rather than
# bloat the table or fail the write.
MAX_MESSAGE = 64 * 1024
MAX_TRACEBACK = 256 * 1024


def safe_text(text: str, limit: int | None = None) -> str:
    """Text Postgres can store: NUL bytes and lone surrogates (which text and UTF-8
    refuse) written as escapes, and at most ``limit`` characters, marked if cut."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... [truncated: {len(text) - limit} more characters]"
    return text


def _describe(exc: BaseException, show: object) -> str:
    """``str(exc)`` (or ``repr``), even for an exception whose __str__ raises."""
    for render in (show, repr):
        try:
            return str(render(exc))  # type: ignore[operator]
        except Exception:
            continue
    return f"<unprintable {type(exc).__qualname__} object>"


def _traceback(exc: BaseException) -> str:
    try:
        return "".join(tb.format_exception(exc))
    except Exception:
        return "".join(tb.format_tb(exc.__traceback__)) + _describe(exc, str)


MAX_ARGS = 16 * 1024


def _args(exc: BaseException) -> str | None:
    """The exception's args as JSON text, if JSON holds them and they are small; else
    None (they are a convenience for raising it again, never worth failing for)."""
    try:  # even .args may be a property that raises: recording must not fail
        if not exc.args:
            return "[]"
        text = encoding.dumps(list(exc.args), "exception args")
    except Exception:
        return None
    return text if len(text) <= MAX_ARGS else None


def error_from(exc: BaseException) -> JobError:
    """A stored error for any exception: readable, storable, bounded in size."""
    kind = type(exc)
    module = getattr(kind, "__module__", None)
    return JobError(
        type=safe_text(kind.__qualname__, 200),
        message=safe_text(_describe(exc, str), MAX_MESSAGE),
        traceback=safe_text(_traceback(exc), MAX_TRACEBACK),
        module=safe_text(module, 200) if isinstance(module, str) else None,
        args=_args(exc),
    )


def decide(job: ClaimedJob, outcome: Outcome, policy: RetryPolicy | None = None,
           rng: random.Random | None = None) -> Finish:
    """The row finish_jobs writes for this attempt. Pure: no I/O, no clock."""
    policy = policy or RetryPolicy()
    if isinstance(outcome, Succeeded):
        # None is what a missing result row reads as: storing it would cost a row
        # and an index entry per job for nothing.
        value = None if outcome.value_json == "null" else outcome.value_json
        return Finish(job.id, job.lease, JobState.SUCCEEDED, queue=job.queue, value_json=value,
                      in_workflow=job.in_workflow)
    if isinstance(outcome, Cancelled):
        return Finish(job.id, job.lease, JobState.CANCELLED, queue=job.queue,
                      in_workflow=job.in_workflow)
    if isinstance(outcome, Deferred):  # its grace is over: what is recorded then
        return Finish(job.id, job.lease, JobState.FAILED, queue=job.queue, error=outcome.error,
                      in_workflow=job.in_workflow)
    if isinstance(outcome, (Committed, Unrecorded)):
        raise ValueError(f"{type(outcome).__name__}: not an outcome finish_jobs writes")
    # The budget stored with the job wins (0: the producer didn't know the task).
    limit = job.max_attempts if job.max_attempts > 0 else policy.max_attempts
    delay = policy.delay(job.attempt, rng)
    if isinstance(outcome, RetryRequested):
        if outcome.max_retries is not None:
            limit = outcome.max_retries + 1
        retry = True
        if outcome.countdown is not None:
            delay = outcome.countdown
    elif isinstance(outcome, Failed):
        retry = outcome.retryable
    else:  # TimedOut: retried like any failure when the task has retries (and wants it)
        retry = policy.retries and policy.retry_timeouts
    if retry and job.attempt < limit:
        return Finish(job.id, job.lease, JobState.QUEUED, queue=job.queue, error=outcome.error,
                      retry_in=delay,
                      in_workflow=job.in_workflow)
    return Finish(job.id, job.lease, JobState.FAILED, queue=job.queue, error=outcome.error,
                  in_workflow=job.in_workflow)
