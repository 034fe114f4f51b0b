"""How an attempt ended (data), and the pure decision of what to record for it."""

from __future__ import annotations

import traceback as tb
from dataclasses import dataclass

from pgqueue.job import ClaimedJob, JobError, JobState
from pgqueue.statements import Finish


@dataclass(frozen=True, slots=True)
class Succeeded:
    value_json: str


@dataclass(frozen=True, slots=True)
class Failed:
    error: JobError


Outcome = Succeeded | Failed


def error_from(exc: BaseException) -> JobError:
    return JobError(
        type=type(exc).__qualname__,
        message=str(exc),
        traceback="".join(tb.format_exception(exc)),
    )


def decide(job: ClaimedJob, outcome: Outcome) -> Finish:
    """The row finish_jobs writes for this attempt. Pure: no I/O, no clock."""
    if isinstance(outcome, Succeeded):
        return Finish(job.id, job.lease, JobState.SUCCEEDED, value_json=outcome.value_json)
    return Finish(job.id, job.lease, JobState.FAILED, error=outcome.error)
