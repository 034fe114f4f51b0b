"""``celery.exceptions`` for pgqueue: the exceptions a Celery task raises or catches.

Where pgqueue has the same exception, it is the same class here
(``SoftTimeLimitExceeded``, ``TimeLimitExceeded``), so ``except`` clauses written
for either API catch it. :class:`Retry` subclasses pgqueue's own ``Retry``, which
the worker turns into a scheduled retry; it takes Celery's arguments
(``message, exc, when``). :class:`TaskRevokedError` is a :class:`JobCancelled`,
what pgqueue raises for a cancelled job. ``TimeoutError`` is the built-in one,
which ``r.get(timeout=...)`` raises in both APIs.
"""

from __future__ import annotations

import builtins
import datetime as dt

from pgqueue import errors
from pgqueue.errors import SoftTimeLimitExceeded, TimeLimitExceeded

__all__ = [
    "CeleryError",
    "ChordError",
    "Ignore",
    "ImproperlyConfigured",
    "MaxRetriesExceededError",
    "NotRegistered",
    "Reject",
    "Retry",
    "SoftTimeLimitExceeded",
    "TaskError",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
]

TimeoutError = builtins.TimeoutError
TaskError = errors.TaskError  # a remote failure without an importable type (see result.py)
ChordError = errors.ChordError  # a chord's callback didn't run: a header member failed


class CeleryError(errors.PgQueueError):
    """Base of the exceptions only the Celery layer raises."""


class ImproperlyConfigured(CeleryError, errors.ConfigurationError):
    """A Celery setting pgqueue can't honour; the message says which and why."""


class NotRegistered(CeleryError, KeyError):
    """A task name this app has not registered."""


class Retry(errors.Retry):
    """What ``self.retry()`` raises: the worker schedules the job again.

    ``when`` is seconds from now or a datetime (naive means UTC); ``exc`` the
    exception that caused the retry (its type and message are recorded for the
    attempt).
    """

    def __init__(self, message: str | None = None, exc: BaseException | None = None,
                 when: float | dt.datetime | None = None, is_eager: bool = False,
                 sig: object = None, *, max_retries: int | None = None) -> None:
        countdown: float | None
        if isinstance(when, dt.datetime):
            aware = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
            countdown = max(0.0, (aware - dt.datetime.now(dt.UTC)).total_seconds())
        else:
            countdown = None if when is None else float(when)
        super().__init__(exc, countdown, max_retries)
        self.message = message
        self.when = when
        self.is_eager = is_eager
        self.sig = sig

    def humanize(self) -> str:
        if self.countdown is None:
            return "retry requested"
        return f"in {self.countdown:g}s"

    def __str__(self) -> str:
        if self.message:
            return self.message
        return f"Retry {self.humanize()}: {self.exc!r}" if self.exc else \
            f"Retry {self.humanize()}"


class MaxRetriesExceededError(CeleryError):
    """``self.retry()`` was called with no ``exc`` once the task's retries were spent."""

    def __init__(self, *args: object, task_args: object = None,
                 task_kwargs: object = None) -> None:
        super().__init__(*args)
        self.task_args = task_args
        self.task_kwargs = task_kwargs


class Ignore(CeleryError):
    """Raised by a task to end without its outcome recorded as a failure.

    pgqueue has no "leave the state as it is": the job ends succeeded with no
    result, and a state the task set with ``update_state`` is kept as what
    ``AsyncResult.state`` reads (see :mod:`pgqueue.celery.result`).
    """


class Reject(CeleryError):
    """Raised by a task to reject its job: ``requeue=True`` puts it back on its queue
    (as a retry due at once), otherwise it ends failed with this reason."""

    def __init__(self, reason: object = None, requeue: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.requeue = requeue


class TaskRevokedError(CeleryError, errors.JobCancelled):
    """What ``AsyncResult.get()`` raises for a revoked (cancelled or expired) task."""
