"""Monitor and `pgq status` / `pgq jobs list|show` over rows only SQL could write: they
answer, and a value that can't be decoded is shown as stored."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pgqueue.monitor import Monitor, RawValue, to_json
from pgqueue.monitor_rows import RAW_CHARS
from tests.bad_rows import HUGE_CHARS, RAW, insert_bad_rows
from tests.conftest import pgq_run


@pytest.fixture
def bad(app, dsn):
    return insert_bad_rows(dsn)


def test_monitor_reads_every_bad_row(app, bad):
    m = Monitor(app)
    json.dumps(to_json(m.overview()), allow_nan=False)
    queues = {q.queue: q for q in m.queues()}
    assert (queues["default"].queued, queues["default"].scheduled) == (6, 1)
    assert queues["default"].oldest_waiting_seconds is not None
    assert len(m.jobs(limit=500).jobs) == len(bad)
    for kind, job_id in bad.items():
        detail = m.job(job_id)
        assert detail is not None, kind
        json.dumps(to_json(detail), allow_nan=False)
        values = (detail.args, detail.kwargs, detail.result)
        assert any(isinstance(v, RawValue) for v in values) == (kind in RAW), kind


def test_raw_values_say_why_and_are_cut_when_huge(app, bad):
    m = Monitor(app)
    args = m.job(bad["args_dict"]).args
    assert args == RawValue('{"a": 1}', "is a JSON dict, not a list")
    assert m.job(bad["args_null"]).args.raw == "null"
    assert m.job(bad["args_bad_tag"]).args == [{"$uuid": "not-a-uuid"}]
    assert m.job(bad["kwargs_list"]).kwargs.error == "is a JSON list, not a dict"
    assert m.job(bad["result_date_tag"]).result == {"$date": "x"}
    assert m.job(bad["result_decimal_tag"]).result == {"$decimal": "abc"}
    assert "recursion" in m.job(bad["result_deep"]).result.error
    huge = m.job(bad["result_huge_bad"]).result
    assert huge.truncated and len(huge.raw) == RAW_CHARS
    assert len(m.job(bad["result_huge"]).result[0]) == HUGE_CHARS  # decodable: whole


def test_infinite_run_at_and_huge_attempts(app, bad):
    m = Monitor(app)
    assert m.job(bad["run_at_infinity"]).run_at.year == 9999
    assert m.job(bad["run_at_minus_infinity"]).run_at.year == 1
    assert m.job(bad["attempts_max"]).attempts == 2**31 - 1
    assert {t.task: t.retried for t in m.task_stats()}["add"] >= 2**31 - 2


def test_redacted_task_never_shows_raw_text(app, dsn):
    @app.task(redact=("password",))
    def login(user: str, password: str) -> None: ...

    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        (job_id,) = conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, kwargs) VALUES ('default', 'login', "
            "'{\"password\": \"hunter2\"}', '[\"hunter2\"]') RETURNING id").fetchone()
    detail = Monitor(app).job(job_id)
    assert "hunter2" not in json.dumps(to_json(detail))
    assert isinstance(detail.args, RawValue) and isinstance(detail.kwargs, RawValue)


def test_cli_answers_over_bad_rows(app, dsn, bad):
    status = pgq_run(dsn, "status")
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    data = json.loads(pgq_run(dsn, "status", "--json").stdout)
    assert data["queues"][0]["queue"] == "default"
    listed = json.loads(pgq_run(dsn, "jobs", "list", "--limit", "500", "--json").stdout)
    assert len(listed["jobs"]) == len(bad)
    assert pgq_run(dsn, "jobs", "list").returncode == 0
    for kind in ("run_at_infinity", "attempts_max", "args_dict", "result_date_tag",
                 "result_deep", "result_huge_bad"):
        shown = pgq_run(dsn, "jobs", "show", str(bad[kind]))
        assert shown.returncode == 0 and not shown.stderr, (kind, shown.stderr)
        as_json = pgq_run(dsn, "jobs", "show", str(bad[kind]), "--json")
        assert as_json.returncode == 0, (kind, as_json.stderr)
        json.loads(as_json.stdout)
        if kind in RAW:
            assert "shown as stored: this value" in shown.stdout, kind
    shown = pgq_run(dsn, "jobs", "show", str(bad["result_date_tag"])).stdout
    assert "$date" in shown and "x" in shown
    detail = json.loads(pgq_run(dsn, "jobs", "show", str(bad["args_dict"]), "--json").stdout)
    assert detail["args"] == {"raw": '{"a": 1}', "error": "is a JSON dict, not a list",
                              "truncated": False}
    assert dt.datetime.fromisoformat(json.loads(pgq_run(
        dsn, "jobs", "show", str(bad["run_at_infinity"]), "--json").stdout)["run_at"]).year \
        == 9999
