"""Every page, fragment and API read, and /metrics, over rows only SQL could write:
never a 500, and a value that can't be decoded is shown as stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from pgqueue.dashboard import create_app
from tests.bad_rows import RAW, insert_bad_rows

PAGES = ["/", "/jobs", "/schedules", "/fragments/workers", "/fragments/queues",
         "/fragments/tasks", "/fragments/jobs", "/fragments/schedules", "/api/overview",
         "/api/queues", "/api/workers", "/api/tasks", "/api/series", "/api/jobs",
         "/api/jobs?limit=500", "/api/schedules", "/metrics", "/jobs?state=failed",
         "/api/overview?window=7d"]


@pytest.fixture
def bad(app, dsn):
    return insert_bad_rows(dsn)


@pytest.fixture
def web(app, bad) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://localhost",
                    raise_server_exceptions=False) as c:
        yield c


def test_every_page_answers(web, bad):
    for path in PAGES:
        response = web.get(path)
        assert response.status_code == 200, (path, response.text[:500])
    assert len(web.get("/api/jobs?limit=500").json()["jobs"]) == len(bad)
    assert "pgqueue_jobs" in web.get("/metrics").text


def test_every_bad_job_answers(web, bad):
    for kind, job_id in bad.items():
        for path in (f"/jobs/{job_id}", f"/fragments/jobs/{job_id}", f"/api/jobs/{job_id}"):
            response = web.get(path)
            assert response.status_code == 200, (kind, path, response.text[:500])
        page = web.get(f"/jobs/{job_id}").text
        assert ("Shown as stored" in page) == (kind in RAW), kind


def test_raw_values_in_page_and_api(web, bad):
    page = web.get(f"/jobs/{bad['args_dict']}").text
    assert "Shown as stored" in page
    assert "{&#34;a&#34;: 1}" in page  # escaped, as stored
    data = web.get(f"/api/jobs/{bad['args_dict']}").json()
    assert data["args"] == {"raw": '{"a": 1}', "error": "is a JSON dict, not a list",
                            "truncated": False}
    huge = web.get(f"/api/jobs/{bad['result_huge_bad']}").json()["result"]
    assert huge["truncated"] is True and len(huge["raw"]) == 100_000
    assert "only its first 100000 characters" in web.get(
        f"/jobs/{bad['result_huge_bad']}").text
    assert web.get(f"/api/jobs/{bad['run_at_infinity']}").json()["run_at"].startswith("9999-")
    assert web.get(f"/api/jobs/{bad['attempts_max']}").json()["attempts"] == 2**31 - 1
