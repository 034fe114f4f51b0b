"""The worker factory pgqueuer's benchmark workers run (``pgq run pgqueuer_tasks:main``).

The DSN comes from BENCH_DSN; the driver is asyncpg, as in pgqueuer's quick start. The job
payload is the job's number as ASCII. ``latency`` appends ``"n start_time"`` to the file
named by BENCH_OUT (O_APPEND, one small write per job), as every system's latency task does.
``noop_thread`` and ``io_thread`` run plain functions the way pgqueuer says to (it takes
no sync entrypoints): ``await asyncio.to_thread(fn, job)``. With BENCH_QUEUES set
(``q0,q1,...``), ``noop_<queue>`` entrypoints are registered too, one per queue.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import startlog
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job


def plain_noop(job: Job) -> None:
    return None


def plain_io(job: Job) -> None:
    time.sleep(0.005)


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    # pgqueuer 1.6 wants an async context manager here (its README still shows a plain
    # coroutine returning the PgQueuer, which `run` now refuses).
    connection = await asyncpg.connect(os.environ["BENCH_DSN"])
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @pgq.entrypoint("io")
    async def io(job: Job) -> None:
        await asyncio.sleep(0.005)

    @pgq.entrypoint("noop_thread")
    async def noop_thread(job: Job) -> None:
        await asyncio.to_thread(plain_noop, job)

    @pgq.entrypoint("io_thread")
    async def io_thread(job: Job) -> None:
        await asyncio.to_thread(plain_io, job)

    for queue in filter(None, os.environ.get("BENCH_QUEUES", "").split(",")):
        pgq.entrypoint(f"noop_{queue}")(noop)

    @pgq.entrypoint("latency")
    async def latency(job: Job) -> None:
        startlog.started(int(job.payload or b"0"))

    try:
        yield pgq
    finally:
        await connection.close()
