"""Long-lived job threads fed from one inbox; their outcomes go back to the loop in batches.

Why not ``loop.run_in_executor`` per job: each call costs a concurrent Future,
an asyncio Future wrapping it and one wake-up of the event loop, per job. Here a
thread takes jobs from a C-level queue and appends each outcome to a deque; only
the first outcome since the loop last looked schedules a wake-up, so under load
one wake-up carries many outcomes.

Time limits and abandoned threads are the executor's business
(:mod:`pgqueue.worker.executor`); this module only moves jobs and outcomes.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pgqueue.execution import Limits, invoke
from pgqueue.job import ClaimedJob
from pgqueue.outcome import Outcome

if TYPE_CHECKING:
    from pgqueue.atomic import AtomicTarget
    from pgqueue.context import JobContext
    from pgqueue.hooks import Hooks
    from pgqueue.task import Task

# (job, outcome, seconds it ran)
Report = tuple[ClaimedJob, Outcome, float]
_Work = tuple[ClaimedJob, "Task[Any, Any]", list[Any], dict[str, Any], "JobContext"]


class ThreadRunner:
    def __init__(self, size: int, loop: asyncio.AbstractEventLoop,
                 on_reports: Callable[[list[Report]], None], hooks: Hooks | None,
                 atomic: AtomicTarget | None, limits: Limits) -> None:
        self.size = size
        self.loop = loop
        self.on_reports = on_reports
        self.hooks = hooks if hooks is not None and hooks.any_task_hooks else None
        self.atomic = atomic
        self.limits = limits
        self._inbox: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._outbox: collections.deque[Report] = collections.deque()
        self._wake_pending = False
        self._threads = [threading.Thread(target=self._serve, name=f"pgq-job-{i}", daemon=True)
                         for i in range(size)]
        for t in self._threads:
            t.start()

    def submit(self, job: ClaimedJob, task: Task[Any, Any], args: list[Any],
               kwargs: dict[str, Any], ctx: JobContext) -> None:
        self._inbox.put((job, task, args, kwargs, ctx))

    def _serve(self) -> None:
        get, outbox = self._inbox.get, self._outbox
        while True:
            work = get()
            if work is None:
                return
            job, task, args, kwargs, ctx = work
            started = time.perf_counter()
            outcome = invoke(task, args, kwargs, ctx, self.atomic, self.hooks, self.limits)
            outbox.append((job, outcome, time.perf_counter() - started))
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    self.loop.call_soon_threadsafe(self._flush)
                except RuntimeError:  # the loop is closed: the worker is gone
                    return

    def _flush(self) -> None:
        # Clear the flag before draining: an outcome appended after this point
        # either is drained below or schedules the next flush itself.
        self._wake_pending = False
        outbox = self._outbox
        reports = []
        while outbox:
            reports.append(outbox.popleft())
        if reports:
            self.on_reports(reports)

    def close(self) -> None:
        for _ in self._threads:
            self._inbox.put(None)

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)
