"""How an attempt ended (data), and the pure decision of what to record for it.

The executor only reports what happened; :func:`decide` maps (job, outcome,
retry policy) to the row finish_jobs writes. Retry rules are therefore tested
without a database or a clock.
"""

from __future__ import annotations

import random
import traceback as tb
from dataclasses import dataclass

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


Outcome = Succeeded | Failed | RetryRequested | TimedOut | Cancelled | Committed


def error_from(exc: BaseException) -> JobError:
    return JobError(
        type=type(exc).__qualname__,
        message=str(exc),
        traceback="".join(tb.format_exception(exc)),
    )


def decide(job: ClaimedJob, outcome: Outcome, policy: RetryPolicy | None = None,
           rng: random.Random | None = None) -> Finish:
    """The row finish_jobs writes for this attempt. Pure: no I/O, no clock."""
    policy = policy or RetryPolicy()
    if isinstance(outcome, Succeeded):
        # None is what a missing result row reads as: storing it would cost a row
        # and an index entry per job for nothing.
        value = None if outcome.value_json == "null" else outcome.value_json
        return Finish(job.id, job.lease, JobState.SUCCEEDED, value_json=value)
    if isinstance(outcome, Cancelled):
        return Finish(job.id, job.lease, JobState.CANCELLED)
    if isinstance(outcome, Committed):
        raise ValueError("a committed outcome is already recorded")
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
    else:  # TimedOut: retried like any failure when the task has retries
        retry = policy.retries
    if retry and job.attempt < limit:
        return Finish(job.id, job.lease, JobState.QUEUED, error=outcome.error, retry_in=delay)
    return Finish(job.id, job.lease, JobState.FAILED, error=outcome.error)
