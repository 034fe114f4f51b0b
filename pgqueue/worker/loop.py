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
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue import statements
from pgqueue.atomic import AtomicTarget
from pgqueue.errors import ConfigurationError
from pgqueue.job import ClaimedJob, JobState
from pgqueue.link import Link
from pgqueue.maintenance import Rescuer
from pgqueue.metrics import WorkerMetrics
from pgqueue.outcome import Committed, decide
from pgqueue.services import every
from pgqueue.settings import Settings
from pgqueue.statements import Finish
from pgqueue.worker.completer import Completer
from pgqueue.worker.executor import Executor
from pgqueue.worker.heartbeat import Heartbeat
from pgqueue.worker.listener import Listener
from pgqueue.worker.processes import ProcessPool
from pgqueue.worker.threads import Report

if TYPE_CHECKING:
    from pgqueue.app import App

log = logging.getLogger("pgqueue.worker")


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
        self._signals = 0
        self.metrics: WorkerMetrics | None = None

    # -- the loop -----------------------------------------------------------
    async def run(self) -> None:
        """Run until stop() (or SIGTERM/SIGINT); then finish running jobs and return."""
        self._install_signals()  # first: a SIGTERM during start-up still stops cleanly
        await self._start()
        try:
            while not self._stopping.is_set():
                free = self._free_slots()
                if free <= 0:
                    await self._wait(self._slot_freed)
                    continue
                wanted = min(free, self.settings.batch_size)
                self._notified.clear()
                jobs = await self._claim(wanted)
                for job in jobs:
                    self._dispatch(job)
                if len(jobs) < wanted:  # queues drained: sleep until there is work
                    await self._wait(self._notified, await self._idle_timeout())
        finally:
            await self._shutdown()

    def _free_slots(self) -> int:
        """Jobs we may claim now. Bounded by running jobs, and also by jobs held but not
        yet recorded, so a worker whose writes stall can't pile up leases (each one a
        job that would run again if this worker died)."""
        c = self.settings.concurrency
        return min(c - self.executor.busy, 2 * c - len(self.held))

    def stop(self) -> None:
        """Stop claiming; running jobs get shutdown_timeout seconds to finish."""
        self._stopping.set()

    # -- steps --------------------------------------------------------------
    async def _start(self) -> None:
        dsn = self.app.dsn()
        s = self.settings
        self.claim_link, self.finish_link = Link(dsn, "claim"), Link(dsn, "finish")
        self.beat_link, self.listen_link = Link(dsn, "heartbeat"), Link(dsn, "listen")
        self.executor = self._executor(dsn)
        if s.metrics_port:
            self.metrics = WorkerMetrics()
            self.metrics.serve(s.metrics_port, s.metrics_host)
        self.worker_id = await self.claim_link.execute(statements.register_worker(
            self.schema, name=self.name, host=socket.gethostname(), pid=os.getpid(),
            queues=s.queues, pool=s.pool, concurrency=s.concurrency,
            lease_seconds=s.lease_seconds))
        self.executor.atomic = AtomicTarget(dsn, self.schema, self.worker_id, s.concurrency)
        if self.executor.processes is not None:
            self.executor.processes.worker_id = self.worker_id
        self.completer = Completer(self.finish_link, self.schema, self.worker_id,
                                   self._recorded)
        listener = Listener(self.listen_link, self.schema, s.queues, self._notified,
                            self.executor.cancel)
        heartbeat = Heartbeat(self.beat_link, self.schema, self.worker_id, s.lease_seconds,
                              lambda: list(self.held.values()), self.executor.cancel)
        rescuer = Rescuer(self.beat_link, self.schema, s.max_rescues)
        side = [self.completer.run(), listener.run(),
                every(s.heartbeat_interval, heartbeat.run_once, "heartbeat"),
                every(s.heartbeat_interval, rescuer.run_once, "rescuer")]
        if s.beat:
            from pgqueue.scheduler import Scheduler

            side.append(Scheduler(self.app, s).run())
        self.services = [asyncio.create_task(coro) for coro in side]
        # LISTEN before the first claim, so no job committed in between is missed.
        await asyncio.wait_for(listener.listening.wait(), timeout=30)
        log.info("worker %s (id %d) serving queues %s with %d %s",
                 self.name, self.worker_id, ",".join(s.queues), s.concurrency, s.pool)

    def _executor(self, dsn: str) -> Executor:
        s = self.settings
        processes = None
        if s.pool == "processes":
            if not self.app_path:
                raise ConfigurationError("--pool processes needs --app module:app, so that "
                                         "child processes can import the tasks")
            processes = ProcessPool(s.concurrency, self.app_path,
                                    {"PGQ_DSN": dsn, "PGQ_SCHEMA": self.schema},
                                    s.max_tasks_per_child)
            processes.start()
        return Executor(self.app.tasks, s.pool, s.concurrency, processes, self.app_path,
                        self.app.hooks, self._on_done)

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        try:
            return await self.claim_link.execute(statements.claim(
                self.schema, self.worker_id, self.settings.queues, limit,
                self.settings.lease_seconds))
        except psycopg.OperationalError as exc:
            log.warning("claim failed (%s); retrying", exc)
            return []

    def _dispatch(self, job: ClaimedJob) -> None:
        self.held[job.id] = job
        self.executor.start(job)

    def _on_done(self, reports: list[Report]) -> None:
        """Outcomes from the executor, many at a time: decide what to record for each
        and hand the rows to the completer in one go."""
        records = []
        tasks = self.app.tasks
        for job, outcome, seconds in reports:
            if isinstance(outcome, Committed):  # an atomic task recorded itself
                self._recorded([], {job.id} if outcome.recorded else set())
                self.held.pop(job.id, None)
                if not outcome.recorded:
                    log.warning("job %d: lease lost, so its writes were rolled back", job.id)
                label = "succeeded" if outcome.recorded else "lease_lost"
            else:
                task = tasks.get(job.task)
                record = decide(job, outcome, task.policy if task else None)
                records.append(record)
                label = "retried" if record.state is JobState.QUEUED else record.state.value
            if self.metrics is not None:
                self.metrics.observe(job.queue, job.task, label, seconds)
        if records:
            self.completer.add(records)
        self._slot_freed.set()

    def _recorded(self, batch: list[Finish], accepted: set[int]) -> None:
        for record in batch:
            self.held.pop(record.job_id, None)
        self.jobs_done += len(accepted)
        self._slot_freed.set()

    async def _idle_timeout(self) -> float:
        timeout = self.settings.poll_interval
        try:
            due_in = await self.claim_link.execute(
                statements.seconds_until_next_job(self.schema, self.settings.queues))
        except psycopg.OperationalError:
            return min(timeout, 1.0)
        if due_in is not None:
            timeout = min(timeout, max(due_in, 0.0) + 0.001)
        return timeout

    async def _wait(self, event: asyncio.Event, timeout: float | None = None) -> None:
        """Sleep until the event, a stop request, or the timeout."""
        waiters = {asyncio.create_task(event.wait()), asyncio.create_task(self._stopping.wait())}
        _, pending = await asyncio.wait(waiters, timeout=timeout,
                                        return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        event.clear()

    async def _shutdown(self) -> None:
        if hasattr(self, "executor") and self.executor.busy:
            timeout = self.settings.shutdown_timeout
            log.info("stopping: waiting up to %ss for %d running jobs", timeout,
                     self.executor.busy)
            await self.executor.idle(timeout)
        if self.worker_id:
            await self.completer.flushed()
            await self._release_unfinished()
            with contextlib.suppress(psycopg.Error):
                await self.claim_link.execute(statements.stop_worker(self.schema,
                                                                     self.worker_id))
        for task in getattr(self, "services", []):
            task.cancel()
        await asyncio.gather(*getattr(self, "services", []), return_exceptions=True)
        if hasattr(self, "executor"):
            await self.executor.close()
        for link in ("claim_link", "finish_link", "beat_link", "listen_link"):
            if hasattr(self, link):
                await getattr(self, link).close()
        log.info("worker %s stopped after %d jobs", self.name, self.jobs_done)

    async def _release_unfinished(self) -> None:
        """Give back jobs still running: not failed, not counted as an attempt."""
        unfinished = list(self.held.values())
        if not unfinished:
            return
        with contextlib.suppress(psycopg.Error):
            released = await self.claim_link.execute(statements.release(self.schema,
                                                                        unfinished))
            log.warning("released %d unfinished jobs back to their queues: %s",
                        len(released), released[:20])
        for job in unfinished:
            self.executor.cancel(job.id)
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
        with contextlib.suppress(psycopg.Error, OSError, TimeoutError, AttributeError):
            # Parts may not exist yet if the signal came during start-up.
            await asyncio.wait_for(self.completer.flushed(), 2)
            await asyncio.wait_for(self._release_unfinished(), 5)
            await asyncio.wait_for(
                self.claim_link.execute(statements.stop_worker(self.schema, self.worker_id)), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.executor.close(), 2)
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
