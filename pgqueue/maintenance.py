"""Maintenance that any worker may run, safely, at the same time as others.

The rescuer puts jobs whose lease expired back on their queue (or fails them
after ``max_rescues`` lost workers, so a job that kills every worker it touches
can't cycle forever). Its statement re-checks its condition in its WHERE
clause and skips locked rows, so many rescuers never double-rescue.
"""

from __future__ import annotations

import logging

from pgqueue import statements
from pgqueue.worker.link import Link

log = logging.getLogger("pgqueue.maintenance")


class Rescuer:
    def __init__(self, link: Link, schema: str, max_rescues: int) -> None:
        self.link = link
        self.schema = schema
        self.max_rescues = max_rescues

    async def run_once(self) -> list[tuple[int, str]]:
        rescued = await self.link.execute(statements.rescue_expired(self.schema,
                                                                    self.max_rescues))
        if rescued:
            log.warning("rescued %d jobs whose worker stopped heartbeating: %s", len(rescued),
                        ", ".join(f"{job_id}->{state}" for job_id, state in rescued[:20]))
        return rescued
