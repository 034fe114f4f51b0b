"""Writes the progress the worker's jobs report, throttled and batched.

Job threads, coroutines and (through the parent) child processes put each
report in one :class:`pgqueue.progress.ProgressStore`, which keeps only the
latest per attempt. This writer empties it every ``FLUSH_INTERVAL`` seconds
into one ``update_progress`` statement for all of them, so a task that reports
100,000 times a second costs the database two small writes a second. The
recorder also calls :meth:`ProgressWriter.before_finish` with each batch of
outcomes it is about to write, so a job's last report is stored before its
outcome (after it, the lease check would refuse it); that is one more
statement only when a job in the batch has an unwritten report.

Both write on the recorder's connection: one connection runs its statements in
the order they were sent, so an older report can never land after a newer one.
A row locked by someone else at that moment (the heartbeat extends leases on its
own connection) is skipped, not waited for, and its report tried again: at the
next run, or, before an outcome, after a few milliseconds.
Progress is advisory: a write that fails is logged and its reports dropped (the
next reports replace them); nothing here can fail a job's outcome, or delay it
beyond a statement (a few more, by milliseconds, if its row is locked).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pgqueue import statements
from pgqueue.link import Link
from pgqueue.progress import Key, ProgressStore, Reported
from pgqueue.statements import Finish

log = logging.getLogger("pgqueue.worker")
# Before an outcome: seconds to wait before each try at a row locked by someone else.
LOCKED_RETRIES = (0.0, 0.005, 0.02, 0.05)


class ProgressWriter:
    def __init__(self, link: Link, schema: str, store: ProgressStore) -> None:
        self.link = link
        self.schema = schema
        self.store = store
        self.writes = 0  # statements sent, for tests and curiosity
        self.written = 0  # rows they changed

    async def run_once(self) -> None:
        """Write every report put since the last run. A row locked by someone else (the
        heartbeat, for a moment) keeps its report for the next run; a failure raises
        (the service runner logs it and backs off), and its reports are dropped."""
        reports = self.store.take()
        if reports:
            self.store.put_back(await self._write(reports))

    async def before_finish(self, batch: Sequence[Finish]) -> None:
        """Write the unwritten reports of these attempts, whose outcomes are next (a
        locked row is tried again a few times: its outcome will wait for that lock
        anyway); never raises."""
        reports = self.store.take((r.job_id, r.lease) for r in batch)
        try:
            for pause in LOCKED_RETRIES:
                if not reports:
                    return
                if pause:
                    await asyncio.sleep(pause)
                reports = await self._write(reports)
        except Exception as exc:
            log.warning("could not write the last progress of jobs %s (%s: %s); it is "
                        "dropped", sorted(i for i, _ in reports)[:20], type(exc).__name__,
                        exc)
            return
        if reports:
            log.info("jobs %s: their last progress was not written (their rows stayed "
                     "locked)", sorted(i for i, _ in reports)[:20])

    async def _write(self, reports: dict[Key, Reported]) -> dict[Key, Reported]:
        """Write these reports; returns those whose rows were locked by someone else."""
        self.writes += 1
        rows = await self.link.execute(statements.update_progress(self.schema, reports))
        self.written += sum(rows.values())
        return {key: r for key, r in reports.items() if rows.get(key[0]) is False}
