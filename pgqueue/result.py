"""JobResult: a handle on one job, to read its state and wait for its result."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from pgqueue import statements, waiters
from pgqueue.errors import ChordError, JobCancelled, JobExpired, JobNotFound, TaskError
from pgqueue.job import JobInfo, JobState
from pgqueue.progress import Progress

if TYPE_CHECKING:
    from pgqueue.app import App

# Waiting is driven by NOTIFY; this only bounds how long a lost notification
# (a dropped connection, say) could delay noticing a finished job.
RECHECK_SECONDS = _RECHECK_SECONDS = 5.0


def settle(info: JobInfo, propagate: bool) -> Any:
    """The value of a finished job, or the error it finished with."""
    if info.state is JobState.SUCCEEDED:
        return info.result
    if not propagate:
        return None
    err = info.error
    if info.state is JobState.CANCELLED:
        if err is not None and err.cause_job is not None:
            # A workflow step that never ran: an earlier step failed, and its error
            # is the workflow's (a chord's callback: ChordError, naming the member).
            kind = ChordError if err.type == "ChordError" else TaskError
            raise kind(err.cause_job, err.type, err.message, err.traceback)
        if err is not None and err.type == "JobExpired":
            raise JobExpired(f"job {info.id} ({info.task}) expired: {err.message}")
        raise JobCancelled(f"job {info.id} ({info.task}) was cancelled")
    if err is None:
        raise TaskError(info.id, "UnknownError", "the job failed without a recorded error", "")
    raise TaskError(info.id, err.type, err.message, err.traceback)


class JobResult:
    """Celery's AsyncResult, for pgqueue: ``r.id``, ``r.state``, ``r.ready()``, ``r.get()``.

    Every read goes to the database; nothing is cached, so a JobResult made
    from an id kept in a web session (``app.AsyncResult(id)``) is as good as the
    one ``delay()`` returned.
    """

    def __init__(self, app: App, job_id: int, *,
                 enqueued_at: dt.datetime | None = None, deduplicated: bool = False) -> None:
        self.app = app
        self.id = int(job_id)
        # True when the enqueue found its unique key held and returned the holder.
        self.deduplicated = deduplicated
        # The time the database stored, when this handle was made by enqueueing
        # (None for one made from an id: read it with info()).
        self.enqueued_at = enqueued_at
        # Set when a canvas made this handle: a chain's previous step (``parent``),
        # link callbacks (``children``), the workflow's id.
        self.parent: Any = None
        self.children: list[Any] = []
        self.workflow_id: int | None = None

    def __repr__(self) -> str:
        return f"<JobResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- reading ------------------------------------------------------------
    def info(self) -> JobInfo:
        info = self.app.client.execute(statements.get_job(self.app.settings.schema, self.id))
        if info is None:
            raise JobNotFound(f"no job with id {self.id} (never created, or already pruned)")
        return info

    async def info_async(self) -> JobInfo:
        client = self.app.async_client
        info = await client.execute(statements.get_job(self.app.settings.schema, self.id))
        if info is None:
            raise JobNotFound(f"no job with id {self.id} (never created, or already pruned)")
        return info

    @property
    def state(self) -> JobState:
        return self.info().state

    def ready(self) -> bool:
        return self.info().state.finished

    def successful(self) -> bool:
        return self.info().state is JobState.SUCCEEDED

    def failed(self) -> bool:
        return self.info().state is JobState.FAILED

    @property
    def result(self) -> Any:
        """The return value if the job succeeded, else None (never raises)."""
        info = self.info()
        return info.result if info.state is JobState.SUCCEEDED else None

    # -- acting -------------------------------------------------------------
    def cancel(self) -> JobState | None:
        """Cancel the job: a queued one never runs; a running one is stopped.

        Returns the state right after the request: ``CANCELLED`` for a job that
        was queued, ``RUNNING`` for one its worker is now stopping (it becomes
        ``CANCELLED`` when the worker records it), None if it had already finished.
        """
        return self.app.client.execute(statements.cancel_job(self.app.settings.schema,
                                                             self.id))

    async def cancel_async(self) -> JobState | None:
        return await self.app.async_client.execute(
            statements.cancel_job(self.app.settings.schema, self.id))

    def retry(self) -> bool:
        """Put a failed or cancelled job back on its queue; False if it was neither."""
        return bool(self.app.client.execute(
            statements.retry_jobs(self.app.settings.schema, ids=[self.id])))

    async def retry_async(self) -> bool:
        requeued = await self.app.async_client.execute(
            statements.retry_jobs(self.app.settings.schema, ids=[self.id]))
        return bool(requeued)

    # -- waiting ------------------------------------------------------------
    def _step(self, info: JobInfo | None, deadline: float | None, now: float,
              timeout: float | None, propagate: bool) -> tuple[bool, Any, float]:
        """One turn of the wait loop, shared by get() and get_async().

        Returns (finished, value, seconds to wait for a notification).
        """
        if info is None:
            raise JobNotFound(f"no job with id {self.id}")
        if info.state.finished:
            return True, settle(info, propagate), 0.0
        wait = _RECHECK_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - now)
            if wait <= 0:
                raise TimeoutError(
                    f"job {self.id} ({info.task}) is still {info.state} after {timeout}s; "
                    f"is a worker running for queue {info.queue!r}?"
                )
        return False, None, wait

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """Wait for the job and return its value, or raise the error it failed with.

        Waits on LISTEN/NOTIFY, not by polling, and holds no pooled connection
        while it waits (one listener per process serves every waiter; see
        :mod:`pgqueue.waiters`). Raises ``TimeoutError`` if the job has not
        finished within ``timeout`` seconds, ``TaskError`` (with the remote type,
        message and traceback) if it failed, ``JobCancelled`` if it was
        cancelled. With ``propagate=False`` a failure returns None instead.
        """
        stmt = statements.get_job(self.app.settings.schema, self.id)
        deadline = None if timeout is None else time.monotonic() + timeout
        with waiters.waiting(self.app, self.id) as waiter:
            while True:
                waiter.clear()  # before the read: a wake-up after it is not lost
                info = self.app.client.execute(stmt)
                done, value, wait = self._step(info, deadline, time.monotonic(), timeout,
                                               propagate)
                if done:
                    return value
                waiter.wait(wait)

    async def get_async(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """``get()`` for asyncio code: ``value = await result.get_async(timeout=10)``."""
        stmt = statements.get_job(self.app.settings.schema, self.id)
        deadline = None if timeout is None else time.monotonic() + timeout
        async with waiters.waiting_async(self.app, self.id) as waiter:
            while True:
                waiter.clear()
                info = await self.app.async_client.execute(stmt)
                done, value, wait = self._step(info, deadline, time.monotonic(), timeout,
                                               propagate)
                if done:
                    return value
                await waiter.wait(wait)

    # -- progress -----------------------------------------------------------
    @property
    def progress(self) -> Progress | None:
        """What the running job last reported with ``self.update_progress()`` (at most
        half a second old, as written by its worker), or None if it hasn't reported.
        A finished job keeps its last written report; a retry starts with none."""
        return self._found(self.app.client.execute(
            statements.get_progress(self.app.settings.schema, self.id)))

    async def progress_async(self) -> Progress | None:
        """``progress`` for asyncio code: ``p = await result.progress_async()``."""
        return self._found(await self.app.async_client.execute(
            statements.get_progress(self.app.settings.schema, self.id)))

    def _found(self, rows: list[Progress | None]) -> Progress | None:
        if not rows:
            raise JobNotFound(f"no job with id {self.id} (never created, or already pruned)")
        return rows[0]
