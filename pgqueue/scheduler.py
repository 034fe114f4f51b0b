"""The scheduler ("beat"): run it in any number of processes; one leads and fires ticks.

Leadership is a session-level advisory lock on a connection of its own. Postgres
releases it the moment that connection ends, so when a leader dies another
process takes over within ``FOLLOWER_POLL`` seconds. The lock connection also
sets ``idle_session_timeout``: a leader that hangs (paused, partitioned) stops
talking on it and loses it after ``LEADER_TIMEOUT`` seconds. Leadership is only
an optimisation, though: each (schedule, fire time) can be enqueued once, by a
primary key, so two processes that both believe they lead still can't double a tick.

The leader also runs the built-in pruning of old finished jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue import statements
from pgqueue.link import Link
from pgqueue.maintenance import Pruner
from pgqueue.schedule import due_ticks, next_after
from pgqueue.settings import Settings

if TYPE_CHECKING:
    from pgqueue.app import App

log = logging.getLogger("pgqueue.scheduler")

FOLLOWER_POLL = 0.5   # how often a follower tries to take the lead
MAX_SLEEP = 1.0       # the leader looks at least this often (pauses, new schedules)
LEADER_TIMEOUT = 10   # seconds of silence after which Postgres drops a hung leader


class Scheduler:
    def __init__(self, app: App, settings: Settings | None = None) -> None:
        self.app = app
        self.settings = settings or app.settings
        self.schema = self.settings.schema
        self.is_leader = False
        self._lock_conn: Any = None
        self._stopping = asyncio.Event()
        self.led_since: float | None = None

    async def start(self) -> None:
        dsn = self.app.dsn()
        self.link = Link(dsn, "scheduler")
        self.lock_link = Link(self.settings.leader_dsn or dsn, "leader")
        self.pruner = Pruner(self.link, self.schema,
                             dt.timedelta(days=self.settings.retention_days))
        for schedule in self.app.schedules.values():
            await self.link.execute(statements.sync_schedule(self.schema, schedule))
        log.info("scheduler: %d schedules synced; waiting to lead", len(self.app.schedules))

    async def run(self) -> None:
        """Lead or follow until stop(); fire due ticks while leading."""
        await self.start()
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        try:
            while not self._stopping.is_set():
                sleep = FOLLOWER_POLL
                try:
                    if await self.lead():
                        sleep = await self.run_once()
                        if self.settings.retention_days and loop.time() >= next_prune:
                            next_prune = loop.time() + self.settings.prune_interval
                            await self.pruner.run_once()
                except psycopg.OperationalError as exc:
                    log.warning("scheduler: database unreachable (%s); retrying", exc)
                    self._step_down()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), sleep)
        finally:
            await self.link.close()
            await self.lock_link.close()  # releases the lock at once

    def stop(self) -> None:
        self._stopping.set()

    async def lead(self) -> bool:
        """Keep or take the lead; True while this process leads."""
        if self.is_leader:
            if self.lock_link.conn is self._lock_conn and not self.lock_link.conn.closed:
                try:
                    await self.lock_link.execute(statements.plain(self.schema, "leader_check"))
                    return True
                except psycopg.OperationalError:
                    pass
            self._step_down()
            log.warning("scheduler: lost the lead (its connection ended)")
        conn = await self.lock_link.connect()
        if self._lock_conn is not conn:
            with contextlib.suppress(psycopg.errors.UndefinedObject):  # Postgres < 14
                await self.lock_link.execute(statements.plain(
                    self.schema, "leader_session", timeout=f"{LEADER_TIMEOUT}s"))
        if await self.lock_link.execute(statements.leader_lock(self.schema)):
            self.is_leader, self._lock_conn = True, conn
            self.led_since = asyncio.get_running_loop().time()
            log.info("scheduler: leading")
        return self.is_leader

    def _step_down(self) -> None:
        self.is_leader, self._lock_conn, self.led_since = False, None, None

    async def run_once(self) -> float:
        """Fire every due tick; returns seconds until the next one (at most MAX_SLEEP)."""
        states = await self.link.execute(statements.due_schedules(self.schema))
        ticks: list[tuple[str, dt.datetime]] = []
        nexts: dict[str, dt.datetime] = {}
        for st in states:
            if st.paused:
                continue
            ticks += [(st.name, t) for t in due_ticks(st.rule, st.since, st.now, st.catch_up,
                                                      st.window)]
            nexts[st.name] = next_after(st.rule, st.now)
        if ticks:
            fired = await self.link.execute(statements.fire_ticks(self.schema, ticks))
            for name, fire_at, job_id in fired:
                log.info("scheduler: %s fired for %s (job %d)", name, fire_at.isoformat(),
                         job_id)
        if nexts:
            await self.link.execute(statements.set_next_fire(self.schema, nexts))
            now = states[0].now
            return min(MAX_SLEEP, max(0.0, (min(nexts.values()) - now).total_seconds()))
        return MAX_SLEEP


async def run_scheduler(scheduler: Scheduler) -> None:
    """``pgq beat``: run until SIGTERM/SIGINT."""
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, scheduler.stop)
    await scheduler.run()
