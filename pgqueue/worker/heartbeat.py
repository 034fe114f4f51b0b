"""The heartbeat: mark the worker alive and extend the leases of the jobs it holds.

The reply says which leases still hold and which jobs were asked to cancel. A
job missing from it was rescued after this worker stalled: its outcome will be
refused, so the worker stops it rather than finish work nobody will keep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pgqueue import statements
from pgqueue.job import ClaimedJob
from pgqueue.link import Link

log = logging.getLogger("pgqueue.worker")


class Heartbeat:
    def __init__(self, link: Link, schema: str, worker_id: int, lease_seconds: float,
                 held: Callable[[], list[ClaimedJob]],
                 stop_job: Callable[[int], object]) -> None:
        self.link = link
        self.schema = schema
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.held = held
        self.stop_job = stop_job
        self.lost: set[tuple[int, object]] = set()

    async def run_once(self) -> None:
        held = self.held()
        sent = {(j.id, j.lease) for j in held}
        kept = await self.link.execute(statements.extend_leases(
            self.schema, self.worker_id, held, self.lease_seconds))
        # Only attempts still held now: one that finished meanwhile lost nothing.
        still = {(j.id, j.lease) for j in self.held()}
        lost = {(i, lease) for i, lease in sent & still if i not in kept} - self.lost
        if lost:
            ids = sorted(i for i, _ in lost)
            log.warning("lost the lease of jobs %s (another worker may run them now); "
                        "stopping them here, their outcomes would be refused", ids)
            self.lost |= lost
            for job_id in ids:
                self.stop_job(job_id)
        for job_id, cancel in kept.items():
            if cancel:
                self.stop_job(job_id)
