"""JobContext: what a bound task (``@app.task(bind=True)``) gets as ``self``.

``self.job_id``, ``self.attempt``, ``self.retries``; ``raise self.retry(exc=e,
countdown=10)``; and ``self.is_cancelled()``, the flag a thread-pool task checks
to honour a cancel (threads can't be stopped from outside). ``self.request``
mirrors Celery's ``self.request.id`` / ``.retries``. An ``atomic=True`` task
also gets ``self.connection``: a psycopg connection inside the transaction
that records the job's completion. ``self.update_progress(done, total, meta)``
reports how far the job is (:mod:`pgqueue.progress`; read with ``r.progress``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgqueue import progress
from pgqueue.errors import Retry

if TYPE_CHECKING:
    import psycopg


@dataclass
class JobContext:
    job_id: int
    task: str
    queue: str
    attempt: int
    max_retries: int | None  # None: retried forever
    lease: uuid.UUID | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # A plain flag, not a threading.Event: reading and setting a bool is atomic under
    # the GIL, nobody waits on it, and an Event costs a lock and a condition per job.
    _cancelled: bool = field(default=False, repr=False)
    thread_id: int | None = field(default=None, repr=False)
    # An atomic task's open transaction: its writes commit with the job's
    # completion, or not at all.
    connection: psycopg.Connection[Any] | None = field(default=None, repr=False)
    # Where update_progress() sends a checked report: the worker's store, the parent
    # process's pipe, eager mode's memory. None: nowhere (a context made by hand, or a
    # job whose outcome is already reported).
    progress_sink: progress.Sink | None = field(default=None, repr=False)

    @property
    def id(self) -> int:
        return self.job_id

    @property
    def retries(self) -> int:
        """How many times this job ran before this attempt."""
        return self.attempt - 1

    @property
    def request(self) -> JobContext:
        return self

    def retry(self, exc: BaseException | None = None, countdown: float | None = None,
              max_retries: int | None = None) -> Retry:
        """The exception to raise for a retry: ``raise self.retry(exc=e, countdown=10)``."""
        return Retry(exc, countdown, max_retries)

    def is_cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True

    def update_progress(self, done: float, total: float | None = None,
                        meta: Any = None) -> None:
        """Report how far the job is: ``self.update_progress(17, 40, {"file": name})``.

        ``done`` and ``total`` are ints or floats (``done`` at least 0, ``total``
        above 0 if given); ``meta`` anything JSON can hold, as for arguments. A bad
        value raises TypeError or ValueError here. Cheap enough for a tight loop:
        the worker keeps only the latest report and writes it at most every half
        second (and once more before the job's outcome), and never fails a job
        for a write that didn't succeed.
        """
        report = progress.check(done, total, meta)
        sink = self.progress_sink
        if sink is not None:
            sink(*report)
