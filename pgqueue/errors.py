"""The exceptions pgqueue raises to its callers."""

from __future__ import annotations


class PgQueueError(Exception):
    """Base class of every error pgqueue raises on purpose."""


class ConfigurationError(PgQueueError):
    """A setting is missing or invalid; the message says which and how to fix it."""


class MigrationError(PgQueueError):
    """The schema can't be migrated (an applied migration file was changed, ...)."""


class JobNotFound(PgQueueError, LookupError):
    """No job has this id (never created, or pruned)."""


class TaskError(PgQueueError):
    """A job failed in a worker: carries the remote exception's type, message and traceback.

    ``str(err)`` reads like the original (``ZeroDivisionError: division by zero``);
    ``err.traceback`` is the worker-side traceback text.
    """

    def __init__(self, job_id: int, type: str, message: str, traceback: str) -> None:
        super().__init__(f"{type}: {message}" if message else type)
        self.job_id = job_id
        self.type = type
        self.message = message
        self.traceback = traceback


class ChordError(TaskError):
    """A chord's callback did not run because a member of its header failed (or was
    cancelled); the message names that member, ``job_id`` is its id."""


class JobCancelled(PgQueueError):
    """The job was cancelled before it could produce a result."""


class JobExpired(JobCancelled):
    """The job was not started before its ``expires`` time, so it never ran."""


class UnknownTask(PgQueueError, LookupError):
    """A worker was handed a job whose task name it has not registered."""


class Retry(PgQueueError):
    """Raised by ``raise self.retry(...)`` in a bound task: run this job again later."""

    def __init__(self, exc: BaseException | None = None, countdown: float | None = None,
                 max_retries: int | None = None) -> None:
        super().__init__(f"retry requested: {exc!r}" if exc else "retry requested")
        self.exc = exc
        self.countdown = countdown
        self.max_retries = max_retries


class SoftTimeLimitExceeded(PgQueueError):
    """Raised inside a task at its ``soft_time_limit``: catch it to clean up."""


class TimeLimitExceeded(PgQueueError):
    """Recorded for a job stopped at its hard ``time_limit``."""


class DatabaseUnavailable(PgQueueError):
    """Postgres could not be reached in time; the message says where and what to check."""


class ArgumentsTooLarge(PgQueueError, ValueError):
    """A job's arguments encode to more JSON than ``PGQ_MAX_ARGS_BYTES`` allows; raised
    before anything is written. ``.size`` and ``.limit`` are in bytes, ``.task`` names it."""

    def __init__(self, task: str, size: int, limit: int) -> None:
        super().__init__(
            f"task {task!r}: its arguments are {size:,} bytes of JSON, over the limit of "
            f"{limit:,} bytes (PGQ_MAX_ARGS_BYTES); nothing was enqueued. Store large data "
            "elsewhere (a file, a table) and pass its id, or raise PGQ_MAX_ARGS_BYTES "
            "(max_args_bytes=...)")
        self.task = task
        self.size = size
        self.limit = limit
