"""Tasks pgqueue's benchmark workers run (``--app pgqueue_tasks:app``; DSN from PGQ_DSN).

``latency`` appends ``"n start_time"`` to the file named by BENCH_OUT (O_APPEND, one small
write per task), the same way every system's latency task does.
"""

from __future__ import annotations

import asyncio
import time

import startlog

from pgqueue import App

app = App()

@app.task
def noop(n: int) -> None:
    return None


@app.task
async def noop_async(n: int) -> None:
    return None


@app.task
def io(n: int) -> None:
    time.sleep(0.005)


@app.task
async def io_async(n: int) -> None:
    await asyncio.sleep(0.005)


@app.task
def latency(n: int) -> None:
    startlog.started(n)


# canvas_overhead.py: members that return their argument (so each stores a result, as a
# group's members do), and a chord callback that counts the results it was given.
@app.task
def ident(n: int) -> int:
    return n


@app.task
async def ident_async(n: int) -> int:
    return n


@app.task
def count_values(values: list[int]) -> int:
    return len(values)


@app.task
async def count_async(values: list[int]) -> int:
    return len(values)
