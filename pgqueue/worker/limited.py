"""The worker's side of global limits: what it declares, what it must leave alone.

At start a worker writes its tasks' limits (``rate_limit``, ``concurrency_limit``)
to ``task_limits``; each heartbeat it reads which tasks and which of its queues
are limited (anyone's code, or ``pgq queues limit``), and its claims then go two
ways: :func:`claim` takes plain jobs as always, skipping those, and the
database's ``claim_limited()`` takes limited ones where every limit has room.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pgqueue import statements
from pgqueue.job import ClaimedJob
from pgqueue.limits import InForce
from pgqueue.link import Link

if TYPE_CHECKING:
    from pgqueue.settings import Settings
    from pgqueue.task import Task

log = logging.getLogger("pgqueue.worker")

# A job held back by a limit gets no notification when room opens: an idle
# worker with limits in force sleeps until the next rate bucket opens, and looks
# again at least this often (a concurrency slot opens when another worker's job
# ends, which tells no one).
LIMITED_POLL = 1.0


def declared(tasks: dict[str, Task[Any, Any]]) -> list[tuple[str, int | None, float | None,
                                                             int | None]]:
    return [(name, *task.options.limits()) for name, task in sorted(tasks.items())]


class LimitWatch:
    def __init__(self, link: Link, schema: str, queues: Sequence[str]) -> None:
        self.link = link
        self.schema = schema
        self.queues = list(queues)
        self.in_force = InForce()

    async def declare(self, tasks: dict[str, Task[Any, Any]]) -> None:
        await self.link.execute(statements.sync_task_limits(self.schema, declared(tasks)))

    async def run_once(self) -> None:
        found = await self.link.execute(statements.limits_in_force(self.schema, self.queues))
        if found != self.in_force:
            log.info("limits in force: tasks %s, queues %s", found.tasks or "none",
                     found.queues or "none")
        self.in_force = found


async def claim(link: Link, schema: str, worker_id: int, settings: Settings, limit: int,
                in_force: InForce, aging: float = 0.0) -> list[ClaimedJob]:
    """Plain jobs first (one statement, as ever, priorities aged by ``aging`` seconds a
    level); then, for what is left of ``limit``, the limited ones."""
    s, queues = settings, settings.queues
    if not in_force.any:
        return await link.execute(statements.claim(
            schema, worker_id, queues, limit, s.lease_seconds, (), aging,
            s.priority_aging_cap))
    jobs: list[ClaimedJob] = []
    open_queues = [q for q in queues if q not in in_force.queues]
    if open_queues:
        jobs = await link.execute(statements.claim(
            schema, worker_id, open_queues, limit, s.lease_seconds, in_force.tasks,
            aging, s.priority_aging_cap))
    lease_seconds = s.lease_seconds
    if len(jobs) < limit:
        more: list[ClaimedJob] = await link.execute(statements.claim_limited(
            schema, worker_id, queues, limit - len(jobs), lease_seconds))
        jobs.extend(more)
    return jobs


async def next_room(link: Link, schema: str) -> float:
    """Seconds an idle worker with limits in force waits before claiming again."""
    due = await link.execute(statements.seconds_until_limit_room(schema))
    return LIMITED_POLL if due is None else min(LIMITED_POLL, max(due, 0.0) + 0.001)
