"""pgqueue behind a real PgBouncer 1.18 in transaction mode.

Producers enqueue through it; ``pgq worker`` processes run with PGQ_DSN through
it and a direct PGQ_LISTEN_DSN, and wake on NOTIFY, take cancel notifications
and hold the leader lock there. Without a direct DSN they poll and say so once.
Server-side prepared statements break through 1.18 (shown here), so
PGQ_PREPARED_STATEMENTS=off keeps psycopg from making any.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgqueue import App, JobState, pooler, result, waiters
from pgqueue.link import Link
from tests.conftest import count, pgq, stop_process, until
from tests.tasks_app import register


@dataclass(frozen=True)
class Routes:
    through: str  # this test's database, through the bouncer
    direct: str   # the same database, straight to Postgres


@pytest.fixture
def routes(pg_server: str, dsn: str, pgbouncer: Any) -> Routes:
    name = str(conninfo_to_dict(dsn)["dbname"])
    return Routes(pgbouncer.dsn(name), make_conninfo(pg_server, dbname=name))


@pytest.fixture
def producer(routes: Routes) -> Iterator[App]:
    app = App(routes.through, prepared_statements=False, listen_dsn=routes.direct)
    register(app)
    yield app
    app.close()


def state(dsn: str, job_id: int) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT state FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()
    return str(row[0]) if row else "missing"


# -- prepared statements --------------------------------------------------------
@pytest.mark.parametrize("prepared", [True, False])
def test_prepared_statements_break_through_the_bouncer_unless_turned_off(
        routes: Routes, prepared: bool) -> None:
    """Another client's open transaction holds the server session a statement was
    prepared on, so the next use lands on a session that never saw it: 1.18 can't
    carry prepared statements. With prepared_statements=False neither pgqueue's
    pool nor the caller's own connection (prepare_threshold=0: prepare at once)
    is sent a prepared statement."""
    app = App(routes.through, prepared_statements=prepared)
    register(app)
    add = app.tasks["add"]
    try:
        with psycopg.connect(routes.through, autocommit=True, prepare_threshold=0) as mine, \
                psycopg.connect(routes.through) as other:
            for _ in range(6):  # psycopg prepares a statement on its 5th run in a pool
                add.delay(1, 2)
                add.apply_async((1, 2), connection=mine)
            other.execute("SELECT 1")  # a transaction that keeps the session just used
            if prepared:
                with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                    add.apply_async((3, 4), connection=mine)
            else:
                for _ in range(6):
                    add.delay(3, 4)
                    add.apply_async((3, 4), connection=mine)
                assert count(routes.direct, "SELECT count(*) FROM pgqueue.jobs") == 24
    finally:
        app.close()


# -- producers ------------------------------------------------------------------
def test_enqueue_in_a_transaction_through_the_bouncer_commits_and_rolls_back(
        routes: Routes, producer: App) -> None:
    add = producer.tasks["add"]
    with psycopg.connect(routes.through, prepare_threshold=None) as conn:
        with conn.transaction():
            kept = add.apply_async((1, 1), connection=conn)
            assert state(routes.direct, kept.id) == "missing"  # not before COMMIT
        with pytest.raises(ZeroDivisionError), conn.transaction():
            dropped = add.apply_async((2, 2), connection=conn)
            raise ZeroDivisionError
    assert state(routes.direct, kept.id) == "queued"
    assert state(routes.direct, dropped.id) == "missing"

    async def in_async_transaction() -> tuple[int, int]:
        async with await psycopg.AsyncConnection.connect(routes.through,
                                                         prepare_threshold=None) as aconn:
            async with aconn.transaction():
                kept = await add.apply_async_async((3, 3), connection=aconn)
            with pytest.raises(ZeroDivisionError):
                async with aconn.transaction():
                    dropped = await add.apply_async_async((4, 4), connection=aconn)
                    raise ZeroDivisionError
        return kept.id, dropped.id

    kept_id, dropped_id = asyncio.run(in_async_transaction())
    assert (state(routes.direct, kept_id), state(routes.direct, dropped_id)) == \
        ("queued", "missing")


# -- pooler detection -------------------------------------------------------------
def test_a_connection_through_the_bouncer_shows_a_pooler_and_a_direct_one_does_not(
        routes: Routes) -> None:
    """Even with prepared statements on (PgBouncer 1.21+ with max_prepared_statements),
    pgqueue sees the bouncer: its start-up pid is not the server session's."""
    async def why(dsn: str) -> str | None:
        link = Link(dsn, "probe")
        try:
            return await link.pooled("pgqueue")
        finally:
            await link.close()

    assert asyncio.run(why(routes.through)) == pooler.SHOWS_POOLER
    assert asyncio.run(why(routes.direct)) is None
    assert asyncio.run(why(routes.direct)) is None


# -- workers and schedulers -------------------------------------------------------
def start_worker(routes: Routes, log: Path, *args: str, listen: bool = True,
                 **env: str) -> subprocess.Popen[str]:
    settings = {"PGQ_PREPARED_STATEMENTS": "off", **env}
    if listen:
        settings["PGQ_LISTEN_DSN"] = routes.direct
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PGQ_LISTEN_DSN", raising=False)  # set when the suite runs through it
        for name, value in settings.items():
            patch.setenv(name, value)
        with log.open("w") as out:
            return pgq(routes.through, "worker", *args, stdout=out, stderr=subprocess.STDOUT)


def listening(direct: str) -> bool:
    """A worker's LISTEN connection is up, straight to Postgres (its last statement)."""
    return count(direct, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                         "current_database() AND application_name = 'pgqueue listen' "
                         "AND query LIKE 'LISTEN%%cancel%%'") == 1


def test_worker_and_scheduler_through_the_bouncer_wake_on_notify_via_the_listen_dsn(
        routes: Routes, producer: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 30 s poll interval, and results waited for with no re-read for 10 minutes:
    every job can only start by the worker's NOTIFY and end by the waiter's."""
    monkeypatch.setattr(result, "_RECHECK_SECONDS", 600.0)
    log = tmp_path / "worker.log"
    proc = start_worker(routes, log, "--app", "beat_app:app", "--beat",
                        "--poll-interval", "30")
    try:
        until(lambda: listening(routes.direct) or proc.poll() is not None, 30)
        assert proc.poll() is None, log.read_text()
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            assert producer.send_task("tick").get(timeout=10) is None
            latencies.append(time.monotonic() - started)
        print(f"\nenqueue -> result through PgBouncer: {[round(x * 1000) for x in latencies]} ms")
        assert max(latencies) < 1.0
        # The leader's lock is on the direct connection, and it fires every second.
        assert until(lambda: count(
            routes.direct, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
            "USING (pid) WHERE l.locktype = 'advisory' AND a.application_name = "
            "'pgqueue leader' AND a.datname = current_database()") == 1, 10)
        fired = until(lambda: count(routes.direct,
                                    "SELECT count(*) FROM pgqueue.schedule_ticks") >= 2, 10)
        assert fired
    finally:
        assert stop_process(proc) == 0, log.read_text()
    text = log.read_text()
    assert "polls" not in text and "no leader lock" not in text, text


def test_without_a_direct_dsn_workers_poll_say_so_once_and_jobs_still_run(
        routes: Routes, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiters, "_warned_polling", False)
    app = App(routes.through, prepared_statements=False)  # no listen_dsn: get() polls too
    register(app)
    log = tmp_path / "worker.log"
    proc = start_worker(routes, log, "--app", "beat_app:app", "--beat",
                        "--poll-interval", "0.5", listen=False)
    try:
        until(lambda: "serving queues" in log.read_text() or proc.poll() is not None, 30)
        assert proc.poll() is None, log.read_text()
        jobs = [app.send_task("tick") for _ in range(5)]
        assert [j.get(timeout=10) for j in jobs] == [None] * 5
        assert until(lambda: count(routes.direct,
                                   "SELECT count(*) FROM pgqueue.schedule_ticks") >= 2, 10)
        time.sleep(1.5)  # a few more poll rounds: the warning is still said once
    finally:
        assert stop_process(proc) == 0, log.read_text()
        app.close()
    text = log.read_text()
    assert text.count("no LISTEN through PGQ_DSN") == 1, text
    assert "PGQ_LISTEN_DSN" in text and pooler.PREPARED_OFF in text
    assert text.count("no leader lock through PGQ_DSN") == 1, text
    said = [r.getMessage() for r in caplog.records if "JobResult.get() polls" in r.getMessage()]
    assert len(said) == 1, said


def test_a_cancel_notification_reaches_a_running_job_via_the_listen_dsn(
        routes: Routes, producer: App, tmp_path: Path) -> None:
    """Heartbeats 10 s apart (they carry cancel requests too): a stop within 3 s can
    only have come by the notification on the direct connection."""
    log = tmp_path / "worker.log"
    proc = start_worker(routes, log, "--app", "tasks_app:app", "--heartbeat-interval", "10",
                        "--lease-seconds", "30")
    try:
        until(lambda: listening(routes.direct) or proc.poll() is not None, 30)
        assert proc.poll() is None, log.read_text()
        job = producer.tasks["cancellable"].delay()
        until(lambda: state(routes.direct, job.id) == "running", 10)
        time.sleep(0.5)  # past the heartbeat that followed the claim, if any
        asked = time.monotonic()
        assert job.cancel() is JobState.RUNNING
        assert until(lambda: state(routes.direct, job.id) == "cancelled", 3)
        print(f"\ncancel -> cancelled through PgBouncer: {time.monotonic() - asked:.3f}s")
    finally:
        assert stop_process(proc) == 0, log.read_text()
