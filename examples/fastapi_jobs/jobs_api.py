"""FastAPI and pgqueue: report requests answered with 202 and a job id, then polled.

``POST /reports`` enqueues ``build_report`` and records the request in the
``reports`` table, both in the request's transaction: the job exists if and
only if the row does. ``GET /jobs/{id}`` reads the job's state and result.

    PGQ_DSN=postgresql://... pgq migrate
    PGQ_DSN=postgresql://... pgq worker --app jobs_api:app --queues reports
    PGQ_DSN=postgresql://... uvicorn jobs_api:api
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from pgqueue import App, JobNotFound, JobState
from pgqueue.contrib.fastapi import Connection, PgQueue

app = App()  # which Postgres: PGQ_DSN
queue = PgQueue(app)


@app.task(queue="reports")
def build_report(kind: str, days: int) -> dict[str, Any]:
    """Stands in for a slow query and a rendered file: a summary per day."""
    time.sleep(0.05)
    daily = [int(hashlib.sha256(f"{kind}:{d}".encode()).hexdigest()[:4], 16) % 1000
             for d in range(days)]
    return {"kind": kind, "days": days, "total": sum(daily), "best_day": max(daily)}


REPORTS_TABLE = """
CREATE TABLE IF NOT EXISTS reports (
    id           serial PRIMARY KEY,
    job_id       bigint NOT NULL,
    kind         text NOT NULL,
    days         integer NOT NULL CHECK (days BETWEEN 1 AND 366),
    requested_at timestamptz NOT NULL DEFAULT now()
)"""


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    # pgqueue's lifespan opens the pools; the app's own start-up runs inside it.
    async with queue.lifespan(api):
        async with queue.transaction() as conn:
            await conn.execute(REPORTS_TABLE)
        yield


api = FastAPI(title="reports", lifespan=lifespan)


class ReportRequest(BaseModel):
    kind: str = "sales"
    days: int = 7


@api.post("/reports", status_code=202)
async def create_report(body: ReportRequest, conn: Connection) -> dict[str, Any]:
    job = await build_report.apply_async_async((body.kind, body.days), connection=conn)
    try:
        # The row needs the job's id, so it comes second; the database checks `days`.
        await conn.execute("INSERT INTO reports (job_id, kind, days) VALUES (%s, %s, %s)",
                           (job.id, body.kind, body.days))
    except psycopg.errors.CheckViolation:
        # Raising rolls the request's transaction back: the job is gone with the row.
        raise HTTPException(422, "days must be between 1 and 366") from None
    return {"job_id": job.id, "status_url": f"/jobs/{job.id}"}


@api.get("/jobs/{job_id}")
async def job_status(job_id: int) -> dict[str, Any]:
    try:
        info = await app.AsyncResult(job_id).info_async()
    except JobNotFound:
        raise HTTPException(404, f"no job {job_id}") from None
    return {
        "id": info.id,
        "task": info.task,
        "state": info.state,
        "attempts": info.attempts,
        "result": info.result if info.state is JobState.SUCCEEDED else None,
        "error": {"type": info.error.type, "message": info.error.message}
        if info.error else None,
    }
