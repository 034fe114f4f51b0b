"""Every route, fed hostile parameters, answers 400 (or 404) saying why, never 500; and
names in paths stay one segment each under the real server.

The walk takes the routes from the URL map itself, so a route added later is walked
too. Each hostile value is put into every parameter any route reads, at once; the
parameters of the job list are then tried one at a time, to check each message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from pgqueue import statements
from pgqueue.dashboard import create_app
from pgqueue.dashboard.paths import segment
from pgqueue.dashboard.routes import ROUTES
from pgqueue.monitor import Monitor
from tests.dashboard.conftest import csrf_token

BIG = str(2**63)
HOSTILE = [BIG, "-1", "abc", "1e3", "9" * 2000, "a\x00b", "\x00", "x" * 2000,
           "0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "%", "1/0"]
READ = ["state", "queue", "task", "since", "until", "before_id", "limit", "window", "bucket",
        "cap", "tree_up_to", "notice", "next", "rate", "concurrency", "clear"]
# What each route reads: a hostile value there must give 400.
READERS = {
    "/": {"window", "bucket"}, "/jobs": {"state", "queue", "task", "before_id", "limit"},
    "/fragments/jobs": {"state", "before_id", "limit"}, "/api/jobs": {"before_id", "limit"},
    "/api/overview": {"window"}, "/api/series": {"window"}, "/api/queues": {"window"},
    "/api/tasks": {"window"}, "/fragments/queues": {"window"}, "/fragments/tasks": {"window"},
    "/fragments/workers": {"window"}, "/api/workflows": {"limit"},
    "/api/jobs/{job_id:int}/workflow": {"cap", "tree_up_to"},
}


def _routes(method: str) -> list[str]:
    return [r.path for r in ROUTES if isinstance(r, Route) and method in (r.methods or ())]


def _fill(path: str, job_id: int) -> str:
    path = re.sub(r"\{\w+:int\}", str(job_id), path)
    return re.sub(r"\{\w+:segment\}", "add", path)


def test_every_page_and_api_read_refuses_hostile_parameters(client, world):
    paths = _routes("GET")
    assert len(paths) > 25 and "/api/jobs" in paths
    for path in paths:
        url = _fill(path, world.ids["failed"])
        for value in HOSTILE:
            response = client.get(url, params={name: value for name in READ})
            assert response.status_code < 500, (path, value[:20], response.text[:300])
            if path in READERS and value not in ("1/0",):
                assert response.status_code == 400, (path, value[:20])
                assert len(response.text) < 2000, "a long value is not echoed back"


@pytest.mark.parametrize("name, value, says", [
    ("before_id", BIG, "before_id is out of range"),
    ("before_id", "-1", "before_id must be a job id"),
    ("before_id", "0", "before_id must be a job id"),
    ("before_id", "abc", "before_id must be a whole number"),
    ("before_id", "1.5", "before_id must be a whole number"),
    ("before_id", "٣", "before_id must be a whole number"),  # a digit, but not ASCII
    ("limit", "9" * 2000, "limit is too long"),
    ("queue", "a\x00b", "queue contains a NUL"),
    ("task", "\x00", "task contains a NUL"),
    ("task", "t" * 1001, "task is too long"),
    ("state", "\x00", "state contains a NUL"),
    ("since", "0001-01-01T00:00+01:00", "since must be a date and time"),
    ("until", "9999-12-31T23:59-01:00", "until must be a date and time"),
    ("until", "x" * 900, "until must be a date and time"),
])
def test_job_filters_say_what_is_wrong(client, name, value, says):
    for path in ("/api/jobs", "/jobs", "/fragments/jobs"):
        response = client.get(path, params={name: value})
        assert response.status_code == 400, (path, response.text[:200])
        assert says in response.text, response.text[:300]
    if name == "until" and len(value) > 40:
        assert value not in response.text  # quoted cut short


@pytest.mark.parametrize("path", ["/jobs/{id}", "/api/jobs/{id}", "/fragments/jobs/{id}",
                                  "/api/jobs/{id}/workflow", "/workflows/{id}",
                                  "/api/workflows/{id}"])
def test_ids_in_paths_beyond_bigint(client, path):
    for bad in (BIG, "9" * 40):
        response = client.get(path.format(id=bad))
        assert response.status_code == 400 and "must be between 1 and" in response.text
    assert client.get(path.format(id=0)).status_code == 400
    assert client.get(path.format(id=2**63 - 1)).status_code == 404  # in range: just none


@pytest.fixture
def fresh(app) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://localhost") as c:
        yield c


def test_every_action_refuses_hostile_parameters(fresh):
    headers = {"X-CSRF-Token": csrf_token(fresh)}
    paths = _routes("POST")
    assert len(paths) >= 10
    for path in paths:
        for value in HOSTILE:
            for url in (_fill(path, 2**63 - 1), _fill(path, 2**63)):
                response = fresh.post(url, params={name: value for name in READ},
                                      headers=headers)
                assert response.status_code < 500, (url, value[:20], response.text[:300])
    # A NUL or an overlong name in the path finds no route, rather than the database.
    for bad in ("a%00b", "x" * 1001):
        assert fresh.post(f"/api/queues/{bad}/pause", headers=headers).status_code == 404
    assert fresh.post("/api/tasks/add/retry-failed", params={"queue": "a\x00b"},
                      headers=headers).status_code == 400
    # Where a browser takes the buttons of names "." and ".." (it reads them as steps):
    # no route, so nothing else is acted on.
    for landing in ("/api/pause", "/api/queues/pause", "/api/resume", "/api/queues/resume",
                    "/api/trigger", "/api/schedules/trigger", "/api/retry-failed",
                    "/api/tasks/retry-failed", "/api/queues/limits"):
        assert fresh.post(landing, headers=headers).status_code == 404, landing


def test_names_in_paths_under_the_real_server(app):
    """uvicorn decodes %2F before routing; the router still sees one segment per name."""
    import httpx

    from tests.dashboard.conftest import serving

    monitor = Monitor(app)
    app.add_periodic("nightly", "add", cron="0 3 * * *")
    app.client.execute(statements.sync_schedule(app.settings.schema, app.schedules["nightly"]))
    with serving(app) as base, httpx.Client(base_url=base) as web:
        headers = {"X-CSRF-Token": web.get("/api/csrf").json()["csrf_token"]}
        for name in ("a/../../schedules/nightly", "x/resume", "100%41", "é ?#&"):
            paused = web.post(f"/api/queues/{segment(name)}/pause", headers=headers)
            assert paused.status_code == 200 and paused.json() == {"queue": name,
                                                                   "paused": True}
        resumed = web.post(f"/api/queues/{segment('x/resume')}/resume", headers=headers)
        assert resumed.json() == {"queue": "x/resume", "paused": False}
        # The old way in, "/" left as is, leads nowhere now: no route takes two segments.
        assert web.post("/api/queues/a/b/pause", headers=headers).status_code == 404
    queues = {q.queue: q.paused for q in monitor.queues()}
    assert queues["a/../../schedules/nightly"] and queues["100%41"] and not queues["x/resume"]
    assert not {s.name: s.paused for s in monitor.schedules()}["nightly"]


def test_names_in_paths_under_a_mount_prefix(app):
    """Behind a proxy that serves the dashboard under /pgq (``root_path``)."""
    with TestClient(create_app(app), base_url="http://localhost", root_path="/pgq") as web:
        headers = {"X-CSRF-Token": web.get("/pgq/api/csrf").json()["csrf_token"]}
        paused = web.post(f"/pgq/api/queues/{segment('a/b')}/pause", headers=headers)
        assert paused.json() == {"queue": "a/b", "paused": True}
        assert web.post("/pgq/api/queues/a/b/pause", headers=headers).status_code == 404
