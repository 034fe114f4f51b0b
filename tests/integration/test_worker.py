"""A real worker (in-process, own event loop) running jobs against a real Postgres."""

import asyncio
import time

import psycopg
import pytest

from pgqueue import JobState, TaskError
from tests.conftest import count, running_worker


def test_results_sync_and_async_tasks(app):
    with running_worker(app):
        assert app.tasks["add"].delay(2, 3).get(timeout=10) == 5
        assert app.tasks["async_add"].delay(4, 5).get(timeout=10) == 9
        r = app.tasks["echo"].delay({"when": __import__("datetime").date(2026, 1, 1)})
        assert r.get(timeout=10) == {"when": __import__("datetime").date(2026, 1, 1)}
        assert r.state is JobState.SUCCEEDED and r.ready() and r.successful()


def test_remote_error_carries_type_message_and_traceback(app, dsn):
    with running_worker(app):
        r = app.tasks["boom"].delay("the disk is full")
        with pytest.raises(TaskError) as info:
            r.get(timeout=10)
    err = info.value
    assert err.type == "ValueError" and err.message == "the disk is full"
    assert "raise ValueError(message)" in err.traceback
    assert str(err) == "ValueError: the disk is full"
    assert r.failed() and r.get(timeout=1, propagate=False) is None
    assert count(dsn, "SELECT count(*) FROM pgqueue.job_errors WHERE job_id = %s", r.id) == 1


def test_unknown_task_fails_that_job_only(app):
    # No grace: an unknown task fails at once (the grace is tested in test_unknown_tasks).
    with running_worker(app, app_path="tests.tasks_app:app", unknown_task_grace=0) as worker:
        bad = app.send_task("no.such.task", args=(1,))
        good = app.tasks["add"].delay(1, 1)
        assert good.get(timeout=10) == 2
        with pytest.raises(TaskError) as info:
            bad.get(timeout=10)
        assert worker.worker_id
    assert info.value.type == "UnknownTask"
    assert "unknown task 'no.such.task'" in info.value.message
    assert "registered: " in info.value.message and "add" in info.value.message


def test_undecodable_result_fails_the_job(app):
    with running_worker(app):
        with pytest.raises(TaskError, match="can't store"):
            app.tasks["returns_object"].delay().get(timeout=10)
        assert app.tasks["add"].delay(1, 2).get(timeout=10) == 3


def test_undecodable_arguments_fail_the_job(app, dsn):
    with psycopg.connect(dsn) as conn:  # a producer that wrote args by hand, badly
        (job_id,) = conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, kwargs) "
            "VALUES ('default', 'add', '{\"not\": \"a list\"}', '{}') RETURNING id").fetchone()
    with running_worker(app):
        with pytest.raises(TaskError):
            app.AsyncResult(job_id).get(timeout=10)
        assert app.tasks["add"].delay(2, 2).get(timeout=10) == 4


def test_get_times_out_without_a_worker(app):
    r = app.tasks["add"].delay(1, 2)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="is a worker running"):
        r.get(timeout=0.3)
    assert time.monotonic() - start < 2


def test_get_async(app):
    async def go():
        r = await app.tasks["add"].delay_async(20, 22)
        return await r.get_async(timeout=10)

    with running_worker(app):
        assert asyncio.run(go()) == 42


def test_scheduled_job_runs_when_due_not_at_next_poll(app, dsn):
    with running_worker(app, poll_interval=30):
        time.sleep(0.2)  # the worker is idle, sleeping on LISTEN
        r = app.tasks["add"].apply_async(args=(1, 1), countdown=1.0)
        assert r.get(timeout=5) == 2
    delay = count(dsn, "SELECT extract(epoch FROM started_at - run_at) * 1000 "
                       "FROM pgqueue.jobs WHERE id = %s", r.id)
    assert delay < 500


def test_worker_registers_and_deregisters(app, dsn):
    with running_worker(app, concurrency=3, queues=("default", "emails")) as worker:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT host, pid, queues, concurrency, status FROM pgqueue.worker_status "
                "WHERE id = %s", (worker.worker_id,)).fetchone()
        assert row[2] == ["default", "emails"] and row[3] == 3 and row[4] == "up"
        app.tasks["add"].delay(1, 1).get(timeout=10)
    with psycopg.connect(dsn) as conn:
        status, done = conn.execute("SELECT status, jobs_done FROM pgqueue.worker_status "
                                    "WHERE id = %s", (worker.worker_id,)).fetchone()
    assert status == "stopped" and done == 1


def test_views_answer(app, dsn):
    with running_worker(app):
        app.tasks["add"].delay(1, 1).get(timeout=10)
        with pytest.raises(TaskError):
            app.tasks["boom"].delay("x").get(timeout=10)
    app.tasks["add"].delay(1, 1)
    with psycopg.connect(dsn) as conn:
        stats = conn.execute("SELECT queued, succeeded, failed FROM pgqueue.queue_stats "
                             "WHERE queue = 'default'").fetchone()
        failures = conn.execute("SELECT task, error_type FROM pgqueue.recent_failures").fetchall()
        conn.execute("SELECT * FROM pgqueue.running_jobs").fetchall()
    assert stats == (1, 1, 1)
    assert failures == [("boom", "ValueError")]


def test_heartbeat_extends_leases_of_running_jobs(app, dsn):
    with running_worker(app, heartbeat_interval=0.2, lease_seconds=1):
        r = app.tasks["sleepy"].delay(2.0)
        assert r.get(timeout=10) == "slept"  # ran 2 s on a 1 s lease, never rescued
    assert r.info().attempts == 1
