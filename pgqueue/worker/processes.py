"""A prefork pool for CPU-bound tasks: one child process per slot, each replaceable alone.

``concurrent.futures.ProcessPoolExecutor`` can't stop one job: killing a child
breaks the whole pool. Here each slot owns its child, so a job past its hard
time limit, a cancelled job, a segfault or an ``os._exit`` costs that child
only; it is replaced and the other slots go on. Children are started with
``spawn`` (no inherited connections or locks from the parent's threads) and
import the app themselves. Parent and child speak JSON over a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pgqueue.job import ClaimedJob, JobError
from pgqueue.outcome import (
    Cancelled,
    Committed,
    Failed,
    Outcome,
    RetryRequested,
    Succeeded,
    TimedOut,
    Unrecorded,
)
from pgqueue.progress import Number, ProgressStore, Reported

log = logging.getLogger("pgqueue.worker")
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# A child tells its parent a job's progress at most this often (plus its last
# report, just before the outcome); the parent's writer throttles the writes.
SEND_INTERVAL = 0.2


# -- the child ----------------------------------------------------------------
def _soft_limit(signum: int, frame: Any) -> None:
    from pgqueue.errors import SoftTimeLimitExceeded

    raise SoftTimeLimitExceeded("soft time limit exceeded")


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this child when its worker dies, however it dies (kill -9
    included): a job whose lease is about to be rescued must not go on running here.
    Elsewhere (no prctl) the pipe to the parent closing is the only signal."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class ChildProgress:
    """A child's progress sink: reports go to the parent over the pipe, as a JSON
    *list* (an outcome is a JSON object, so the two can't be mistaken), at most every
    ``SEND_INTERVAL`` seconds. A report that comes sooner is kept and sent when the
    interval is up (by a timer, so a task that reports and then works for an hour
    is seen at its last report); :meth:`close` sends the one still kept before the
    outcome, and after that a thread the task left behind sends nothing."""

    def __init__(self, conn: Connection, job_id: int, lease: str) -> None:
        self.conn = conn
        self.head: list[Any] = ["progress", job_id, lease]
        self.pending: Reported | None = None
        self.sent_at = float("-inf")  # the first report goes at once
        self.timer: threading.Timer | None = None
        self.closed = False
        self.lock = threading.Lock()  # the task's own threads may report too

    def __call__(self, done: Number, total: Number | None, meta: str | None) -> None:
        with self.lock:
            if self.closed:
                return
            now = time.monotonic()
            wait = self.sent_at + SEND_INTERVAL - now
            if wait > 0:
                self.pending = (done, total, meta)
                if self.timer is None:
                    self.timer = threading.Timer(wait, self._send_pending)
                    self.timer.daemon = True
                    self.timer.start()
                return
            self.sent_at = now
            self.pending = None
            self._send((done, total, meta))

    def _send_pending(self) -> None:
        with self.lock:
            self.timer = None
            if self.closed or self.pending is None:
                return
            report, self.pending = self.pending, None
            self.sent_at = time.monotonic()
            self._send(report)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if self.pending is not None:
                self._send(self.pending)
                self.pending = None

    def _send(self, report: Reported) -> None:
        # The soft time limit's signal must not cut a message in half (a partial write
        # of a large one would garble the pipe for the outcome after it).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            self.conn.send_bytes(json.dumps([*self.head, *report]).encode())
        except OSError:  # the parent is gone; this child will be too
            pass
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def child_main(conn: Connection, app_path: str, env: dict[str, str],
               parent: int | None = None) -> None:
    """Entry point of a child: import the app, then run jobs until told to stop."""
    if parent is not None:
        die_with_parent(parent)
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGUSR1, _soft_limit)
    import uuid

    from pgqueue import encoding
    from pgqueue.atomic import AtomicTarget
    from pgqueue.context import JobContext
    from pgqueue.execution import DEFAULT_LIMITS, Limits, invoke
    from pgqueue.loader import load_app

    child_app = load_app(app_path)
    tasks = child_app.tasks
    dsn, schema = env["PGQ_DSN"], env.get("PGQ_SCHEMA", "pgqueue")
    limits = Limits(int(env.get("PGQ_MAX_RESULT_BYTES", DEFAULT_LIMITS.max_result_bytes)))
    while True:
        try:
            raw = conn.recv_bytes()
        except EOFError:
            return
        msg = json.loads(raw)
        if msg is None:
            return
        task = tasks[msg["task"]]
        sink = ChildProgress(conn, msg["id"], msg["lease"])
        ctx = JobContext(msg["id"], msg["task"], msg["queue"], msg["attempt"],
                         task.policy.max_retries, lease=uuid.UUID(msg["lease"]),
                         headers=json.loads(msg["headers"]) if msg.get("headers") else {},
                         progress_sink=sink)
        atomic = AtomicTarget(dsn, schema, msg["worker_id"], 1,
                              prepared=env.get("PGQ_PREPARED_STATEMENTS") != "off")
        outcome = invoke(task, encoding.loads(msg["args"]), encoding.loads(msg["kwargs"]), ctx,
                         atomic, child_app.hooks, limits)
        sink.close()  # the last report goes before the outcome, and nothing after it
        conn.send_bytes(json.dumps(_outcome_to_wire(outcome)).encode())


def _outcome_to_wire(outcome: Outcome) -> dict[str, Any]:
    kind = type(outcome).__name__
    data: dict[str, Any] = {"kind": kind}
    if isinstance(outcome, Succeeded):
        data["value"] = outcome.value_json
    elif isinstance(outcome, Committed):
        data["recorded"] = outcome.recorded
    elif isinstance(outcome, Unrecorded):
        data["reason"] = outcome.reason
    elif isinstance(outcome, (Failed, RetryRequested, TimedOut)):
        e = outcome.error
        data["error"] = [e.type, e.message, e.traceback, e.cause_job, e.module, e.args]
        if isinstance(outcome, Failed):
            data["retryable"] = outcome.retryable
        if isinstance(outcome, RetryRequested):
            data["countdown"], data["max_retries"] = outcome.countdown, outcome.max_retries
    return data


def _outcome_from_wire(data: dict[str, Any]) -> Outcome:
    kind = data["kind"]
    if kind == "Succeeded":
        return Succeeded(data["value"])
    if kind == "Cancelled":
        return Cancelled()
    if kind == "Committed":
        return Committed(data["recorded"])
    if kind == "Unrecorded":
        return Unrecorded(data["reason"])
    error = JobError(*data["error"])
    if kind == "Failed":
        return Failed(error, data["retryable"])
    if kind == "RetryRequested":
        return RetryRequested(error, data["countdown"], data["max_retries"])
    return TimedOut(error)


# -- the parent ---------------------------------------------------------------
@dataclass
class _Child:
    process: mp.process.BaseProcess
    conn: Connection
    jobs_run: int = 0
    dead: bool = False  # killed or crashed: replace it, never send it another job


def _died(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exited with code {code}"


class ProcessPool:
    def __init__(self, size: int, app_path: str, env: dict[str, str],
                 max_tasks_per_child: int | None = None, worker_id: int = 0,
                 progress: ProgressStore | None = None) -> None:
        self.size = size
        self.app_path = app_path
        self.env = env
        self.max_tasks_per_child = max_tasks_per_child
        self._mp = mp.get_context("spawn")
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._busy: dict[int, _Child] = {}  # job id -> child running it
        self._killed: set[int] = set()
        self.worker_id = worker_id  # atomic tasks record under it
        self.progress = progress  # where the children's progress reports go

    def _spawn(self) -> _Child:
        parent, child = self._mp.Pipe()
        process = self._mp.Process(target=child_main,
                                   args=(child, self.app_path, self.env, os.getpid()),
                                   name="pgq-child", daemon=True)
        process.start()
        child.close()
        return _Child(process, parent)

    def start(self) -> None:
        for _ in range(self.size):
            self._idle.put_nowait(self._spawn())

    async def run(self, job: ClaimedJob, soft: float | None, hard: float | None) -> Outcome:
        child = await self._idle.get()
        if not child.process.is_alive():  # died while idle (OOM killer, a stray signal)
            await self._retire(child)
            child = self._spawn()
        self._busy[job.id] = child
        try:
            return await self._run_on(child, job, soft, hard)
        finally:
            del self._busy[job.id]
            self._killed.discard(job.id)
            child.jobs_run += 1
            if child.dead or not child.process.is_alive() or (
                self.max_tasks_per_child and child.jobs_run >= self.max_tasks_per_child
            ):
                await self._retire(child)
                child = self._spawn()
            self._idle.put_nowait(child)

    async def _run_on(self, child: _Child, job: ClaimedJob, soft: float | None,
                      hard: float | None) -> Outcome:
        message = {"id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt,
                   "args": job.args_json, "kwargs": job.kwargs_json,
                   "lease": str(job.lease), "worker_id": self.worker_id,
                   "headers": job.headers_json}
        child.conn.send_bytes(json.dumps(message).encode())
        reply = asyncio.ensure_future(self._receive(child, job))
        loop = asyncio.get_running_loop()
        start = loop.time()
        if soft is not None:
            done, _ = await asyncio.wait({reply}, timeout=soft)
            if not done and child.process.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, signal.SIGUSR1)
        remaining = None if hard is None else max(0.0, hard - (loop.time() - start))
        done, _ = await asyncio.wait({reply}, timeout=remaining)
        if not done:
            self._kill(child)
            reply.cancel()
            return TimedOut(JobError("TimeLimitExceeded",
                                     f"hard time limit ({hard}s) exceeded: child process "
                                     "killed and replaced", ""))
        data = reply.result()
        if data is None:  # the pipe closed: the child died
            child.dead = True
            await asyncio.to_thread(child.process.join, 5)
            if job.id in self._killed:
                return Cancelled()
            return Failed(JobError("WorkerProcessDied",
                                   f"the child process running this job "
                                   f"{_died(child.process.exitcode)}", ""))
        return _outcome_from_wire(data)

    async def _receive(self, child: _Child, job: ClaimedJob) -> dict[str, Any] | None:
        """The child's outcome for this job (None: the pipe closed, the child died);
        the progress reports sent before it go to the store on the way."""
        while True:
            await self._readable(child)
            try:
                while True:
                    data = json.loads(child.conn.recv_bytes())
                    if not isinstance(data, list):
                        outcome: dict[str, Any] = data
                        return outcome
                    self._progress(job, data)
                    if not child.conn.poll():
                        break
            except (EOFError, OSError):
                return None

    @staticmethod
    async def _readable(child: _Child) -> None:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fd = child.conn.fileno()
        loop.add_reader(fd, ready.set)
        try:
            await ready.wait()
        finally:
            loop.remove_reader(fd)

    def _progress(self, job: ClaimedJob, message: list[Any]) -> None:
        """A child's report (``ChildProgress``): kept if it is this attempt's."""
        try:
            _, job_id, lease, done, total, meta = message
        except ValueError:
            log.warning("job %d: a malformed progress message from its child: %.200r",
                        job.id, message)
            return
        if self.progress is not None and job_id == job.id and lease == str(job.lease):
            self.progress.put(job.id, job.lease, (done, total, meta))

    def _kill(self, child: _Child) -> None:
        child.dead = True
        with contextlib.suppress(ProcessLookupError, AttributeError):
            child.process.kill()

    def cancel(self, job_id: int) -> bool:
        """Kill the child running this job (it is replaced); True if there was one."""
        child = self._busy.get(job_id)
        if child is None:
            return False
        self._killed.add(job_id)
        self._kill(child)
        return True

    async def _retire(self, child: _Child) -> None:
        if child.process.is_alive() and not child.dead:
            with contextlib.suppress(OSError):
                child.conn.send_bytes(b"null")
        await asyncio.to_thread(child.process.join, 0 if child.dead else 5)
        if child.process.is_alive():
            self._kill(child)
            await asyncio.to_thread(child.process.join, 5)
        child.conn.close()

    async def close(self) -> None:
        children = list(self._busy.values())
        for child in children:
            self._kill(child)
        while not self._idle.empty():
            children.append(self._idle.get_nowait())
        await asyncio.gather(*(self._retire(c) for c in children), return_exceptions=True)
