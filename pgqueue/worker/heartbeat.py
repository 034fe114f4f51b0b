"""Every heartbeat_interval: mark the worker alive and extend the leases it holds.

A job whose lease this worker no longer holds (it was rescued after the worker
stalled) comes back missing from the reply; the worker then knows that its
outcome for that job will be refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from pgqueue import statements
from pgqueue.job import ClaimedJob
from pgqueue.worker.link import Link

log = logging.getLogger("pgqueue.worker")


class Heartbeat:
    def __init__(self, link: Link, schema: str, worker_id: int, interval: float,
                 lease_seconds: float, held: Callable[[], list[ClaimedJob]]) -> None:
        self.link = link
        self.schema = schema
        self.worker_id = worker_id
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.held = held
        self.lost: set[int] = set()

    async def run_once(self) -> None:
        held = self.held()
        kept = await self.link.execute(
            statements.extend_leases(self.schema, self.worker_id, held, self.lease_seconds)
        )
        lost = {j.id for j in held} - kept
        if lost - self.lost:
            log.warning("lost the lease of jobs %s; their outcomes will be refused",
                        sorted(lost - self.lost))
        self.lost |= lost

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except psycopg.OperationalError as exc:
                log.warning("heartbeat failed (%s); will retry", exc)
