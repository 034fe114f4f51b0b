"""`pgq status`, `workers`, `queues` and `jobs list|show`, as people and scripts see them."""

from __future__ import annotations

import json

import pytest

from pgqueue import TaskError
from tests.conftest import pgq_run, running_worker


@pytest.fixture
def history(app):
    with running_worker(app):
        ok = app.tasks["add"].delay(2, 3)
        ok.get(timeout=10)
        bad = app.tasks["boom"].delay("no space left")
        with pytest.raises(TaskError):
            bad.get(timeout=10)
    return ok.id, bad.id


def test_status_for_people_and_scripts(app, dsn, history):
    out = pgq_run(dsn, "status", "--window", "5m")
    assert out.returncode == 0, out.stderr
    assert "QUEUES" in out.stdout and "WORKERS" in out.stdout and "boom" in out.stdout
    data = json.loads(pgq_run(dsn, "status", "--json").stdout)
    assert {q["queue"] for q in data["queues"]} == {"default"}
    assert data["queues"][0]["succeeded"] == 1 and data["queues"][0]["failed"] == 1
    assert data["workers"][0]["status"] == "stopped"
    bad = pgq_run(dsn, "status", "--window", "soon")
    assert bad.returncode != 0 and "5m, 1h, 7d" in bad.stderr


def test_jobs_list_and_show(app, dsn, history):
    ok, bad = history
    listed = json.loads(pgq_run(dsn, "jobs", "list", "--state", "failed", "--json").stdout)
    assert [j["id"] for j in listed["jobs"]] == [bad]
    page = pgq_run(dsn, "jobs", "list", "--limit", "1")
    assert f"pgq jobs list --before {bad}" in page.stdout
    shown = pgq_run(dsn, "jobs", "show", str(bad))
    assert "FAILED" in shown.stdout and "ValueError: no space left" in shown.stdout
    assert "raise ValueError(message)" in shown.stdout  # the traceback
    assert json.loads(pgq_run(dsn, "jobs", "show", str(ok), "--json").stdout)["result"] == 5
    missing = pgq_run(dsn, "jobs", "show", "999999")
    assert missing.returncode != 0 and "no job with id 999999" in missing.stderr


def test_queues_pause_resume_and_workers(app, dsn, history):
    assert "paused" in pgq_run(dsn, "queues", "pause", "default").stdout
    rows = json.loads(pgq_run(dsn, "queues", "list", "--json").stdout)
    assert rows[0]["paused"] is True
    pgq_run(dsn, "queues", "resume", "default")
    assert json.loads(pgq_run(dsn, "queues", "list", "--json").stdout)[0]["paused"] is False
    assert "stopped" in pgq_run(dsn, "workers").stdout
