"""Monitor against real jobs in every state, and pausing queues."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pgqueue import JobState, TaskError
from pgqueue.monitor import REDACTED, Monitor, to_json
from tests.conftest import running_worker


@pytest.fixture
def busy(app):
    """Jobs in every state: succeeded, failed (after a retry), running, queued, cancelled."""
    with running_worker(app):
        app.tasks["add"].delay(1, 2).get(timeout=10)
        failed = app.tasks["boom"].delay("disk full")
        with pytest.raises(TaskError):
            failed.get(timeout=10)
        flaky = app.tasks["flaky"].delay(1)
        flaky.get(timeout=10)
    cancelled = app.tasks["add"].delay(0, 0)
    cancelled.cancel()
    queued = app.tasks["send_email"].delay("a@b.c")
    return {"failed": failed.id, "flaky": flaky.id, "cancelled": cancelled.id,
            "queued": queued.id}


def test_queue_worker_and_task_stats(app, busy):
    m = Monitor(app)
    queues = {q.queue: q for q in m.queues()}
    assert (queues["default"].succeeded, queues["default"].failed,
            queues["default"].cancelled) == (2, 1, 1)
    assert queues["emails"].queued == 1 and queues["emails"].oldest_waiting_seconds >= 0
    tasks = {t.task: t for t in m.task_stats()}
    assert tasks["flaky"].succeeded == 1 and tasks["flaky"].retried == 1
    assert tasks["boom"].failed == 1 and tasks["add"].mean_runtime_ms is not None
    (worker,) = m.workers()
    assert worker.status == "stopped" and worker.jobs_done >= 3
    assert sum(b.succeeded for b in m.series()) == 2
    overview = json.dumps(to_json(m.overview(dt.timedelta(minutes=5))))
    assert '"queue": "emails"' in overview


def test_job_list_filters_and_keyset_pagination(app, busy):
    m = Monitor(app)
    assert [j.id for j in m.jobs(state="failed").jobs] == [busy["failed"]]
    assert [j.task for j in m.jobs(queue="emails").jobs] == ["send_email"]
    first = m.jobs(limit=2)
    assert len(first.jobs) == 2 and first.next_before_id == first.jobs[-1].id
    rest = m.jobs(limit=50, before_id=first.next_before_id)
    assert rest.next_before_id is None
    assert [j.id for j in first.jobs + rest.jobs] == sorted(
        (j.id for j in first.jobs + rest.jobs), reverse=True)
    assert m.jobs(since=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).jobs == []
    with pytest.raises(ValueError):
        m.jobs(state="exploded")


def test_job_detail_has_every_attempt(app, busy):
    detail = Monitor(app).job(busy["flaky"])
    assert detail is not None and detail.state == "succeeded" and detail.result == 2
    assert [a.attempt for a in detail.attempts_history] == [1]
    assert "ConnectionError" in detail.attempts_history[0].traceback
    assert Monitor(app).job(999_999) is None


def test_redacted_arguments(app, dsn):
    @app.task(redact=("password",))
    def login(user: str, password: str) -> None: ...

    r = login.delay("ada", password="hunter2")
    r2 = login.delay("bob", "s3cret")
    m = Monitor(app)
    assert m.job(r.id).kwargs == {"password": REDACTED}
    assert m.job(r2.id).args == ["bob", REDACTED]


def test_paused_queue_is_not_claimed_until_resumed(app):
    m = Monitor(app)
    m.pause_queue("default")
    assert [q.paused for q in m.queues() if q.queue == "default"] == [True]
    with running_worker(app, poll_interval=30):
        r = app.tasks["add"].delay(1, 1)
        with pytest.raises(TimeoutError):
            r.get(timeout=1)
        m.resume_queue("default")  # wakes the idle worker at once
        assert r.get(timeout=5) == 2


def test_actions(app, busy):
    m = Monitor(app)
    assert m.retry_job(busy["failed"])
    assert app.AsyncResult(busy["failed"]).state is JobState.QUEUED
    assert m.cancel_job(busy["queued"]) == "cancelled"
    # Bulk retries take failed jobs only: a cancelled job comes back only by its id.
    assert m.retry_failed(task="add") == []
    assert m.retry_job(busy["cancelled"])
