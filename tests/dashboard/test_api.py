"""The JSON API's read side against real jobs in every state (see API.md)."""

from __future__ import annotations

import datetime as dt

import pytest

from pgqueue.monitor import REDACTED
from tests.dashboard.conftest import HAS_REDACT


def test_overview_has_every_part(client, world):
    data = client.get("/api/overview?window=5m").json()
    assert set(data) >= {"now", "window_seconds", "queues", "workers", "tasks", "series"}
    assert data["window_seconds"] == 300
    queues = {q["queue"]: q for q in data["queues"]}
    assert queues["default"]["succeeded"] >= 4 and queues["default"]["failed"] == 2
    assert queues["default"]["running"] == 1 and queues["default"]["scheduled"] == 1
    assert queues["emails"]["queued"] == 1 and queues["paused-q"]["paused"] is True
    assert any(w["status"] == "up" for w in data["workers"])
    # Dense: one bucket per 10 s over 5 minutes, zeros included.
    assert 30 <= len(data["series"]) <= 32 and data["bucket_seconds"] == 10
    assert sum(b["failed"] for b in data["series"]) == 2


def test_queues_workers_tasks(client, world):
    queues = {q["queue"]: q for q in client.get("/api/queues?window=1h").json()}
    assert queues["idle"]["cancelled"] == 1
    assert queues["emails"]["oldest_waiting_seconds"] >= 0
    (worker,) = [w for w in client.get("/api/workers").json() if w["status"] == "up"]
    assert worker["pid"] == __import__("os").getpid() and worker["queues"] == ["default"]
    assert worker["running"] == 1 and worker["pool"] == "threads"
    tasks = {t["task"]: t for t in client.get("/api/tasks?window=24h").json()}
    assert tasks["always_fails"]["failed"] == 1 and tasks["always_fails"]["retried"] == 3
    assert tasks["flaky"]["succeeded"] == 1 and tasks["flaky"]["retried"] == 1
    assert tasks["add"]["mean_runtime_ms"] is not None
    assert tasks["add"]["p95_runtime_ms"] >= 0


def test_series_honours_window_and_bucket(client, world):
    data = client.get("/api/series?window=1h&bucket=5m").json()
    assert data["bucket_seconds"] == 300 and data["window_seconds"] == 3600
    assert 12 <= len(data["buckets"]) <= 13
    assert sum(b["succeeded"] for b in data["buckets"]) >= 4
    stamps = [dt.datetime.fromisoformat(b["at"]) for b in data["buckets"]]
    assert stamps == sorted(stamps) and all(t.tzinfo for t in stamps)


@pytest.mark.parametrize("query, message", [
    ("window=forever", "bad time span"),
    ("window=90d", "out of range"),
    ("window=7d&bucket=10s", "at most 1000 buckets"),
])
def test_bad_window_is_400_saying_why(client, query, message):
    response = client.get(f"/api/series?{query}")
    assert response.status_code == 400 and message in response.json()["error"]


def test_jobs_filters(client, world):
    ids = world.ids

    def listed(query: str) -> list[int]:
        response = client.get(f"/api/jobs?{query}")
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["jobs"]]

    assert listed("state=failed") == sorted([ids["failed"], ids["always_fails"]], reverse=True)
    assert listed("state=running") == [ids["running"]]
    assert listed("queue=emails") == [ids["queued"]]
    assert listed("task=always_fails") == [ids["always_fails"]]
    assert listed("state=cancelled&queue=idle") == [ids["cancelled"]]
    assert listed("state=failed&task=add") == []
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert listed(f"since={later.replace('+00:00', 'Z')}") == []
    # A time without offset, as <input type=datetime-local> sends it, is UTC.
    assert len(listed("until=2999-01-01T00:00")) == len(listed(""))
    job = client.get("/api/jobs?state=running").json()["jobs"][0]
    assert job["worker"] and job["started_at"] and job["finished_at"] is None


@pytest.mark.parametrize("query", ["state=exploded", "before_id=abc", "limit=0",
                                   "since=yesterday"])
def test_bad_job_filter_is_400(client, query):
    response = client.get(f"/api/jobs?{query}")
    assert response.status_code == 400 and response.json()["error"]


def test_jobs_keyset_pagination(client, world):
    seen: list[int] = []
    url: str | None = "/api/jobs?limit=3"
    pages = 0
    while url:
        page = client.get(url).json()
        assert len(page["jobs"]) <= 3
        seen += [j["id"] for j in page["jobs"]]
        if page["next"]:
            assert f"before_id={page['next_before_id']}" in page["next"]
        url, pages = page["next"], pages + 1
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen))
    assert set(world.ids.values()) <= set(seen)
    assert pages == -(-len(seen) // 3)


def test_job_detail_has_every_attempt(client, world):
    job = client.get(f"/api/jobs/{world.ids['always_fails']}").json()
    assert job["state"] == "failed" and job["attempts"] == 4 and job["max_attempts"] == 4
    history = job["attempts_history"]
    assert [a["attempt"] for a in history] == [1, 2, 3, 4]
    assert all("RuntimeError: nope" in a["traceback"] for a in history)
    assert all(a["type"] == "RuntimeError" for a in history)
    ok = client.get(f"/api/jobs/{world.ids['succeeded']}").json()
    assert ok["result"] == 0 and ok["args"] == [0, 0] and ok["worker_pid"]
    assert client.get("/api/jobs/987654321").status_code == 404


@pytest.mark.skipif(not HAS_REDACT, reason="@app.task(redact=...) is not in this tree yet")
def test_redacted_arguments_never_leave(client, world):
    job = client.get(f"/api/jobs/{world.ids['secret']}").json()
    assert job["kwargs"] == {"password": REDACTED} and job["args"] == ["ada"]
    page = client.get(f"/jobs/{world.ids['secret']}").text
    assert "hunter2" not in page and REDACTED in page


def test_schedules(client, world):
    (schedule,) = client.get("/api/schedules").json()
    assert schedule["name"] == "nightly-report" and schedule["rule"] == "0 3 * * *"
    assert schedule["paused"] is False and schedule["task"] == "add"


def test_csrf_endpoint_sets_the_cookie(client):
    response = client.get("/api/csrf")
    assert response.json()["header"] == "X-CSRF-Token"
    assert client.cookies.get("pgq_csrf") == response.json()["csrf_token"]


def test_metrics_route(client, world):
    response = client.get("/metrics")
    if response.status_code == 501:
        pytest.skip(f"prometheus-client not installed: {response.text}")
    assert response.status_code == 200
    assert "pgqueue_jobs" in response.text and response.headers["content-type"].startswith(
        "text/plain")
