"""Plain data decoded from job rows: what a worker claims and what a caller reads."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import Any

from pgqueue.progress import Progress


class JobState(enum.StrEnum):
    WAITING = "waiting"  # a workflow step: queued once the step it waits for succeeds
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker holds: the lease token fences every write about this attempt."""

    id: int
    task: str
    queue: str
    attempt: int
    max_attempts: int
    lease: uuid.UUID
    args_json: str
    kwargs_json: str
    headers_json: str | None = None
    in_workflow: bool = False  # a workflow's step: its finish may count it in a group


@dataclass(frozen=True, slots=True)
class JobError:
    type: str
    message: str
    traceback: str
    # For a workflow step cancelled because an earlier step failed: that step's id
    # (the error is that step's).
    cause_job: int | None = None
    # The exception's module and its args as JSON text (None: not recorded, or not
    # JSON), so a caller can raise it again as its own type (pgqueue.celery).
    module: str | None = None
    args: str | None = None


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as a caller sees it (``JobResult.info()``)."""

    id: int
    task: str
    queue: str
    state: JobState
    attempts: int
    max_attempts: int
    priority: int
    run_at: dt.datetime
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    result: Any
    error: JobError | None
    progress: Progress | None = None  # the latest its current attempt reported
    cancel_requested: bool = False  # a cancel was asked for (a running job may still run)
