"""Tasks that report progress, for in-process workers (``register(app)``) and for the
processes pool's children (``--app tests.progress_app:app``, the DSN from PGQ_DSN)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pgqueue import App
from pgqueue.context import JobContext

APP_PATH = "tests.progress_app:app"
GATE_WAIT = 30.0  # seconds a gated task waits for its gate before giving up


def register(app: App) -> None:
    @app.task(bind=True)
    def gated_progress(self: JobContext, gate: str, total: int) -> int:
        """Reports 1 of total, waits for the file ``gate`` to exist, then reports
        total of total, and returns at once: its last report is written only if the
        worker writes it before recording the outcome."""
        self.update_progress(1, total, {"stage": "waiting", "pid": os.getpid()})
        deadline = time.monotonic() + GATE_WAIT
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.update_progress(total, total, {"stage": "done"})
        return total

    @app.task(bind=True)
    async def async_gated_progress(self: JobContext, gate: str, total: int) -> int:
        self.update_progress(1, total, {"stage": "waiting", "pid": os.getpid()})
        deadline = time.monotonic() + GATE_WAIT
        while not Path(gate).exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.update_progress(total, total, {"stage": "done"})
        return total

    @app.task(bind=True)
    def progress_loop(self: JobContext, n: int) -> float:
        """n reports in a tight loop; returns the microseconds each call took."""
        started = time.perf_counter()
        for i in range(1, n + 1):
            self.update_progress(i, n)
        return (time.perf_counter() - started) / n * 1e6

    @app.task(bind=True)
    async def async_progress_loop(self: JobContext, n: int) -> float:
        started = time.perf_counter()
        for i in range(1, n + 1):
            self.update_progress(i, n)
        return (time.perf_counter() - started) / n * 1e6

    @app.task(bind=True)
    def bad_progress(self: JobContext, kind: str) -> None:
        if kind == "bool":
            self.update_progress(True)
        elif kind == "total":
            self.update_progress(1, 0)
        else:
            self.update_progress(1, 2, meta=object())

    @app.task(bind=True, max_retries=1, default_retry_delay=0.05)
    def reports_then_fails_once(self: JobContext) -> int:
        """Attempt 1 reports and fails; attempt 2 succeeds without reporting."""
        if self.attempt == 1:
            self.update_progress(5, 10)
            raise ConnectionError("first attempt fails")
        return self.attempt


app = App()
register(app)
