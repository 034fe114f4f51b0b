"""Global limits across real `pgq worker` processes: a rate over minutes, a concurrency
limit while workers are SIGKILLed."""

from __future__ import annotations

import bisect
import random
import threading
import time

import psycopg
import pytest

from pgqueue import App
from tests.acceptance.test_chaos import Fleet
from tests.conftest import count, wait_for


@pytest.fixture
def flow(dsn: str):
    from tests.tasks_app import register_flow

    app = App(dsn)
    register_flow(app)
    yield app
    app.close()


@pytest.mark.timeout(300)
def test_a_rate_limit_holds_over_three_minutes_across_three_workers(flow, dsn, tmp_path):
    """metered is rate_limit="60/m": no 60-second window may see more than 60 starts,
    and once warmed, every full window sees at least 55 (the limit doesn't starve it)."""
    # 500 queued, 180 s: one start a second, so about 180 start.
    flow.enqueue_many([flow.tasks["metered"].s(i) for i in range(500)])
    fleet = Fleet(dsn, tmp_path, "--concurrency", "10")
    try:
        for _ in range(3):
            fleet.start()
        time.sleep(180)
    finally:
        assert all(code == 0 for code in fleet.stop())
    with psycopg.connect(dsn) as conn:
        starts = [r[0] for r in conn.execute(
            "SELECT extract(epoch FROM started_at)::float8 FROM pgqueue.jobs "
            "WHERE started_at IS NOT NULL ORDER BY started_at")]
    assert count(dsn, "SELECT max(attempts) FROM pgqueue.jobs") == 1  # none burnt
    first, last = starts[0], starts[-1]
    # Starts in [t, t + 60), for a window opening at each start; 1e-4 s for the float
    # rounding of microsecond timestamps (starts are whole microseconds apart).
    def window(i: int, t: float) -> int:
        return bisect.bisect_left(starts, t + 60 - 1e-4) - i

    most = max(window(i, t) for i, t in enumerate(starts))
    # full windows after the first minute
    full = [window(i, t) for i, t in enumerate(starts) if first + 60 <= t <= last - 60]
    print(f"starts: {len(starts)} in {last - first:.1f}s; most in any 60 s window: {most}; "
          f"fewest in a full window after the first minute: {min(full) if full else None}")
    assert most <= 60
    assert full and min(full) >= 55
    assert len(starts) >= 170


def _live(dsn: str) -> int:
    return count(dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                      "AND classid = 4242 AND granted")


@pytest.mark.timeout(240)
def test_a_concurrency_limit_holds_while_workers_are_sigkilled(flow, dsn, tmp_path,
                                                               monkeypatch):
    """one_of_three is concurrency_limit=3; 4 workers x 10 slots; one SIGKILLed every 2 s.
    A run holds an advisory lock on its own connection, so a killed worker's runs stop
    counting the moment it dies; the live count must never pass 3."""
    # A job on a killed worker is rescued; this many kills must not fail one for it.
    monkeypatch.setenv("PGQ_MAX_RESCUES", "100")
    results = flow.enqueue_many([flow.tasks["one_of_three"].s(0.5) for _ in range(60)])
    fleet = Fleet(dsn, tmp_path, "--concurrency", "10")
    peak, samples, stop = [0], [0], threading.Event()

    def watch() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                (n,) = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = "
                                    "'advisory' AND classid = 4242 AND granted").fetchone()
                peak[0] = max(peak[0], n)
                samples[0] += 1
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    rng = random.Random(7)
    started = time.monotonic()
    try:
        for _ in range(4):
            fleet.start()
        wait_for(lambda: count(dsn, "SELECT count(*) FROM pgqueue.worker_status "
                                    "WHERE status = 'up'") >= 4, timeout=30)
        while count(dsn, "SELECT count(*) FROM pgqueue.jobs "
                         "WHERE state IN ('queued', 'running')"):
            assert time.monotonic() - started < 200, "the jobs did not finish"
            time.sleep(2)
            serving = [p for p in fleet.alive() if fleet.serving(p)]
            if len(fleet.killed) < 10 and serving:
                fleet.kill(rng.choice(serving))  # one that got as far as serving
                fleet.start()
    finally:
        stop.set()
        watcher.join()
        fleet.stop()
    print(f"kills: {len(fleet.killed)}, samples: {samples[0]}, peak live runs: {peak[0]}, "
          f"rescues: {count(dsn, 'SELECT coalesce(sum(rescues), 0) FROM pgqueue.jobs')}")
    assert peak[0] <= 3 and peak[0] == 3
    assert [r.info().state for r in results] == ["succeeded"] * len(results)
    assert len(fleet.killed) >= 3
