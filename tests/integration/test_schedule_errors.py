"""Bad schedule rows, written by SQL among good ones: each is skipped, logged once and
its error stored; the good ones keep firing; a fixed row fires again."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import psycopg
import pytest

from pgqueue import App
from pgqueue.scheduler import Scheduler
from tests.conftest import count, running_worker, wait_for

# name -> (SQL columns and values, words the stored error must contain)
BAD_ROWS = {
    "mars": ("cron, tz", "'0 * * * *', 'Mars/Olympus'", "unknown time zone 'Mars/Olympus'"),
    "gibberish": ("cron", "'not a cron'", "invalid cron expression 'not a cron'"),
    "feb-30": ("cron", "'0 0 30 2 *'", "CroniterBadDateError"),
    "args-object": ("every_seconds, args", "1, '{\"a\": 1}'", "args must be a JSON array"),
    "kwargs-list": ("every_seconds, kwargs", "1, '[1]'", "kwargs must be a JSON object"),
    "not-a-number": ("every_seconds", "'NaN'", "must be finite numbers of seconds"),
    "forever": ("every_seconds, last_fire_at", "1, 'infinity'", "must be a finite time"),
}


def insert_bad_rows(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        for name, (columns, values, _) in BAD_ROWS.items():
            conn.execute(f"INSERT INTO pgqueue.schedules (name, task, queue, {columns}) "
                         f"VALUES (%s, 'tick', 'default', {values})", (name,))


@pytest.fixture
def good_app(dsn):
    app = App(dsn)

    @app.periodic(every=dt.timedelta(seconds=1), catch_up="all", name="every-second")
    @app.task
    def tick() -> str:
        return "tock"

    yield app
    app.close()


def backdate(dsn: str, seconds: int, *names: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgqueue.schedules SET anchor_at = now() - make_interval(secs => %s),"
                     " last_fire_at = NULL WHERE name = ANY(%s)", (seconds, list(names)))


def errors(dsn: str) -> dict[str, tuple[str | None, bool]]:
    with psycopg.connect(dsn) as conn:
        return {name: (error, error_at is not None) for name, error, error_at in conn.execute(
            "SELECT name, error, error_at FROM pgqueue.schedules ORDER BY name")}


def jobs_of(dsn: str) -> int:
    return count(dsn, "SELECT count(*) FROM pgqueue.schedule_ticks t JOIN pgqueue.jobs j "
                      "ON j.id = t.job_id WHERE t.schedule = 'every-second'")


async def _run_times(app: App, n: int, *backdated: str) -> Scheduler:
    s = Scheduler(app)
    await s.start()
    backdate(app.dsn(), 5, *backdated)
    for _ in range(n):
        await s.run_once()
    await s.link.close()
    return s


def test_bad_rows_are_skipped_stored_and_logged_once(good_app, dsn, caplog):
    insert_bad_rows(dsn)
    caplog.set_level(logging.INFO, logger="pgqueue.scheduler")
    asyncio.run(_run_times(good_app, 3, "every-second"))
    assert 5 <= jobs_of(dsn) <= 8  # caught up, unhindered (plus a new tick per second run)
    assert count(dsn, "SELECT count(*) FROM pgqueue.schedule_ticks "
                      "WHERE schedule <> 'every-second'") == 0
    stored = errors(dsn)
    assert stored.pop("every-second") == (None, False)
    for name, (_, _, words) in BAD_ROWS.items():
        error, stamped = stored[name]
        assert error is not None and words in error and stamped, (name, error)
        logged = [r for r in caplog.records if f"skipping schedule {name!r}" in r.getMessage()]
        assert len(logged) == 1, (name, [r.getMessage() for r in logged])


def test_a_fixed_row_fires_again_and_its_error_is_cleared(good_app, dsn, caplog):
    insert_bad_rows(dsn)
    caplog.set_level(logging.INFO, logger="pgqueue.scheduler")

    async def go() -> None:
        s = Scheduler(good_app)
        await s.start()
        await s.run_once()
        with psycopg.connect(dsn) as conn:
            conn.execute("UPDATE pgqueue.schedules SET tz = 'Europe/Paris', cron = '* * * * *'"
                         " WHERE name = 'mars'")
            conn.execute("UPDATE pgqueue.schedules SET args = '[1]' WHERE name = 'args-object'")
        backdate(dsn, 120, "mars", "args-object")
        await s.run_once()
        await s.link.close()
    asyncio.run(go())
    stored = errors(dsn)
    assert stored["mars"] == (None, False) and stored["args-object"] == (None, False)
    assert stored["gibberish"][0] is not None
    with psycopg.connect(dsn) as conn:
        fired = dict(conn.execute("SELECT t.schedule, count(*) FROM pgqueue.schedule_ticks t "
                                  "JOIN pgqueue.jobs j ON j.id = t.job_id GROUP BY 1"))
        assert conn.execute("SELECT args::text FROM pgqueue.jobs j JOIN pgqueue.schedule_ticks"
                            " t ON t.job_id = j.id WHERE t.schedule = 'args-object' LIMIT 1"
                            ).fetchone() == ("[1]",)
    assert fired["mars"] == 1 and fired["args-object"] == 1  # catch_up 'latest'
    assert any("'mars' is valid again" in r.getMessage() for r in caplog.records)


def test_a_row_the_jobs_table_refuses_does_not_block_the_others(good_app, dsn):
    with psycopg.connect(dsn) as conn:  # stands for any value a job row can't take
        conn.execute("ALTER TABLE pgqueue.jobs ADD CONSTRAINT no_refused "
                     "CHECK (task <> 'refused')")
        conn.execute("INSERT INTO pgqueue.schedules (name, task, queue, every_seconds) "
                     "VALUES ('refused', 'refused', 'default', 1)")
    asyncio.run(_run_times(good_app, 2, "every-second", "refused"))
    assert 5 <= jobs_of(dsn) <= 8
    error, stamped = errors(dsn)["refused"]
    assert error is not None and "could not be enqueued" in error and "no_refused" in error
    assert stamped
    assert count(dsn, "SELECT count(*) FROM pgqueue.schedule_ticks "
                      "WHERE schedule = 'refused'") == 0


def test_resync_from_code_clears_the_error(good_app, dsn):
    async def go() -> None:
        s = Scheduler(good_app)
        await s.start()
        with psycopg.connect(dsn) as conn:
            conn.execute("UPDATE pgqueue.schedules SET every_seconds = NULL, cron = 'bad' "
                         "WHERE name = 'every-second'")
        await s.run_once()
        assert errors(dsn)["every-second"][0] is not None
        await s.start()  # the code's rule is written back
        await s.link.close()
    asyncio.run(go())
    assert errors(dsn)["every-second"] == (None, False)


def test_worker_with_beat_keeps_firing_next_to_bad_rows(good_app, dsn):
    insert_bad_rows(dsn)
    with running_worker(good_app, beat=True):
        assert wait_for(lambda: count(
            dsn, "SELECT count(*) FROM pgqueue.jobs WHERE task = 'tick' "
                 "AND state = 'succeeded'") >= 3, timeout=15)
        assert wait_for(lambda: all(errors(dsn)[n][0] for n in BAD_ROWS), timeout=5)
