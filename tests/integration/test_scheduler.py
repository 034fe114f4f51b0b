"""The scheduler against a real Postgres: ticks, exactly-once firing, leadership,
run-time management and pruning."""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg
import pytest

from pgqueue import App
from pgqueue.maintenance import Pruner
from pgqueue.scheduler import Scheduler
from tests.conftest import count, pgq_run, running_worker, wait_for


@pytest.fixture
def sched_app(dsn):
    app = App(dsn)

    @app.periodic(every=dt.timedelta(seconds=1), catch_up="all", name="every-second")
    @app.task
    def tick() -> str:
        return "tock"

    @app.periodic(cron="0 3 * * *", tz="Europe/Paris", args=(30,))
    @app.task(queue="maintenance")
    def cleanup(days: int) -> int:
        return days

    yield app
    app.close()


def backdate(dsn: str, name: str, seconds: int) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgqueue.schedules SET anchor_at = now() - make_interval(secs => %s),"
                     " last_fire_at = NULL WHERE name = %s", (seconds, name))


async def _started(app: App) -> Scheduler:
    s = Scheduler(app)
    await s.start()
    return s


def test_sync_stores_code_schedules(sched_app, dsn):
    async def go():
        s = await _started(sched_app)
        await s.start()  # idempotent
        await s.link.close()
    asyncio.run(go())
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT name, task, cron, every_seconds, tz, queue, args::text "
                            "FROM pgqueue.schedules ORDER BY name").fetchall()
    assert rows == [("cleanup", "cleanup", "0 3 * * *", None, "Europe/Paris", "maintenance",
                     "[30]"),
                    ("every-second", "tick", None, 1.0, "UTC", "default", "[]")]


def test_run_once_catches_up_missed_ticks_once(sched_app, dsn):
    async def go() -> tuple[float, float]:
        s = await _started(sched_app)
        backdate(dsn, "every-second", 10)
        await s.run_once()
        first = count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE task = 'tick'")
        await s.run_once()  # nothing new in the same second (or one more tick)
        second = count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE task = 'tick'")
        await s.link.close()
        return first, second
    first, second = asyncio.run(go())
    assert 10 <= first <= 11 and second - first <= 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.schedule_ticks") == second


def test_two_schedulers_never_double_a_tick(sched_app, dsn):
    async def go() -> None:
        a, b = await _started(sched_app), await _started(sched_app)
        backdate(dsn, "every-second", 30)
        await asyncio.gather(a.run_once(), b.run_once(), a.run_once(), b.run_once())
        await a.link.close()
        await b.link.close()
    asyncio.run(go())
    jobs = count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE task = 'tick'")
    ticks = count(dsn, "SELECT count(DISTINCT fire_at) FROM pgqueue.schedule_ticks")
    assert jobs == ticks and 30 <= jobs <= 32


def test_one_leader_and_takeover(sched_app, dsn):
    async def go() -> tuple[list[bool], bool]:
        a, b = await _started(sched_app), await _started(sched_app)
        first = [await a.lead(), await b.lead(), await a.lead(), await b.lead()]
        await a.lock_link.close()  # the leader's connection ends
        took_over = await b.lead()
        for s in (a, b):
            await s.link.close()
            await s.lock_link.close()
        return first, took_over
    first, took_over = asyncio.run(go())
    assert first == [True, False, True, False]
    assert took_over


def test_cli_list_pause_resume_trigger(sched_app, dsn):
    asyncio.run(_started(sched_app))
    out = pgq_run(dsn, "schedules", "list")
    assert out.returncode == 0, out.stderr
    assert "every-second" in out.stdout and "0 3 * * * Europe/Paris" in out.stdout
    assert "paused" in pgq_run(dsn, "schedules", "pause", "every-second").stdout
    assert "paused" in pgq_run(dsn, "schedules", "list").stdout

    async def fire_while_paused() -> None:
        s = await _started(sched_app)
        backdate(dsn, "every-second", 5)
        with psycopg.connect(dsn) as conn:
            conn.execute("UPDATE pgqueue.schedules SET paused = true")
        await s.run_once()
        await s.link.close()
    asyncio.run(fire_while_paused())
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
    assert "resumed" in pgq_run(dsn, "schedules", "resume", "every-second").stdout
    out = pgq_run(dsn, "schedules", "trigger", "cleanup")
    assert "job" in out.stdout
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT task, queue, args::text FROM pgqueue.jobs").fetchall() == [
            ("cleanup", "maintenance", "[30]")]
    bad = pgq_run(dsn, "schedules", "pause", "nope")
    assert bad.returncode != 0 and "no schedule named 'nope'" in bad.stderr


def test_worker_with_beat_runs_periodic_tasks(sched_app, dsn):
    with running_worker(sched_app, beat=True):
        assert wait_for(lambda: count(
            dsn, "SELECT count(*) FROM pgqueue.jobs WHERE task = 'tick' "
                 "AND state = 'succeeded'") >= 2, timeout=10)


def test_pruner_deletes_old_finished_jobs_with_their_rows(sched_app, dsn):
    add = sched_app.tasks["tick"]
    old, recent, waiting = add.delay(), add.delay(), add.delay()
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now() - "
                     "interval '8 days' WHERE id = %s", (old.id,))
        conn.execute("UPDATE pgqueue.jobs SET state = 'failed', finished_at = now() - "
                     "interval '1 day' WHERE id = %s", (recent.id,))
        for job in (old, recent):
            conn.execute("INSERT INTO pgqueue.job_results (job_id, value) VALUES (%s, '1')",
                         (job.id,))
            conn.execute("INSERT INTO pgqueue.job_errors (job_id, attempt, type, message, "
                         "traceback) VALUES (%s, 1, 'E', 'm', 't')", (job.id,))

    async def go() -> dict[str, int]:
        s = await _started(sched_app)
        pruned = await Pruner(s.link, "pgqueue", dt.timedelta(days=7), batch=1).run_once()
        await s.link.close()
        return pruned
    assert asyncio.run(go())["jobs"] == 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 2
    assert count(dsn, "SELECT count(*) FROM pgqueue.job_results") == 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.job_errors") == 1
    assert waiting.info().state == "queued"


def test_prune_step_runs_on_the_leader_at_once_then_each_interval(sched_app, dsn):
    add = sched_app.tasks["tick"]
    old = add.delay()
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now() - "
                     "interval '8 days' WHERE id = %s", (old.id,))

    async def go() -> tuple[float, float, int]:
        leader, follower = await _started(sched_app), await _started(sched_app)
        assert await leader.lead() and not await follower.lead()
        assert await follower.step() == 0.5 and await follower.prune_step() == 0.5
        assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1  # a follower never prunes
        first = await leader.prune_step()
        pruned = 1 - count(dsn, "SELECT count(*) FROM pgqueue.jobs")
        second = await leader.prune_step()  # not due again before prune_interval
        for s in (leader, follower):
            for link in (s.link, s.prune_link, s.lock_link):
                await link.close()
        return first, second, pruned
    first, second, pruned = asyncio.run(go())
    assert pruned == 1
    assert 3500 < second <= first <= 3600  # the default prune_interval, counting down


def test_prune_schedules_deletes_what_the_code_does_not_declare(sched_app, dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO pgqueue.schedules (name, task, queue, every_seconds) "
                     "VALUES ('gone-from-code', 'old', 'default', 60)")

    async def go(prune: bool) -> None:
        s = Scheduler(sched_app, prune_schedules=prune)
        await s.start()
        await s.link.close()
    asyncio.run(go(False))
    assert count(dsn, "SELECT count(*) FROM pgqueue.schedules") == 3
    asyncio.run(go(True))
    with psycopg.connect(dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM pgqueue.schedules ORDER BY 1")]
    assert names == ["cleanup", "every-second"]
