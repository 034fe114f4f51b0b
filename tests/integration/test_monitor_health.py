"""Bad schedules and lost workers, as monitoring shows them: a schedule whose rule or
time zone can't be evaluated is "invalid" with its error (and the others are listed as
usual); a worker is down once its heartbeat is older than its own lease."""

from __future__ import annotations

import json

import psycopg
import pytest
from starlette.testclient import TestClient

from pgqueue.cli_monitor import schedule_lines
from pgqueue.dashboard import create_app
from pgqueue.monitor import Monitor
from tests.conftest import pgq_run

SCHEDULES = [  # name, cron, every_seconds, tz, stored error
    ("good", "0 3 * * *", None, "UTC", None),
    ("mars", "0 3 * * *", None, "Mars/Olympus", None),
    ("nonsense", "not a cron", None, "UTC", None),
    ("feb-31", "0 0 31 2 *", None, "UTC", None),
    ("reported", None, 60, "UTC", "the scheduler says no"),
]


@pytest.fixture
def schedules(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, cron, every, tz, error in SCHEDULES:
            conn.execute(
                "INSERT INTO pgqueue.schedules (name, task, cron, every_seconds, tz, queue, "
                "error, error_at) VALUES (%s, 'add', %s, %s, %s, 'default', %s, "
                "CASE WHEN %s::text IS NOT NULL THEN now() END)",
                (name, cron, every, tz, error, error))


def test_bad_schedules_are_invalid_with_their_error(app, schedules):
    rows = {s.name: s for s in Monitor(app).schedules()}
    assert rows["good"].error is None and rows["good"].next_fire_at is not None
    assert "unknown time zone 'Mars/Olympus'" in rows["mars"].error
    assert "invalid cron expression 'not a cron'" in rows["nonsense"].error
    assert rows["feb-31"].error and rows["feb-31"].next_fire_at is None
    for name in ("mars", "nonsense"):
        assert rows[name].next_fire_at is None
    reported = rows["reported"]
    assert reported.error == "the scheduler says no" and reported.error_at is not None
    lines = "\n".join(schedule_lines(list(rows.values())))
    assert "invalid" in lines and "! skipped since" in lines and "Mars/Olympus" in lines


def test_schedules_page_api_and_view_show_errors(app, dsn, schedules):
    with TestClient(create_app(app), base_url="http://localhost",
                    raise_server_exceptions=False) as web:
        page = web.get("/schedules")
        assert page.status_code == 200
        assert page.text.count("status-down\">invalid") == 4  # mars, nonsense, feb-31, reported
        assert "unknown time zone &#39;Mars/Olympus&#39;" in page.text
        assert "the scheduler says no" in page.text
        assert web.get("/fragments/schedules").status_code == 200
        api = {s["name"]: s for s in web.get("/api/schedules").json()}
    assert api["nonsense"]["next_fire_at"] is None and "not a cron" in api["nonsense"]["error"]
    assert api["good"]["error"] is None
    with psycopg.connect(dsn) as conn:
        (error,) = conn.execute("SELECT error FROM pgqueue.schedule_status "
                                "WHERE name = 'reported'").fetchone()
    assert error == "the scheduler says no"
    listed = pgq_run(dsn, "schedules", "list")
    assert listed.returncode == 0 and not listed.stderr, listed.stderr
    assert "mars" in listed.stdout and "good" in listed.stdout


def _worker(conn: psycopg.Connection, name: str, lease: float, silent_for: float) -> None:
    conn.execute(
        "INSERT INTO pgqueue.workers (name, host, pid, queues, pool, concurrency, "
        "lease_seconds, heartbeat_at) VALUES (%s, 'h', 1, '{default}', 'threads', 1, %s, "
        "now() - make_interval(secs => %s))", (name, lease, silent_for))


def test_worker_is_down_once_heartbeat_is_older_than_its_lease(app, dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        _worker(conn, "killed", lease=5, silent_for=10)  # past its lease, under 60 s
        _worker(conn, "alive", lease=30, silent_for=10)  # within its lease
        view = dict(conn.execute("SELECT name, status FROM pgqueue.worker_status").fetchall())
    assert view == {"killed": "down", "alive": "up"}
    assert {w.name: w.status for w in Monitor(app).workers()} == view
    with TestClient(create_app(app), base_url="http://localhost") as web:
        assert {w["name"]: w["status"] for w in web.get("/api/workers").json()} == view
        assert 'pgqueue_workers{status="down"} 1.0' in web.get("/metrics").text
    listed = json.loads(pgq_run(dsn, "workers", "--json").stdout)
    assert {w["name"]: w["status"] for w in listed} == view
    table = pgq_run(dsn, "workers").stdout
    assert any("killed" in line and "down" in line for line in table.splitlines())
