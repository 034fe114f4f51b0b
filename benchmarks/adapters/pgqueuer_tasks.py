"""The worker factory pgqueuer's benchmark workers run (``pgq run pgqueuer_tasks:main``).

The DSN comes from BENCH_DSN; the driver is asyncpg, as in pgqueuer's quick start. The job
payload is the job's number as ASCII. ``latency`` appends ``"n start_time"`` to the file
named by BENCH_OUT (O_APPEND, one small write per job), as every system's latency task does.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import startlog
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job


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

    @pgq.entrypoint("latency")
    async def latency(job: Job) -> None:
        startlog.started(int(job.payload or b"0"))

    try:
        yield pgq
    finally:
        await connection.close()
