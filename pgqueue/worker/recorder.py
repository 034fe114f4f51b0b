"""A finished attempt's path through the worker, in this order:

1. **decide**: the pure retry decision (:func:`pgqueue.outcome.decide`) turns the
   executor's Outcome into the row to write;
2. **report**: the attempt is counted in the worker's metrics;
3. **write**: rows go out in batches (whatever finished while the last write
   ran), each applied only under its attempt's lease (first, the batch's
   unwritten progress: :mod:`pgqueue.worker.progress`);
4. **free**: the job leaves the worker's held set, which frees its claim slot.

An attempt that can't say how it ended (``Unrecorded``: an atomic task's
connection broke) is given back with its attempt uncounted, lease-checked.

Writing never dies and never loses a job silently. A lost connection retries
the same batch after reconnecting (the lease check makes a repeat harmless).
Any other failure (a value Postgres refuses, a bug) records the batch's
outcomes one by one, and an outcome that still can't be stored is replaced by
a stored error saying why, so that job ends ``failed`` and readable. If even
that fails, the job is logged with its id and dropped from the held set: its
lease then runs out and the rescuer takes it, like any job of a lost worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pgqueue import statements
from pgqueue.job import ClaimedJob, JobError, JobState
from pgqueue.link import Link, connection_lost
from pgqueue.outcome import Committed, Deferred, Unrecorded, decide, safe_text
from pgqueue.statements import Finish, Statement

if TYPE_CHECKING:
    from pgqueue.metrics import WorkerMetrics
    from pgqueue.task import Task
    from pgqueue.worker.threads import Report

log = logging.getLogger("pgqueue.worker")
T = TypeVar("T")


class Recorder:
    def __init__(self, link: Link, schema: str, worker_id: int,
                 tasks: dict[str, Task[Any, Any]], metrics: WorkerMetrics | None,
                 on_freed: Callable[[list[int], int], None],
                 unknown_task_grace: float = 600.0,
                 before_write: Callable[[Sequence[Finish]], Awaitable[None]] | None = None
                 ) -> None:
        self.link = link
        self.schema = schema
        self.worker_id = worker_id
        self.tasks = tasks
        self.metrics = metrics
        self.on_freed = on_freed  # (job ids no longer held, how many were recorded)
        self.unknown_task_grace = unknown_task_grace
        self.before_write = before_write  # never raises: the jobs' last progress
        self.pending: list[Finish] = []
        self.returns: list[ClaimedJob] = []  # attempts that can't be recorded
        self.deferred: list[tuple[ClaimedJob, Finish]] = []  # unknown tasks, for now
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- 1 and 2: decide and report (on the event loop, for a batch of reports) ------
    def add(self, reports: list[Report]) -> None:
        committed: list[int] = []  # atomic tasks: done here, whether recorded or not
        recorded = 0
        for job, outcome, seconds in reports:
            if isinstance(outcome, Deferred):
                self.deferred.append((job, decide(job, outcome)))
                label = "deferred"
            elif isinstance(outcome, Unrecorded):  # give it back, the attempt uncounted
                log.warning("job %d: %s; putting it back", job.id, outcome.reason)
                self.returns.append(job)
                label = "lease_lost"
            elif isinstance(outcome, Committed):  # an atomic task recorded itself
                committed.append(job.id)
                recorded += outcome.recorded
                if not outcome.recorded:
                    log.warning("job %d: lease lost, so its writes were rolled back", job.id)
                label = "succeeded" if outcome.recorded else "lease_lost"
            else:
                task = self.tasks.get(job.task)
                record = decide(job, outcome, task.policy if task else None)
                if task is not None and record.state is not JobState.QUEUED:
                    record = _kept(task, record)
                self.pending.append(record)
                label = "retried" if record.state is JobState.QUEUED else record.state.value
            if self.metrics is not None:
                self.metrics.observe(job.queue, job.task, label, seconds)
        if self.pending or self.returns or self.deferred:
            self._idle.clear()
            self._ready.set()
        self.on_freed(committed, recorded)  # even empty: a thread's slot came free

    # -- 3 and 4: write, then free ---------------------------------------------------
    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self.pending or self.returns or self.deferred:
                if self.returns:
                    await self._give_back()
                    continue
                if self.deferred:
                    await self._defer()
                    continue
                batch, self.pending = self.pending, []
                if self.before_write is not None:
                    await self.before_write(batch)
                accepted = await self._write(batch)
                lost = [r.job_id for r in batch if r.job_id not in accepted]
                if lost:
                    log.warning("lease lost for jobs %s: another attempt owns them now, so "
                                "these outcomes were not recorded", lost)
                self.on_freed([r.job_id for r in batch], len(accepted))
            self._idle.set()

    async def _reliably(self, stmt: Statement[T]) -> T:
        """Execute until the database answers: a lost connection is waited out (the link
        reconnects with backoff; every statement here is lease-checked, so a repeat is
        harmless), and a transient refusal (a deadlock, a lock or statement timeout) is
        tried again a few times. Any other error is raised for the caller to handle."""
        refused = 0
        while True:
            try:
                return await self.link.execute(stmt)
            except Exception as exc:
                if transient(exc) and refused < TRANSIENT_TRIES:
                    # e.g. two workers ending members of the same groups (the workflow
                    # trigger locks each group's row): Postgres rolled the whole
                    # statement back, so running it again is the fix.
                    refused += 1
                    log.info("%s: %s; trying again", stmt.query.name, type(exc).__name__)
                    await asyncio.sleep(0.05 * refused)
                    continue
                if not connection_lost(exc, self.link):
                    raise
                log.warning("%s: connection lost (%s); retrying", stmt.query.name, exc)

    async def _write(self, batch: list[Finish]) -> set[int]:
        try:
            return await self._reliably(statements.finish(self.schema, self.worker_id, batch))
        except Exception as exc:
            log.error("recording %d outcomes failed (%s: %s); recording them one by one",
                      len(batch), type(exc).__name__, exc)
            return await self._write_each(batch)

    async def _defer(self) -> None:
        """Jobs of unknown tasks go back while young; the others are recorded failed."""
        deferred, self.deferred = self.deferred, []
        jobs = [job for job, _ in deferred]
        try:
            back = await self._reliably(
                statements.defer(self.schema, jobs, self.unknown_task_grace))
        except Exception as exc:
            log.error("could not put back jobs %s (%s); recording them failed",
                      [j.id for j in jobs], exc)
            back = set()
        self.pending.extend(record for job, record in deferred if job.id not in back)
        self.on_freed([j.id for j in jobs if j.id in back], 0)

    async def _give_back(self) -> None:
        jobs, self.returns = self.returns, []
        try:
            await self._reliably(statements.release(self.schema, jobs))
        except Exception as exc:
            log.error("could not give back jobs %s (%s); their leases will expire and "
                      "the rescuer will", [j.id for j in jobs], exc)
        self.on_freed([j.id for j in jobs], 0)

    async def _write_each(self, batch: list[Finish]) -> set[int]:
        accepted: set[int] = set()
        for record in batch:
            for attempt in (record, _unstorable(record)):
                try:
                    done: set[int] = await self._reliably(
                        statements.finish(self.schema, self.worker_id, [attempt]))
                    accepted.update(done)
                    break
                except Exception as exc:
                    log.error("job %d: could not record its outcome (%s: %s)",
                              record.job_id, type(exc).__name__, exc)
                    if connection_lost(exc, self.link) or transient(exc):
                        break  # not this row's fault: the rescuer will retry the job
            else:
                log.error("job %d: left to the rescuer (its lease will expire)", record.job_id)
        return accepted

    async def flushed(self) -> None:
        """Wait until every outcome added so far is written."""
        await self._idle.wait()


# Refusals that say nothing about the rows: SQLSTATE class 40 (a deadlock, a
# serialization failure), 55P03 (lock_timeout) and 57014 (statement_timeout).
TRANSIENT_TRIES = 5


def transient(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and (state.startswith("40") or state in ("55P03", "57014"))


def _kept(task: Task[Any, Any], record: Finish) -> Finish:
    """The task's own result rules: ``ignore_result`` stores no value, and
    ``result_expires`` says when the finished job is pruned."""
    o = task.options
    if not o.ignore_result and o.result_expires is None:
        return record
    return dataclasses.replace(
        record, value_json=None if o.ignore_result else record.value_json,
        keep_for=o.result_expires)


def _unstorable(record: Finish) -> Finish:
    """What is stored instead of an outcome Postgres refused: a failure saying so."""
    what = "result" if record.state is JobState.SUCCEEDED else "error"
    original = record.error
    message = (f"the job's {what} could not be stored"
               + (f" (it had raised {safe_text(original.type)}: "
                  f"{safe_text(original.message)[:2000]})" if original else ""))
    return Finish(record.job_id, record.lease, JobState.FAILED, queue=record.queue,
                  error=JobError("UnstorableOutcome", message, ""),
                  in_workflow=record.in_workflow)
