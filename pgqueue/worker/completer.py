"""Records finished attempts in batches: whatever finished while the last write ran.

Under load this writes many outcomes per statement; when idle, one outcome goes
out at once (no timer adds latency). A write that fails on a broken connection
is retried with the same rows: the lease check in finish_jobs makes a retry
harmless even if the first write did commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from pgqueue import statements
from pgqueue.link import Link
from pgqueue.statements import Finish

log = logging.getLogger("pgqueue.worker")


class Completer:
    def __init__(self, link: Link, schema: str, worker_id: int,
                 on_recorded: Callable[[list[Finish], set[int]], None]) -> None:
        self.link = link
        self.schema = schema
        self.worker_id = worker_id
        self.on_recorded = on_recorded
        self.pending: list[Finish] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, records: list[Finish]) -> None:
        self.pending.extend(records)
        self._idle.clear()
        self._ready.set()

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self.pending:
                batch, self.pending = self.pending, []
                await self._write(batch)
            self._idle.set()

    async def _write(self, batch: list[Finish]) -> None:
        stmt = statements.finish(self.schema, self.worker_id, batch)
        while True:
            try:
                accepted = await self.link.execute(stmt)
                break
            except psycopg.OperationalError as exc:
                log.warning("could not record %d outcomes (%s); retrying", len(batch), exc)
        lost = [r.job_id for r in batch if r.job_id not in accepted]
        if lost:
            log.warning("lease lost for jobs %s: another attempt owns them now, so these "
                        "outcomes were not recorded", lost)
        self.on_recorded(batch, accepted)

    async def flushed(self) -> None:
        """Wait until every outcome added so far is written."""
        await self._idle.wait()
