"""Retries, time limits in every pool, cancellation, rescue, fencing and shutdown,
with a real worker against a real Postgres."""

from __future__ import annotations

import itertools
import time

import psycopg
import pytest

from pgqueue import JobState, TaskError, statements
from tests.conftest import count, pgq_run, running_worker, wait_for

APP_PATH = "tests.tasks_app:app"


def errors_of(dsn: str, job_id: int) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        return [(a, t) for a, t in conn.execute(
            "SELECT attempt, type FROM pgqueue.job_errors WHERE job_id = %s ORDER BY attempt",
            (job_id,))]


# -- retries ----------------------------------------------------------------
def test_retries_until_success_keeping_every_attempts_error(app, dsn):
    with running_worker(app):
        r = app.tasks["flaky"].delay(2)
        assert r.get(timeout=10) == 3
    assert r.info().attempts == 3
    assert errors_of(dsn, r.id) == [(1, "ConnectionError"), (2, "ConnectionError")]


def test_retries_run_out_and_the_last_error_is_raised(app, dsn):
    with running_worker(app):
        r = app.tasks["flaky"].delay(10)
        with pytest.raises(TaskError, match="attempt 4 failed"):
            r.get(timeout=10)
    assert [a for a, _ in errors_of(dsn, r.id)] == [1, 2, 3, 4]


def test_bound_task_asks_for_a_retry(app):
    with running_worker(app):
        assert app.tasks["asks_for_retry"].delay(3).get(timeout=10) == 3


def test_autoretry_for_retries_only_the_listed_errors(app, dsn):
    with running_worker(app):
        io = app.tasks["only_io_retried"].delay("io")
        other = app.tasks["only_io_retried"].delay("value")
        for r in (io, other):
            with pytest.raises(TaskError):
                r.get(timeout=10)
    assert len(errors_of(dsn, io.id)) == 4
    assert errors_of(dsn, other.id) == [(1, "ValueError")]


def test_exponential_backoff_between_attempts(app, dsn):
    with running_worker(app):
        r = app.tasks["always_fails"].delay()
        with pytest.raises(TaskError):
            r.get(timeout=15)
    with psycopg.connect(dsn) as conn:
        times = [row[0] for row in conn.execute(
            "SELECT extract(epoch FROM created_at)::float8 FROM pgqueue.job_errors "
            "WHERE job_id = %s ORDER BY attempt", (r.id,))]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, expected in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert expected <= gap < expected + 0.4, gaps


# -- time limits --------------------------------------------------------------
def test_thread_soft_limit_lets_the_task_clean_up(app):
    with running_worker(app):
        assert app.tasks["cleans_up_at_soft_limit"].delay().get(timeout=10) == "cleaned up"


def test_thread_hard_limit_records_timeout_and_worker_goes_on(app, dsn):
    with running_worker(app):
        r = app.tasks["loops_forever"].delay()
        with pytest.raises(TaskError) as info:
            r.get(timeout=10)
        assert info.value.type == "TimeLimitExceeded"
        assert app.tasks["add"].delay(1, 2).get(timeout=10) == 3


def test_async_hard_limit_cancels_the_coroutine_then_retries(app, dsn):
    with running_worker(app, pool="asyncio"):
        r = app.tasks["async_too_slow"].delay()
        with pytest.raises(TaskError, match="time limit"):
            r.get(timeout=10)
    assert errors_of(dsn, r.id) == [(1, "TimeLimitExceeded"), (2, "TimeLimitExceeded")]


def test_asyncio_pool_refuses_plain_functions_clearly(app):
    with running_worker(app, pool="asyncio"):
        with pytest.raises(TaskError, match="route it to a threads or processes worker"):
            app.tasks["add"].delay(1, 2).get(timeout=10)
        assert app.tasks["async_add"].delay(1, 2).get(timeout=10) == 3


@pytest.mark.timeout(90)
def test_process_pool_limits_crashes_and_recovery(app, dsn):
    with running_worker(app, app_path=APP_PATH, pool="processes", concurrency=2,
                        max_tasks_per_child=3):
        assert app.tasks["add"].delay(1, 2).get(timeout=30) == 3
        hard = app.tasks["burns_cpu"].delay()
        soft = app.tasks["cleans_up_at_soft_limit"].delay()
        exits = app.tasks["exits_hard"].delay(3)
        segv = app.tasks["segfaults"].delay()
        with pytest.raises(TaskError) as info:
            hard.get(timeout=30)
        assert info.value.type == "TimeLimitExceeded" and "killed" in info.value.message
        assert soft.get(timeout=30) == "cleaned up"
        with pytest.raises(TaskError, match="exited with code 3"):
            exits.get(timeout=30)
        with pytest.raises(TaskError, match="SIGSEGV"):
            segv.get(timeout=30)
        # Every slot was replaced as needed: the pool still runs jobs, in children.
        pids = {app.tasks["pid_after"].delay(0).get(timeout=30) for _ in range(8)}
        import os

        assert os.getpid() not in pids and len(pids) >= 2  # children recycled every 3 jobs


# -- cancellation ---------------------------------------------------------------
def test_cancelled_queued_job_never_runs(app):
    r = app.tasks["add"].delay(1, 2)
    assert r.cancel() is JobState.CANCELLED
    with running_worker(app):
        later = app.tasks["add"].delay(2, 2)
        assert later.get(timeout=10) == 4
    assert r.state is JobState.CANCELLED and r.info().attempts == 0
    assert r.cancel() is None  # nothing left to cancel


@pytest.mark.parametrize("task, pool", [
    ("async_forever", "threads"),
    ("cancellable", "threads"),
    ("burns_cpu", "processes"),
])
def test_cancel_a_running_job(app, task, pool):
    with running_worker(app, app_path=APP_PATH, pool=pool, concurrency=1):
        r = app.tasks[task].delay()
        assert wait_for(lambda: r.state is JobState.RUNNING, timeout=20)
        time.sleep(0.2)
        assert r.cancel() is JobState.RUNNING
        assert wait_for(lambda: r.state is JobState.CANCELLED, timeout=10)
        assert app.tasks["add"].delay(1, 1).get(timeout=20) == 2  # the slot is free again


def test_cli_cancel_and_retry(app, dsn):
    queued = app.tasks["add"].delay(1, 2)
    out = pgq_run(dsn, "jobs", "cancel", str(queued.id))
    assert out.returncode == 0 and "cancelled" in out.stdout
    with running_worker(app):
        failed = app.tasks["boom"].delay("x")
        with pytest.raises(TaskError):
            failed.get(timeout=10)
    out = pgq_run(dsn, "jobs", "retry", str(failed.id))
    assert out.returncode == 0, out.stderr
    assert failed.state is JobState.QUEUED and failed.info().max_attempts == 2
    out = pgq_run(dsn, "jobs", "retry", "--failed", "--task", "add")
    assert "0 jobs queued again" in out.stdout  # bulk: failed only, never the cancelled add
    out = pgq_run(dsn, "jobs", "retry", str(queued.id))  # by id it may come back
    assert out.returncode == 0, out.stderr
    with running_worker(app):
        assert queued.get(timeout=10) == 3
        with pytest.raises(TaskError):
            failed.get(timeout=10)
    assert len(errors_of(dsn, failed.id)) == 2  # the history keeps both attempts


# -- leases, rescue, fencing ------------------------------------------------------
def test_expired_lease_is_rescued_and_run_again(app, dsn):
    r = app.tasks["add"].delay(2, 2)
    # A worker that claimed the job and died: nobody will ever heartbeat it.
    app.client.execute(statements.claim("pgqueue", 999, ["default"], 1, 1.0))
    with running_worker(app, heartbeat_interval=0.2, lease_seconds=1):
        assert r.get(timeout=10) == 4
    assert r.info().attempts == 2
    assert errors_of(dsn, r.id) == [(1, "WorkerLost")]


def test_a_job_that_keeps_losing_workers_ends_failed(app, dsn):
    r = app.tasks["add"].delay(2, 2)
    app.client.execute(statements.claim("pgqueue", 999, ["default"], 1, 0.5))
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgqueue.jobs SET rescues = 4 WHERE id = %s", (r.id,))
    with (running_worker(app, heartbeat_interval=0.2, lease_seconds=1, max_rescues=5),
          pytest.raises(TaskError, match="WorkerLost")):
        r.get(timeout=10)


def test_worker_that_lost_its_lease_stops_the_job_and_cannot_overwrite(app, dsn):
    with running_worker(app, heartbeat_interval=0.2, lease_seconds=1):
        r = app.tasks["cancellable"].delay()
        assert wait_for(lambda: r.state is JobState.RUNNING, timeout=10)
        with psycopg.connect(dsn) as conn:  # another attempt takes the job over
            conn.execute("UPDATE pgqueue.jobs SET lease = gen_random_uuid(), "
                         "lease_expires_at = now() + interval '1 hour' WHERE id = %s", (r.id,))
        time.sleep(1.0)  # heartbeats notice; the task sees its flag and returns
    info = r.info()
    assert info.state is JobState.RUNNING and info.result is None  # nothing overwritten
    assert count(dsn, "SELECT count(*) FROM pgqueue.job_results") == 0


def test_shutdown_timeout_releases_unfinished_jobs(app, dsn):
    with running_worker(app, shutdown_timeout=0.3, concurrency=1):
        r = app.tasks["cancellable"].delay()
        assert wait_for(lambda: r.state is JobState.RUNNING, timeout=10)
    info = r.info()
    assert info.state is JobState.QUEUED and info.attempts == 0  # back, not counted


# -- exactly-once effects -------------------------------------------------------------
@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_atomic_task_effects_commit_with_completion(app, dsn, pool):
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE public.charges (order_id int, job_id bigint)")
    with running_worker(app, app_path=APP_PATH, pool=pool, concurrency=2):
        assert app.tasks["charge"].delay(7).get(timeout=30) == "charged 7"
    assert count(dsn, "SELECT count(*) FROM public.charges WHERE order_id = 7") == 1


def test_atomic_task_that_lost_its_lease_leaves_no_effect(app, dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE public.charges (order_id int, job_id bigint)")
    with running_worker(app, heartbeat_interval=5, lease_seconds=10):
        r = app.tasks["charge"].delay(8, 1.0)
        assert wait_for(lambda: r.state is JobState.RUNNING, timeout=10)
        with psycopg.connect(dsn) as conn:  # a newer attempt now owns the job
            conn.execute("UPDATE pgqueue.jobs SET lease = gen_random_uuid() WHERE id = %s",
                         (r.id,))
        time.sleep(1.5)
    assert count(dsn, "SELECT count(*) FROM public.charges") == 0  # rolled back
    assert r.state is JobState.RUNNING and r.info().result is None
