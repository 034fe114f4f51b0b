"""examples/fastapi_jobs run as its README says, through FastAPI's TestClient, with a
real worker in this process."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from pgqueue.testing import bind_app, worker_running
from tests.conftest import count

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "fastapi_jobs" / "jobs_api.py"


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    name = "_example_fastapi_jobs_api"  # a name no other test's module can take
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the models' annotations here
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(name, None)


@pytest.fixture
def client(example: ModuleType, dsn: str) -> Iterator[TestClient]:
    with bind_app(example.app, dsn), TestClient(example.api) as test_client:
        yield test_client


def poll(client: TestClient, url: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(url).json()
        if body["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_post_202_then_a_worker_runs_it_and_get_shows_the_result(
        example: ModuleType, client: TestClient, dsn: str) -> None:
    created = client.post("/reports", json={"kind": "sales", "days": 3})
    assert created.status_code == 202
    job_id = created.json()["job_id"]
    assert created.json()["status_url"] == f"/jobs/{job_id}"
    # Committed before the response: the job is readable at once, and waits.
    assert client.get(f"/jobs/{job_id}").json()["state"] == "queued"
    assert count(dsn, "SELECT count(*) FROM reports WHERE job_id = %s", job_id) == 1

    with worker_running(example.app, queues=("reports",)):
        body = poll(client, f"/jobs/{job_id}")
    assert body["state"] == "succeeded", body
    assert body["result"] == example.build_report("sales", 3)
    assert body["error"] is None and body["attempts"] == 1


def test_a_request_that_fails_after_enqueueing_leaves_no_job(client: TestClient,
                                                              dsn: str) -> None:
    refused = client.post("/reports", json={"kind": "sales", "days": 0})
    assert refused.status_code == 422
    assert refused.json() == {"detail": "days must be between 1 and 366"}
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
    assert count(dsn, "SELECT count(*) FROM reports") == 0
    assert client.get("/jobs/1").status_code == 404
