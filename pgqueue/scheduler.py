"""The scheduler ("beat"): run it in any number of processes; one leads and fires ticks.

Leadership is a session-level advisory lock on a connection of its own. Postgres
releases it the moment that connection ends, so when a leader dies another
process takes over within ``FOLLOWER_POLL`` seconds. The lock connection also
sets ``idle_session_timeout``: a leader that hangs (paused, partitioned) stops
talking on it and loses it after ``LEADER_TIMEOUT`` seconds. Leadership is only
an optimisation, though: each (schedule, fire time) can be enqueued once, by a
primary key, so two processes that both believe they lead still can't double a tick.

Two services run, each a single step that tests call directly: ``step()`` (keep
or take the lead, then ``run_once()``: fire what is due) and ``prune_step()``
(the leader's pruning of old finished jobs). One runner, :func:`pgqueue.services.ticking`, owns
their loop, logging and backoff. A schedule row that can't be evaluated (an
unknown time zone or a bad cron rule written by SQL, args that are not a list)
is skipped, logged once per distinct error and stored in ``schedules.error``;
every other schedule keeps firing, and the row fires again once it is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue import schedule_statements as sst
from pgqueue import statements
from pgqueue.link import leader_link, worker_link
from pgqueue.maintenance import Pruner
from pgqueue.schedule import due_ticks, next_after
from pgqueue.services import ticking
from pgqueue.settings import Settings

if TYPE_CHECKING:
    from pgqueue.app import App

log = logging.getLogger("pgqueue.scheduler")

FOLLOWER_POLL = 0.5   # how often a follower tries to take the lead
MAX_SLEEP = 1.0       # the leader looks at least this often (pauses, new schedules)
LEADER_TIMEOUT = 10   # seconds of silence after which Postgres drops a hung leader

Tick = tuple[str, dt.datetime]


class Scheduler:
    def __init__(self, app: App, settings: Settings | None = None, *,
                 prune_schedules: bool = False) -> None:
        """``prune_schedules``: at start, delete stored schedules this code doesn't
        declare (only safe when every scheduler runs the same code)."""
        self.app = app
        self.settings = settings or app.settings
        self.schema = self.settings.schema
        self.prune_schedules = prune_schedules
        self.is_leader = False
        self._lock_conn: Any = None
        self._lockless: bool | None = None  # no session lock can be held: all lead
        self._stopping = asyncio.Event()
        self.led_since: float | None = None
        self._errors: dict[str, str] = {}  # schedule -> the error last logged for it
        self._next_prune = 0.0

    async def start(self) -> None:
        dsn = self.app.dsn()
        s = self.settings
        self.link = worker_link(dsn, "scheduler", s)
        self.lock_link = leader_link(dsn, s)
        self.prune_link = worker_link(dsn, "pruner", s)  # used only when leading
        self.pruner = Pruner(self.prune_link, self.schema,
                             dt.timedelta(days=self.settings.retention_days))
        for schedule in self.app.schedules.values():
            await self.link.execute(statements.sync_schedule(self.schema, schedule))
        if self.prune_schedules:
            gone = await self.link.execute(sst.prune_schedules(self.schema,
                                                               list(self.app.schedules)))
            if gone:
                log.warning("scheduler: deleted %d stored schedules this code doesn't "
                            "declare (--prune-schedules): %s", len(gone), ", ".join(gone))
        log.info("scheduler: %d schedules synced; waiting to lead", len(self.app.schedules))

    async def run(self) -> None:
        """Lead or follow until stop(); fire due ticks (and prune) while leading."""
        await self.start()
        runs = [ticking(self.step, "scheduler", error_interval=FOLLOWER_POLL,
                        stopping=self._stopping)]
        if self.settings.retention_days:
            runs.append(ticking(self.prune_step, "pruner", error_interval=FOLLOWER_POLL,
                                stopping=self._stopping))
        try:
            await asyncio.gather(*runs)
        finally:
            await self.link.close()
            await self.prune_link.close()
            await self.lock_link.close()  # releases the lock at once

    def stop(self) -> None:
        self._stopping.set()

    async def step(self) -> float:
        """Keep or take the lead, and while leading fire what is due; returns the
        seconds to wait before the next step."""
        try:
            if not await self.lead():
                return FOLLOWER_POLL
            return await self.run_once()
        except psycopg.OperationalError:
            self._step_down()
            raise

    async def prune_step(self) -> float:
        """While leading, prune once every ``prune_interval`` (at once on taking the
        lead if one is due); returns the seconds to wait before looking again."""
        loop = asyncio.get_running_loop()
        if not self.is_leader:
            return FOLLOWER_POLL
        if loop.time() >= self._next_prune:
            self._next_prune = loop.time() + self.settings.prune_interval
            await self.pruner.run_once()
        return max(FOLLOWER_POLL, self._next_prune - loop.time())

    async def lead(self) -> bool:
        """Keep or take the lead; True while this process leads."""
        if self._lockless is None:
            self._lockless = await self._no_lock_possible()
        if self._lockless:
            if not self.is_leader:
                self.is_leader, self.led_since = True, asyncio.get_running_loop().time()
            return True
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

    async def _no_lock_possible(self) -> bool:
        """True when the lock's connection goes through a transaction pooler: a
        session lock there would stay with a server session nobody owns. Then every
        scheduler fires; each tick is still enqueued once, by its primary key."""
        why = await self.lock_link.pooled(self.schema)
        if why is None or self.lock_link.direct:
            return False
        await self.lock_link.close()
        log.warning("scheduler: no leader lock through PGQ_DSN (%s), so every scheduler "
                    "fires (each tick is still enqueued once); set PGQ_LISTEN_DSN or "
                    "PGQ_LEADER_DSN to a direct connection to Postgres to elect one", why)
        return True

    def _step_down(self) -> None:
        self.is_leader, self._lock_conn, self.led_since = False, None, None

    async def run_once(self) -> float:
        """Fire every due tick; returns seconds until the next one (at most MAX_SLEEP).
        A schedule that can't be evaluated or enqueued is skipped and its error stored."""
        states = await self.link.execute(sst.schedule_states(self.schema))
        errors = {bad.name: bad.error for bad in states.bad}
        ticks: list[Tick] = []
        nexts: dict[str, dt.datetime] = {}
        for st in states.good:
            if st.paused:
                continue
            try:
                due = due_ticks(st.rule, st.since, st.now, st.catch_up, st.window)
                nexts[st.name] = next_after(st.rule, st.now)
            except Exception as exc:  # e.g. a cron rule that matches no date
                errors[st.name] = sst.problem(exc)
                continue
            ticks += [(st.name, t) for t in due]
        if ticks:
            errors.update(await self._fire(ticks))
        for name in errors:
            nexts.pop(name, None)
        self._report(errors, nexts)
        if nexts or errors:
            await self.link.execute(sst.record_schedule_checks(self.schema, nexts, errors))
        if nexts and states.now is not None:
            return min(MAX_SLEEP, max(0.0, (min(nexts.values()) - states.now).total_seconds()))
        return MAX_SLEEP

    async def _fire(self, ticks: Sequence[Tick]) -> dict[str, str]:
        """Enqueue the ticks in one statement; if a schedule's values make it fail,
        enqueue each schedule's on its own. Returns {schedule: error} of those that failed."""
        fired: list[tuple[str, dt.datetime, int]] = []
        errors: dict[str, str] = {}
        try:
            fired = await self.link.execute(statements.fire_ticks(self.schema, ticks))
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            for name, group in itertools.groupby(sorted(ticks), key=lambda t: t[0]):
                one = statements.fire_ticks(self.schema, list(group))
                try:
                    more = await self.link.execute(one)
                    fired += more
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    errors[name] = f"its job could not be enqueued: {sst.problem(exc)}"
        for name, fire_at, job_id in fired:
            log.info("scheduler: %s fired for %s (job %d)", name, fire_at.isoformat(), job_id)
        return errors

    def _report(self, errors: Mapping[str, str], nexts: Mapping[str, dt.datetime]) -> None:
        """Log each schedule's error once (again only if it changes), and its recovery."""
        for name, error in errors.items():
            if self._errors.get(name) != error:
                log.error("scheduler: skipping schedule %r until it is fixed: %s (the "
                          "other schedules keep firing)", name, error)
        for name in self._errors.keys() & nexts.keys():
            log.warning("scheduler: schedule %r is valid again", name)
        self._errors = dict(errors)


async def run_scheduler(scheduler: Scheduler) -> None:
    """``pgq beat``: run until SIGTERM/SIGINT."""
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, scheduler.stop)
    await scheduler.run()
