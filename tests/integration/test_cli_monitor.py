"""`pgq status`, `workers`, `queues` and `jobs list|show`, as people and scripts see them."""

from __future__ import annotations

import json
import re

import pytest

from pgqueue import TaskError
from tests.conftest import count, pgq_run, running_worker


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
    listed = json.loads(pgq_run(dsn, "queues", "list", "--json").stdout)
    assert listed[0]["paused"] is False
    assert "stopped" in pgq_run(dsn, "workers").stdout


def _cells(text: str, first: str) -> list[str]:
    """The cells of the table line that starts with ``first``."""
    (line,) = [ln for ln in text.splitlines() if ln.split(" ", 1)[0] == first]
    return re.split(r"\s{2,}", line.strip())


def test_queues_limit_sets_what_is_given_and_keeps_the_rest(app, dsn):
    def limit(*args: str) -> str:
        out = pgq_run(dsn, "queues", "limit", "emails", *args)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert limit("--rate", "600/m", "--concurrency", "20") == (
        "queue emails: at most 600 starts a minute, 20 running at once; "
        "workers apply it within a heartbeat")
    assert limit("--rate", "10/s").startswith(
        "queue emails: at most 10 starts a second, 20 running at once;")
    assert limit("--rate", "none").startswith("queue emails: at most 20 running at once;")
    assert limit("--concurrency", "5", "--rate", "5/10s").startswith(
        "queue emails: at most 5 starts in any 10 seconds, 5 running at once;")
    assert limit("--clear").startswith("queue emails: no limits;")


def test_queues_limit_refuses_bad_input_before_any_sql(dsn):
    for args, message in [
        (["--rate", "10"], "write N/s, N/m or N/h"),
        (["--rate", "0/m"], "the count must be 1"),
        (["--concurrency", "0"], "must be 1 or more"),
        (["--concurrency", "many"], "how many jobs may run at once"),
        ([], "give --rate, --concurrency or both"),
        (["--clear", "--rate", "5/s"], "give it alone"),
    ]:
        out = pgq_run(dsn, "queues", "limit", "emails", *args)
        assert out.returncode == 2, (args, out.stderr)  # as click's usage errors
        assert message in out.stderr, (args, out.stderr)
    out = pgq_run(dsn, "queues", "limit", "bad name", "--concurrency", "1")
    assert out.returncode == 2 and "invalid queue name" in out.stderr
    assert count(dsn, "SELECT count(*) FROM pgqueue.queues") == 0


def test_queues_list_shows_limits_and_what_they_hold_back(app, dsn):
    assert "TASK LIMITS" not in pgq_run(dsn, "queues", "list").stdout  # none declared yet
    with running_worker(app):  # declares its tasks' limits
        pass
    app.tasks["metered"].delay(1)  # 60/m, on the default queue
    app.tasks["add"].delay(1, 1)
    for i in range(2):
        app.tasks["add"].apply_async((i, i), queue="bulk")
    assert pgq_run(dsn, "queues", "limit", "bulk", "--rate", "1/h", "--concurrency",
                   "2").returncode == 0
    text = pgq_run(dsn, "queues", "list").stdout
    header = re.split(r"\s{2,}", text.splitlines()[0])
    assert header[-3:] == ["RATE", "CONCURRENCY", "HELD BACK"]
    assert _cells(text, "bulk")[-3:] == ["1/h", "2", "2"]
    assert _cells(text, "default")[-3:] == ["-", "-", "1"]  # only metered's job
    tasks = text[text.index("TASK LIMITS"):]
    assert _cells(tasks, "metered") == ["metered", "60/m", "-", "1", "0"]
    assert _cells(tasks, "one_of_three") == ["one_of_three", "-", "3", "0", "0"]
    data = json.loads(pgq_run(dsn, "queues", "list", "--json").stdout)
    bulk = {q["queue"]: q for q in data}["bulk"]
    assert (bulk["rate_limit"], bulk["rate"], bulk["rate_window_seconds"],
            bulk["concurrency_limit"], bulk["held_back"]) == ("1/h", 1, 3600.0, 2, 2)
    tasks_text = pgq_run(dsn, "queues", "task-limits").stdout
    assert _cells(tasks_text, "metered") == ["metered", "60/m", "-", "1", "0"]
    task_limits = json.loads(pgq_run(dsn, "queues", "task-limits", "--json").stdout)
    metered = {t["task"]: t for t in task_limits}["metered"]
    assert (metered["rate_limit"], metered["held_back"], metered["running"]) == ("60/m", 1, 0)
    assert metered["declared_at"]
