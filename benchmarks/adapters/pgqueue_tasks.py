"""Tasks pgqueue's benchmark workers run (``--app pgqueue_tasks:app``; DSN from PGQ_DSN).

``latency`` appends ``"n start_time"`` to the file named by BENCH_OUT (O_APPEND, one small
write per task), the same way every system's latency task does.
"""

from __future__ import annotations

import asyncio
import os
import time

from pgqueue import App

app = App()

_fds: dict[int, int] = {}  # pid -> fd: opened lazily, so a forked/spawned child opens its own


def _out() -> int:
    fd = _fds.get(os.getpid())
    if fd is None:
        fd = _fds[os.getpid()] = os.open(os.environ["BENCH_OUT"],
                                         os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return fd


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
    os.write(_out(), f"{n} {time.time():.6f}\n".encode())
