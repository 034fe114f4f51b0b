"""The worker's main loop: claim -> dispatch -> wait, and a graceful stop.

Read :meth:`Worker.run` first: the rest are its steps. The loop claims as many
jobs as it has free slots (one round trip for the batch), starts each, and when
the queues are empty sleeps until a NOTIFY, a due scheduled job, or the poll
interval, whichever comes first. Polling is only the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from pgqueue import statements
from pgqueue.atomic import AtomicTarget
from pgqueue.errors import ConfigurationError
from pgqueue.job import ClaimedJob
from pgqueue.link import listen_link, worker_link
from pgqueue.maintenance import Rescuer
from pgqueue.metrics import WorkerMetrics
from pgqueue.progress import FLUSH_INTERVAL, ProgressStore
from pgqueue.services import every, supervised
from pgqueue.settings import Settings
from pgqueue.worker import limited
from pgqueue.worker.executor import Executor
from pgqueue.worker.heartbeat import Heartbeat
from pgqueue.worker.listener import Listener
from pgqueue.worker.processes import ProcessPool
from pgqueue.worker.progress import ProgressWriter
from pgqueue.worker.recorder import Recorder

if TYPE_CHECKING:
    from pgqueue.app import App

log = logging.getLogger("pgqueue.worker")
# At most one claim in this many seconds applies priority aging (see _aging_now).
AGED_CLAIM_EVERY = 1.0
T = TypeVar("T")


@dataclass
class Parts:
    """What a registered worker runs with; built only once it has its id."""

    executor: Executor
    recorder: Recorder
    listener: Listener
    services: list[asyncio.Task[None]]
    progress: ProgressWriter | None = None


class Links:
    """The worker's own connections: a slow write never delays a claim."""

    def __init__(self, dsn: Callable[[], str], s: Settings) -> None:
        self.claim, self.finish = worker_link(dsn, "claim", s), worker_link(dsn, "finish", s)
        self.beat, self.listen = worker_link(dsn, "heartbeat", s), listen_link(dsn, s)

    async def close(self) -> None:
        for link in (self.claim, self.finish, self.beat, self.listen):
            await link.close()


class Worker:
    def __init__(self, app: App, settings: Settings | None = None, *,
                 app_path: str | None = None, name: str | None = None) -> None:
        self.app = app
        self.settings = settings or app.settings
        self.schema = self.settings.schema
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.app_path = app_path
        self.worker_id = 0
        self.held: dict[int, ClaimedJob] = {}  # claimed, outcome not yet recorded
        self.jobs_done = 0
        self._stopping = asyncio.Event()
        self._notified = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._aged_claim_due = 0.0  # monotonic time of the next claim that ages priorities
        self._signals = 0
        self.links = Links(app.dsn, self.settings)
        self.limits = limited.LimitWatch(self.links.beat, self.schema, self.settings.queues)
        self.parts: Parts | None = None  # once registered

    # -- the loop -----------------------------------------------------------
    async def run(self) -> None:
        """Run until stop() (or SIGTERM/SIGINT); then finish running jobs and return."""
        self._install_signals()  # first: a SIGTERM during start-up still stops cleanly
        try:
            parts = await self._start()
            if parts is not None:
                await self._serve(parts)
        finally:
            await self._shutdown()

    async def _serve(self, parts: Parts) -> None:
        while not self._stopping.is_set():
            free = self._free_slots(parts)
            if free <= 0:
                await self._wait(self._slot_freed)
                continue
            wanted = min(free, self.settings.batch_size)
            self._notified.clear()
            self._slot_freed.clear()  # set again by any job that ends from here on
            claimed_at = time.monotonic()
            jobs = await self._claim(wanted)
            for job in jobs:
                self.held[job.id] = job
                parts.executor.start(job)
            if len(jobs) < wanted:  # queues drained: sleep until there is work
                # Under a limit, a job of ours ending may be what makes room.
                also = self._slot_freed if self.limits.in_force.any else None
                timeout = await self._idle_timeout(time.monotonic() - claimed_at)
                await self._wait(self._notified, timeout, also)

    def _free_slots(self, parts: Parts) -> int:
        """Jobs we may claim now. Bounded by running jobs, and also by jobs held but not
        yet recorded, so a worker whose writes stall can't pile up leases (each one a
        job that would run again if this worker died)."""
        c = self.settings.concurrency
        return min(c - parts.executor.busy, 2 * c - len(self.held))

    def stop(self) -> None:
        """Stop claiming; running jobs get shutdown_timeout seconds to finish."""
        self._stopping.set()

    # -- steps --------------------------------------------------------------
    async def _start(self) -> Parts | None:
        """Register first, then build every part with the worker's id. None: told to
        stop before the database could be reached."""
        s = self.settings
        registered = await self._until_stopped(self.links.claim.execute(
            statements.register_worker(
                self.schema, name=self.name, host=socket.gethostname(), pid=os.getpid(),
                queues=s.queues, pool=s.pool, concurrency=s.concurrency,
                lease_seconds=s.lease_seconds), repeat=False))  # a repeat: a second row
        if registered is None:
            return None
        await self.limits.declare(self.app.tasks)  # before the first claim needs them
        await self.limits.run_once()
        self.worker_id = registered
        self.parts = parts = self._build(self.app.dsn())
        # LISTEN before the first claim, so no job committed in between is missed.
        await asyncio.wait_for(parts.listener.listening.wait(), timeout=30)
        log.info("worker %s (id %d) serving queues %s with %d %s",
                 self.name, self.worker_id, ",".join(s.queues), s.concurrency, s.pool)
        self.app.hooks.worker_event(True, self)
        return parts

    async def _until_stopped(self, step: Coroutine[Any, Any, T]) -> T | None:
        """``step``'s value, or None if stop() (a SIGTERM) comes first."""
        task = asyncio.ensure_future(step)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            log.info("stopped before the database could be reached")
            return None
        return task.result()

    def _build(self, dsn: str) -> Parts:
        s = self.settings
        metrics = None
        if s.metrics_port:
            metrics = WorkerMetrics()
            metrics.serve(s.metrics_port, s.metrics_host)
        # Progress shares the recorder's connection, so a job's last report lands
        # before its outcome (see pgqueue.worker.progress).
        store = ProgressStore()
        progress = ProgressWriter(self.links.finish, self.schema, store)
        recorder = Recorder(self.links.finish, self.schema, self.worker_id, self.app.tasks,
                            metrics, self._freed, s.unknown_task_grace,
                            progress.before_finish)
        atomic = AtomicTarget(dsn, self.schema, self.worker_id, s.concurrency,
                              s.prepared_statements)
        executor = Executor(self.app.tasks, s, self._processes(dsn, store), self.app_path,
                            self.app.hooks, atomic, recorder.add, store)
        listener = Listener(self.links.listen, self.schema, s.queues, self._notified,
                            executor.cancel)
        heartbeat = Heartbeat(self.links.beat, self.schema, self.worker_id, s.lease_seconds,
                              lambda: list(self.held.values()), executor.cancel)
        rescuer = Rescuer(self.links.beat, self.schema, s.max_rescues)
        side = {"recorder": recorder.run, "listener": listener.run,
                "heartbeat": lambda: every(s.heartbeat_interval, heartbeat.run_once,
                                           "heartbeat"),
                "rescuer": lambda: every(s.heartbeat_interval, rescuer.run_once, "rescuer"),
                "limits": lambda: every(s.heartbeat_interval, self.limits.run_once, "limits"),
                "progress": lambda: every(FLUSH_INTERVAL, progress.run_once, "progress")}
        if s.beat:
            from pgqueue.scheduler import Scheduler

            side["scheduler"] = Scheduler(self.app, s).run
        services = [asyncio.create_task(supervised(name, run)) for name, run in side.items()]
        return Parts(executor, recorder, listener, services, progress)

    def _processes(self, dsn: str, progress: ProgressStore) -> ProcessPool | None:
        s = self.settings
        if s.pool != "processes":
            return None
        if not self.app_path:
            raise ConfigurationError("--pool processes needs --app module:app, so that "
                                     "child processes can import the tasks")
        processes = ProcessPool(s.concurrency, self.app_path,
                                {"PGQ_DSN": dsn, "PGQ_SCHEMA": self.schema,
                                 "PGQ_MAX_RESULT_BYTES": str(s.max_result_bytes),
                                 "PGQ_PREPARED_STATEMENTS": "on" if s.prepared_statements
                                 else "off"},
                                s.max_tasks_per_child, self.worker_id, progress)
        processes.start()
        return processes

    def _aging_now(self) -> float:
        """Seconds a priority level for this claim (0: by priority alone). Aging makes
        the claim costlier for Postgres to plan, which it does on every claim, so at
        most one claim a second (or one a level, if levels are shorter) ages: a
        starved job may wait that much more."""
        aging = self.settings.priority_aging
        now = time.monotonic()
        if aging <= 0 or now < self._aged_claim_due:
            return 0.0
        self._aged_claim_due = now + min(AGED_CLAIM_EVERY, aging)
        return aging

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        try:
            return await limited.claim(self.links.claim, self.schema, self.worker_id,
                                       self.settings, limit, self.limits.in_force,
                                       self._aging_now())
        except psycopg.Error as exc:  # a bad row or a lost connection: never the worker's end
            log.warning("claim failed (%s: %s); retrying", type(exc).__name__, exc)
            await asyncio.sleep(0.5)
            return []

    def _freed(self, job_ids: list[int], recorded: int) -> None:
        """The recorder's last step: these jobs are no longer held here."""
        # Counted first: a thread that sees a job leave `held` sees it counted too.
        self.jobs_done += recorded
        for job_id in job_ids:
            self.held.pop(job_id, None)
        self._slot_freed.set()

    async def _idle_timeout(self, since_claim: float) -> float:
        """How long to sleep: until the next job is due (one that became due while the
        claim ran counts), a limit may have room, or the poll interval."""
        timeout = self.settings.poll_interval
        try:
            if self.limits.in_force.any:  # room under a limit opens without a notification
                timeout = min(timeout, await limited.next_room(self.links.claim, self.schema))
            due_in = await self.links.claim.execute(
                statements.seconds_until_next_job(self.schema, self.settings.queues,
                                                  since_claim))
        except psycopg.Error:
            return min(timeout, 1.0)
        if due_in is not None:
            timeout = min(timeout, max(due_in, 0.0) + 0.001)
        return timeout

    async def _wait(self, event: asyncio.Event, timeout: float | None = None,
                    also: asyncio.Event | None = None) -> None:
        """Sleep until the event (or ``also``), a stop request, or the timeout."""
        waiters = {asyncio.create_task(event.wait()), asyncio.create_task(self._stopping.wait())}
        if also is not None:
            waiters.add(asyncio.create_task(also.wait()))
        _, pending = await asyncio.wait(waiters, timeout=timeout,
                                        return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        event.clear()

    async def _shutdown(self) -> None:
        parts = self.parts
        if parts is not None:
            self.app.hooks.worker_event(False, self)
            if parts.executor.busy:
                timeout = self.settings.shutdown_timeout
                log.info("stopping: waiting up to %ss for %d running jobs", timeout,
                         parts.executor.busy)
                await parts.executor.idle(timeout)
            await parts.recorder.flushed()
            await self._release_unfinished()
            with contextlib.suppress(psycopg.Error):
                await self.links.claim.execute(statements.stop_worker(self.schema,
                                                                      self.worker_id))
            for task in parts.services:
                task.cancel()
            await asyncio.gather(*parts.services, return_exceptions=True)
            await parts.executor.close()
        elif self.worker_id:  # registered, then failed to build (a bad setting)
            with contextlib.suppress(psycopg.Error):
                await self.links.claim.execute(statements.stop_worker(self.schema,
                                                                      self.worker_id))
        await self.links.close()
        log.info("worker %s stopped after %d jobs", self.name, self.jobs_done)

    async def _release_unfinished(self) -> None:
        """Give back jobs still running: not failed, not counted as an attempt."""
        unfinished = list(self.held.values())
        if not unfinished:
            return
        with contextlib.suppress(psycopg.Error):
            released = await self.links.claim.execute(statements.release(self.schema,
                                                                          unfinished))
            log.warning("released %d unfinished jobs back to their queues: %s",
                        len(released), released[:20])
        for job in unfinished:
            if self.parts is not None:
                self.parts.executor.cancel(job.id)
            self.held.pop(job.id, None)

    # -- signals ------------------------------------------------------------
    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        name = signal.Signals(sig).name
        if self._signals == 1:
            log.info("%s: finishing running jobs (up to %ss), then stopping; send it again "
                     "to stop now", name, self.settings.shutdown_timeout)
            self.stop()
            return
        log.warning("%s again: stopping now; unfinished jobs go back to the queue", name)
        asyncio.get_running_loop().create_task(self._abort())

    async def _abort(self) -> None:
        parts, links = self.parts, self.links
        with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
            if parts is not None:
                await asyncio.wait_for(parts.recorder.flushed(), 2)
                await asyncio.wait_for(self._release_unfinished(), 5)
                await asyncio.wait_for(links.claim.execute(
                    statements.stop_worker(self.schema, self.worker_id)), 5)
        with contextlib.suppress(Exception):
            if parts is not None:
                await asyncio.wait_for(parts.executor.close(), 2)
        logging.shutdown()
        os._exit(1)


def run_worker(app: App, settings: Settings, **kwargs: Any) -> None:
    """Blocking entry point used by ``pgq worker``."""
    asyncio.run(Worker(app, settings, **kwargs).run())
    if any(t.name.startswith("pgq-job") and t.is_alive() for t in threading.enumerate()):
        # A thread past its shutdown timeout can't be stopped, and would keep the
        # interpreter alive; its job was already released back to the queue.
        logging.shutdown()
        os._exit(0)
