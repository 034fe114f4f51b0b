"""Maintenance: the rescuer (any worker may run it, at the same time as others) and
the pruner (the scheduler's leader runs it).

The rescuer puts jobs whose lease expired back on their queue (or fails them
after ``max_rescues`` lost workers, so a job that kills every worker it touches
can't cycle forever). Its statement re-checks its condition in its WHERE
clause and skips locked rows, so many rescuers never double-rescue.
"""

from __future__ import annotations

import datetime as dt
import logging

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
    them have ended and aged out. Run by the scheduler's leader."""

    def __init__(self, link: Link, schema: str, retention: dt.timedelta,
                 batch: int = 10_000) -> None:
        self.link = link
        self.schema = schema
        self.retention = retention
        self.batch = batch

    async def run_once(self) -> dict[str, int]:
        jobs = 0
        while True:  # in batches, so no single statement locks for long
            n = await self.link.execute(statements.prune(self.schema, "prune_finished",
                                                         self.retention, self.batch))
            jobs += n
            if n < self.batch:
                break
        workflows = 0
        while True:  # whole workflows, once every job of theirs has aged out
            n = await self.link.execute(statements.prune(self.schema, "prune_workflows",
                                                         self.retention, self.batch))
            workflows += n
            if n == 0:
                break
        while True:  # result_expires, task by task: whatever the retention
            n = await self.link.execute(statements.prune(self.schema, "prune_kept",
                                                         self.retention, self.batch))
            jobs += n
            if n < self.batch:
                break
        await self.link.execute(statements.prune(self.schema, "prune_keys", self.retention))
        ticks = await self.link.execute(statements.prune(self.schema, "prune_ticks",
                                                         self.retention))
        workers = await self.link.execute(statements.prune(self.schema, "prune_workers",
                                                           self.retention))
        if jobs or workflows or ticks or workers:
            log.info("pruned %d finished jobs, %d jobs of finished workflows, %d tick records "
                     "and %d workers older than %s", jobs, workflows, ticks, workers,
                     self.retention)
        return {"jobs": jobs, "workflow_jobs": workflows, "ticks": ticks, "workers": workers}
