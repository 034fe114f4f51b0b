"""Maintenance: the rescuer (any worker may run it, at the same time as others) and
the pruner (the scheduler's leader runs it).

The rescuer puts jobs whose lease expired back on their queue (or fails them
after ``max_rescues`` lost workers, so a job that kills every worker it touches
can't cycle forever). Its statement re-checks its condition in its WHERE
clause and skips locked rows, so many rescuers never double-rescue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from pgqueue import statements
from pgqueue.link import Link

log = logging.getLogger("pgqueue.maintenance")


class Rescuer:
    def __init__(self, link: Link, schema: str, max_rescues: int) -> None:
        self.link = link
        self.schema = schema
        self.max_rescues = max_rescues

    async def run_once(self) -> list[tuple[int, str]]:
        # Jobs whose expiry passed unstarted: the claim skips them; recorded here.
        expired = await self.link.execute(statements.expire_jobs(self.schema))
        if expired:
            log.info("%d jobs expired before they could start: %s", len(expired),
                     ", ".join(map(str, expired[:20])))
        rescued = await self.link.execute(statements.rescue_expired(self.schema,
                                                                    self.max_rescues))
        if rescued:
            log.warning("rescued %d jobs whose worker stopped heartbeating: %s", len(rescued),
                        ", ".join(f"{job_id}->{state}" for job_id, state in rescued[:20]))
        return rescued


class Pruner:
    """Deletes finished jobs (with their results and errors), tick records and gone
    workers older than the retention; a workflow's jobs go together, once all of
    them have ended and aged out. Run by the scheduler's leader.

    Every delete is a bounded batch, one autocommit statement each: no lock or
    transaction outlives a batch (workers claim meanwhile at their usual
    latency; measured in benchmarks/prune_10m.py), and the WAL arrives in small
    pieces a replica can keep up with. ``pause`` seconds between batches leave
    the CPU and disk to the workers (measured: claim p99 during a prune 1.36x
    the baseline with 0.1 s, 1.58x with none, for a 15% longer prune); progress
    is logged every ``report_every`` seconds.
    """

    def __init__(self, link: Link, schema: str, retention: dt.timedelta,
                 batch: int = 5_000, pause: float = 0.1, report_every: float = 10.0) -> None:
        if batch < 1:
            raise ValueError(f"the pruner's batch must be 1 row or more, not {batch}")
        self.link = link
        self.schema = schema
        self.retention = retention
        self.batch = batch
        self.pause = pause
        self.report_every = report_every
        self.batches: list[float] = []  # the last run's batch durations (seconds)

    async def run_once(self) -> dict[str, int]:
        self.batches = []
        jobs = await self._finished()
        # whole workflows, once every job of theirs has aged out
        workflows = await self._batches("prune_workflows", "jobs of finished workflows",
                                        lambda n: n == 0)
        # result_expires, task by task: whatever the retention
        jobs += await self._batches("prune_kept", "jobs past their result_expires",
                                    lambda n: n < self.batch)
        # one statement: job_keys has no index to batch by, and holds only the
        # keys of unique jobs still inside their window
        await self.link.execute(statements.prune(self.schema, "prune_keys", self.retention))
        ticks = await self._batches("prune_ticks", "tick records", lambda n: n < self.batch)
        workers = await self.link.execute(statements.prune(self.schema, "prune_workers",
                                                           self.retention))
        if jobs or workflows or ticks or workers:
            log.info("pruned %d finished jobs, %d jobs of finished workflows, %d tick records "
                     "and %d workers older than %s", jobs, workflows, ticks, workers,
                     self.retention)
        return {"jobs": jobs, "workflow_jobs": workflows, "ticks": ticks, "workers": workers}

    async def _finished(self) -> int:
        """prune_finished from oldest to newest, each batch starting at the last one's
        cursor (see the query)."""
        progress = _Progress("finished jobs", self.report_every)
        after: dt.datetime | None = None
        while True:
            started = time.monotonic()
            n, examined, after = await self.link.execute(statements.prune_finished(
                self.schema, self.retention, self.batch, after))
            self.batches.append(time.monotonic() - started)
            progress.add(n)
            if examined < self.batch:
                return progress.done()
            await self._rest()

    async def _batches(self, query: str, what: str, last: Callable[[int], bool]) -> int:
        progress = _Progress(what, self.report_every)
        while True:
            started = time.monotonic()
            n = await self.link.execute(statements.prune(self.schema, query,
                                                         self.retention, self.batch))
            self.batches.append(time.monotonic() - started)
            progress.add(n)
            if last(n):
                return progress.done()
            await self._rest()

    async def _rest(self) -> None:
        await asyncio.sleep(self.pause)  # even 0: lets the leader's other work run


class _Progress:
    """Counts one kind of row as batches go, logging every ``every`` seconds."""

    def __init__(self, what: str, every: float) -> None:
        self.what = what
        self.every = every
        self.total = 0
        self.started = self.logged = time.monotonic()

    def add(self, n: int) -> None:
        self.total += n
        now = time.monotonic()
        if now - self.logged >= self.every:
            self.logged = now
            log.info("pruning %s: %d so far (%.0f rows/s)", self.what, self.total,
                     self.total / (now - self.started))

    def done(self) -> int:
        elapsed = time.monotonic() - self.started
        if elapsed >= self.every:
            log.info("pruned %d %s in %.0f s (%.0f rows/s)", self.total, self.what, elapsed,
                     self.total / elapsed)
        return self.total
