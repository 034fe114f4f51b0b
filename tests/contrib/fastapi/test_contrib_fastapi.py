"""pgqueue.contrib.fastapi: the lifespan's pools, the per-request transaction, plain asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi import FastAPI
from fastapi.testclient import TestClient

from pgqueue import App, JobState
from pgqueue.contrib.fastapi import Connection, PgQueue
from tests.conftest import count


@pytest.fixture
def app(dsn: str) -> Iterator[App]:
    application = App(dsn)

    @application.task
    def add(x: int, y: int) -> int:
        return x + y

    yield application
    application.close()


def make_api(app: App, *, lifespan: bool = True) -> FastAPI:
    queue = PgQueue(app, max_size=2)
    api = FastAPI(lifespan=queue.lifespan if lifespan else None)
    add = app.tasks["add"]

    @api.post("/add", status_code=202)
    async def enqueue(x: int, y: int, conn: Connection, fail: bool = False) -> dict[str, Any]:
        await conn.execute("INSERT INTO audit (what) VALUES (%s)", (f"add {x} {y}",))
        job = await add.apply_async_async((x, y), connection=conn)
        if fail:
            raise RuntimeError("failed after enqueueing")
        return {"job_id": job.id}

    @api.get("/jobs/{job_id}")
    async def status(job_id: int) -> dict[str, Any]:
        info = await app.AsyncResult(job_id).info_async()
        return {"state": info.state}

    return api


@pytest.fixture
def audit(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE audit (what text)")
    return dsn


def test_the_job_commits_with_the_request_and_before_the_response(app: App,
                                                                  audit: str) -> None:
    with TestClient(make_api(app)) as client:
        r = client.post("/add", params={"x": 1, "y": 2})
        assert r.status_code == 202
        # Readable by another connection as soon as the 202 arrives.
        assert client.get(f"/jobs/{r.json()['job_id']}").json() == {"state": "queued"}
    assert count(audit, "SELECT count(*) FROM audit") == 1


def test_an_exception_after_enqueueing_rolls_both_back(app: App, audit: str) -> None:
    with TestClient(make_api(app), raise_server_exceptions=False) as client:
        r = client.post("/add", params={"x": 1, "y": 2, "fail": True})
        assert r.status_code == 500
    assert count(audit, "SELECT count(*) FROM pgqueue.jobs") == 0
    assert count(audit, "SELECT count(*) FROM audit") == 0


def test_without_the_lifespan_the_dependency_says_what_to_do(app: App, audit: str) -> None:
    with TestClient(make_api(app, lifespan=False)) as client, \
            pytest.raises(RuntimeError, match=r"FastAPI\(lifespan=queue.lifespan\)"):
        client.post("/add", params={"x": 1, "y": 2})
    with pytest.raises(RuntimeError, match="request pool is not open"):
        _ = PgQueue(app).pool


def test_plain_asyncio_opened_and_transaction(app: App, dsn: str) -> None:
    queue = PgQueue(app)
    add = app.tasks["add"]

    async def main() -> list[Any]:
        async with queue.opened():
            async with queue.transaction() as conn:
                kept = await add.apply_async_async((1, 1), connection=conn)
            with pytest.raises(ZeroDivisionError):
                async with queue.transaction() as conn:
                    await add.apply_async_async((2, 2), connection=conn)
                    1 / 0  # noqa: B018
            return [(await kept.info_async()).state]

    assert asyncio.run(main()) == [JobState.QUEUED]
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1
