"""Waiting for results: one listener connection per process, not one pooled connection
per waiter. A thousand concurrent waits with the default pool of 10 all return, enqueueing
meanwhile stays fast, and a killed listener connection reconnects and misses nothing.

The row re-read that backs up a lost notification is pushed out to 10 minutes here, so
every wait below can only end by a NOTIFY or the listener's re-check after a reconnect.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from pgqueue import App, JobResult, result, waiters
from pgqueue.errors import JobNotFound, TaskError
from tests.conftest import count, running_worker, wait_for

N = 1000


@pytest.fixture(autouse=True)
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result, "_RECHECK_SECONDS", 600.0)


@pytest.fixture
def waiting_app(app: App) -> Iterator[App]:
    yield app
    waiters.close(app)


def waiting_now(app: App) -> int:
    return waiters.listener(app).waiting


def listener_pids(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                            "AND datname = current_database()",
                            (waiters.APPLICATION_NAME,)).fetchall()
    return [int(r[0]) for r in rows]


def pool_backends(dsn: str) -> int:
    return count(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                      "'pgqueue' AND datname = current_database()")


def slowest_delay(app: App, times: int = 10) -> float:
    slowest = 0.0
    for _ in range(times):
        started = time.monotonic()
        app.tasks["noop"].delay()
        slowest = max(slowest, time.monotonic() - started)
    return slowest


def test_a_thousand_gets_hold_no_pooled_connection(waiting_app: App, dsn: str) -> None:
    app = waiting_app
    jobs = app.tasks["add"].map([(i, i) for i in range(N)])
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=N) as pool:
        futures = [pool.submit(r.get, 120) for r in jobs]
        assert wait_for(lambda: waiting_now(app) == N, 60)
        assert slowest_delay(app) < 1.0
        assert len(listener_pids(dsn)) == 1 and pool_backends(dsn) <= 10
        with running_worker(app, concurrency=20):
            assert slowest_delay(app) < 1.0  # while the waiters are being woken
            values = [f.result(timeout=120) for f in futures]
    print(f"\n{N} concurrent get(): all returned {time.monotonic() - started:.1f}s after "
          "the first was started")
    assert values == [2 * i for i in range(N)]
    assert waiting_now(app) == 0


def test_a_thousand_async_gets(waiting_app: App, dsn: str) -> None:
    app = waiting_app

    async def main() -> list[Any]:
        jobs = await app.tasks["add"].map_async([(i, i) for i in range(N)])
        waits = asyncio.gather(*(r.get_async(timeout=120) for r in jobs))
        while waiting_now(app) < N:
            await asyncio.sleep(0.05)
        for _ in range(10):
            started = time.monotonic()
            await app.tasks["noop"].delay_async()
            assert time.monotonic() - started < 1.0
        assert len(listener_pids(dsn)) == 1
        with running_worker(app, concurrency=20):
            return await asyncio.wait_for(waits, 120)

    started = time.monotonic()
    assert asyncio.run(main()) == [2 * i for i in range(N)]
    print(f"\n{N} concurrent get_async(): {time.monotonic() - started:.1f}s")
    assert waiting_now(app) == 0


def finish_without_notify(dsn: str, ids: list[int]) -> None:
    """Mark jobs succeeded as a worker would, but send no NOTIFY: only a re-read sees it."""
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now() "
                     "WHERE id = ANY(%s)", (ids,))
        conn.execute("INSERT INTO pgqueue.job_results (job_id, value) "
                     "SELECT id, '7'::jsonb FROM unnest(%s::bigint[]) AS id", (ids,))


def terminate(dsn: str, pid: int) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_killed_listener_reconnects_and_rechecks(waiting_app: App, dsn: str) -> None:
    app = waiting_app
    jobs = app.tasks["add"].map([(i, 1) for i in range(100)])
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(r.get, 60) for r in jobs]
        assert wait_for(lambda: waiting_now(app) == len(jobs), 30)
        assert wait_for(lambda: len(listener_pids(dsn)) == 1, 10)
        first = listener_pids(dsn)[0]
        # Finished while the listener is down and with no NOTIFY: only the re-check
        # after the reconnect can tell these waiters.
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (first,))
        finish_without_notify(dsn, [r.id for r in jobs[:50]])
        assert [f.result(timeout=30) for f in futures[:50]] == [7] * 50
        assert wait_for(lambda: listener_pids(dsn) not in ([], [first]), 10)
        # The rest run on a real worker while the listener is killed again and again.
        with running_worker(app, concurrency=10):
            for _ in range(5):
                for pid in listener_pids(dsn):
                    terminate(dsn, pid)
                time.sleep(0.2)
            assert [f.result(timeout=60) for f in futures[50:]] == [i + 1 for i in
                                                                     range(50, 100)]


def test_async_waits_survive_a_killed_listener(waiting_app: App, dsn: str) -> None:
    app = waiting_app

    async def main() -> list[Any]:
        try:
            jobs = await app.tasks["add"].map_async([(i, 1) for i in range(50)])
            waits = asyncio.gather(*(r.get_async(timeout=60) for r in jobs))
            while waiting_now(app) < len(jobs) or not listener_pids(dsn):
                await asyncio.sleep(0.05)
            terminate(dsn, listener_pids(dsn)[0])
            finish_without_notify(dsn, [r.id for r in jobs])
            return await asyncio.wait_for(waits, 60)
        finally:
            # Closed on this loop, as in test_reconnect: asyncio.run() would otherwise
            # cancel the pool's tasks itself, and hung there once in CI (120 s timeout).
            await app.async_client.close()

    assert asyncio.run(main()) == [7] * 50


def test_semantics_are_kept(waiting_app: App) -> None:
    app = waiting_app
    queued = app.tasks["add"].delay(1, 2)
    with pytest.raises(TimeoutError, match=rf"job {queued.id} \(add\) is still queued after "
                                           r"0.3s; is a worker running for queue 'default'\?"):
        queued.get(timeout=0.3)
    with pytest.raises(JobNotFound):
        JobResult(app, 10**12).get(timeout=1)
    with pytest.raises(TimeoutError):
        asyncio.run(queued.get_async(timeout=0.3))
    bad = app.tasks["boom"].delay("no")
    with running_worker(app):
        assert queued.get(timeout=30) == 3
        with pytest.raises(TaskError):
            bad.get(timeout=30)
        assert bad.get(timeout=30, propagate=False) is None
        assert asyncio.run(bad.get_async(timeout=30, propagate=False)) is None
    assert waiting_now(app) == 0


def test_unexpected_payloads_are_ignored(waiting_app: App, dsn: str) -> None:
    app = waiting_app
    r = app.tasks["add"].delay(2, 2)
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(r.get(timeout=30)))
    thread.start()
    assert wait_for(lambda: waiting_now(app) == 1 and listener_pids(dsn), 10)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for payload in ("x", "1,,2", "9" * 7000, "-1"):
            conn.execute("SELECT pg_notify('pgqueue.done', %s)", (payload,))
    with running_worker(app):
        thread.join(30)
    assert got == [4]


def test_close_stops_the_listener_and_a_later_wait_starts_one(waiting_app: App,
                                                              dsn: str) -> None:
    app = waiting_app
    with running_worker(app):
        assert app.tasks["add"].delay(1, 1).get(timeout=30) == 2
        assert len(listener_pids(dsn)) == 1
        waiters.close(app)
        assert wait_for(lambda: not listener_pids(dsn), 10)
        assert app.tasks["add"].delay(2, 1).get(timeout=30) == 3
        assert len(listener_pids(dsn)) == 1
