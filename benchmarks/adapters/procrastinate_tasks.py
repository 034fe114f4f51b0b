"""Tasks procrastinate's benchmark workers run (``--app=procrastinate_tasks.app``).

The DSN comes from BENCH_DSN. ``latency`` appends ``"n start_time"`` to the file named by
BENCH_OUT (O_APPEND, one small write per task), as every system's latency task does.
"""

from __future__ import annotations

import asyncio
import os
import time

import startlog
from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ.get("BENCH_DSN", "")))

@app.task(name="noop")
async def noop(n: int) -> None:
    return None


@app.task(name="noop_sync")
def noop_sync(n: int) -> None:
    return None


@app.task(name="io")
async def io(n: int) -> None:
    await asyncio.sleep(0.005)


@app.task(name="io_sync")
def io_sync(n: int) -> None:
    time.sleep(0.005)


@app.task(name="latency")
async def latency(n: int) -> None:
    startlog.started(n)
