"""Global rate and concurrency limits with real workers (in-process) and a real Postgres."""

from __future__ import annotations

import itertools
import threading
import time

import psycopg
import pytest

from pgqueue.limits import format_rate, parse_rate
from pgqueue.monitor import Monitor
from tests.conftest import count, running_worker, wait_for


def test_rates_are_spelled_like_celery():
    assert parse_rate("100/m") == (100, 60.0) and parse_rate("5/10s") == (5, 10.0)
    assert parse_rate("1/h") == (1, 3600.0)
    assert format_rate(100, 60.0) == "100/m" and format_rate(5, 10.0) == "5/10s"
    with pytest.raises(ValueError, match="N/s, N/m or N/h"):
        parse_rate("10 per minute")
    with pytest.raises(TypeError):
        parse_rate(10)


def _live(dsn: str) -> int:
    return count(dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                      "AND classid = 4242 AND granted")


def test_a_concurrency_limit_holds_across_workers(app, dsn):
    task = app.tasks["one_of_three"]
    results = [task.delay(0.3) for _ in range(12)]
    peak, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _live(dsn))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        with running_worker(app, concurrency=10), running_worker(app, concurrency=10):
            for r in results:
                r.get(timeout=30)
    finally:
        stop.set()
        watcher.join()
    assert peak[0] == 3
    assert time.monotonic() - started >= 4 * 0.3  # 12 jobs, 3 at a time


def test_a_rate_limit_holds_across_workers_and_per_key(app, dsn):
    task = app.tasks["per_tenant"]  # 3/s
    a = [task.apply_async((i,), rate_key="tenant:a") for i in range(6)]
    b = [task.apply_async((i,), rate_key="tenant:b") for i in range(6)]
    with running_worker(app, concurrency=10), running_worker(app, concurrency=10):
        for r in a + b:
            r.get(timeout=30)
    with psycopg.connect(dsn) as conn:
        for key in ("tenant:a", "tenant:b"):
            starts = [row[0] for row in conn.execute(
                "SELECT extract(epoch FROM started_at) FROM pgqueue.jobs "
                "WHERE rate_key = %s ORDER BY started_at", (key,))]
            # one start every 1/3 s: any window of 1 s holds at most 3 starts
            assert all(b - a >= 1 / 3 - 1e-5 for a, b in itertools.pairwise(starts))
            assert all(starts[i + 3] - starts[i] >= 1 - 1e-5 for i in range(len(starts) - 3))
            assert starts[-1] - starts[0] < 3.5  # and the limit is not starving it
    assert count(dsn, "SELECT max(attempts) FROM pgqueue.jobs") == 1  # no attempt burnt


def test_queue_limits_are_set_and_cleared_at_run_time(app, dsn):
    add = app.tasks["add"]
    monitor = Monitor(app)
    monitor.set_queue_limits("default", concurrency=1)
    with running_worker(app, concurrency=10) as worker:
        assert wait_for(lambda: worker.limits.in_force.queues == ["default"], timeout=5)
        rs = [add.delay(i, i) for i in range(5)]
        assert [r.get(timeout=10) for r in rs] == [0, 2, 4, 6, 8]
        monitor.set_queue_limits("default", concurrency=None)
        # The task limits of register_flow's tasks stay in force.
        assert wait_for(lambda: worker.limits.in_force.queues == [], timeout=5)
    assert count(dsn, "SELECT count(*) FROM pgqueue.limit_status") == 3  # the task limits


def test_limited_jobs_wait_without_burning_attempts_and_plain_ones_pass(app, dsn):
    metered, add = app.tasks["metered"], app.tasks["add"]
    with psycopg.connect(dsn, autocommit=True) as conn:  # the window is full already
        conn.execute("INSERT INTO pgqueue.limit_buckets VALUES ('task-rate:metered:', "
                     "clock_timestamp() + interval '60 s')")
    held = metered.delay(1)
    with running_worker(app):
        assert add.delay(1, 1).get(timeout=10) == 2
        time.sleep(1.0)
        info = held.info()
        assert info.state == "queued" and info.attempts == 0


def _commits(dsn: str) -> int:
    return count(dsn, "SELECT xact_commit FROM pg_stat_database "
                      "WHERE datname = current_database()")


def test_an_idle_worker_does_not_spin_on_held_back_jobs(app, dsn):
    """Due jobs that can't be claimed (a full limit, a paused queue) must not wake an
    idle worker over and over: it sleeps until room can open."""
    metered, add = app.tasks["metered"], app.tasks["add"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.limit_buckets VALUES ('task-rate:metered:', "
                     "clock_timestamp() + interval '60 s')")
        conn.execute("INSERT INTO pgqueue.queues (name, paused) VALUES ('frozen', true)")
    for i in range(50):
        metered.delay(i)
        add.apply_async((i, i), queue="frozen")
    with running_worker(app, queues="default,frozen", heartbeat_interval=1.0,
                        lease_seconds=5):
        time.sleep(1.0)
        before = _commits(dsn)
        time.sleep(3.0)
        during = _commits(dsn) - before
    # heartbeat, rescuer, limits: a few a second; claims: about one a second
    assert during < 60, during
