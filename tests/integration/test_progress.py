"""Job progress through real workers in every pool, read back from the job's row."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgqueue import App, JobNotFound, JobState, Progress, TaskError, statements
from tests.conftest import running_worker, wait_for
from tests.progress_app import APP_PATH, register

SCHEMA = "pgqueue"
# Counts the writes that change a job's progress: what the throttle promises to keep low.
COUNT_WRITES = """
CREATE TABLE public.progress_writes (job_id bigint, done text);
CREATE FUNCTION public.count_progress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.progress_writes VALUES (NEW.id, NEW.progress->>'done');
    RETURN NEW;
END $$;
CREATE TRIGGER count_progress AFTER UPDATE OF progress ON pgqueue.jobs FOR EACH ROW
WHEN (NEW.progress IS NOT NULL AND OLD.progress IS DISTINCT FROM NEW.progress)
EXECUTE FUNCTION public.count_progress();
"""


@pytest.fixture
def papp(app: App) -> Iterator[App]:
    register(app)
    yield app


def _writes(dsn: str, job_id: int) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT done FROM public.progress_writes WHERE job_id = %s", (job_id,))]


async def _progress_async(app: App, job_id: int) -> Progress | None:
    try:
        return await app.AsyncResult(job_id).progress_async()
    finally:
        await app.async_client.close()  # its pool belongs to this loop, which ends here


@pytest.mark.parametrize("pool, task", [
    ("threads", "gated_progress"),
    ("threads", "async_gated_progress"),
    ("processes", "gated_progress"),
    ("asyncio", "async_gated_progress"),
])
def test_progress_is_seen_while_the_job_runs_and_its_last_report_is_kept(
        papp: App, tmp_path: Path, pool: str, task: str) -> None:
    gate = tmp_path / "gate"
    with running_worker(papp, app_path=APP_PATH, pool=pool, concurrency=2):
        r = papp.tasks[task].delay(str(gate), 40)
        assert wait_for(lambda: r.progress is not None, timeout=30)
        p = r.progress
        assert isinstance(p, Progress) and (p.done, p.total, p.fraction) == (1, 40, 1 / 40)
        assert p.meta["stage"] == "waiting" and r.state is JobState.RUNNING
        if pool == "processes":
            assert p.meta["pid"] != __import__("os").getpid()  # reported by the child
        assert p.updated_at is not None and p.updated_at.tzinfo is not None
        assert abs((dt.datetime.now(dt.UTC) - p.updated_at).total_seconds()) < 30
        assert r.info().progress == p
        assert asyncio.run(_progress_async(papp, r.id)) == p
        gate.touch()
        assert r.get(timeout=30) == 40
        # Reported just before returning: written before the outcome, not lost.
        last = r.progress
        assert last is not None and (last.done, last.total, last.meta) == (40, 40,
                                                                           {"stage": "done"})
        assert last.fraction == 1.0 and last.updated_at >= p.updated_at


def test_a_report_under_a_stale_lease_changes_nothing(papp: App, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = papp.client.execute
    with running_worker(papp):
        r = papp.tasks["gated_progress"].delay(str(gate), 3)
        assert wait_for(lambda: r.progress is not None, timeout=20)
        before = r.progress
        stale = {(r.id, uuid.uuid4()): (2, 3, '{"by": "a lost attempt"}')}
        assert run(statements.update_progress(SCHEMA, stale)) == {}
        assert r.progress == before
        gate.touch()
        r.get(timeout=20)
    with psycopg.connect(papp.dsn()) as conn:
        (lease,) = conn.execute("SELECT lease FROM pgqueue.jobs WHERE id = %s",
                                (r.id,)).fetchone()
    assert lease is None  # finished: no attempt's lease is good any more
    done = r.progress
    assert run(statements.update_progress(SCHEMA, {(r.id, uuid.uuid4()): (0, 3, None)})) == {}
    assert r.progress == done


def test_a_running_attempts_own_lease_writes(papp: App) -> None:
    """The statement on its own: applied under the lease the claim gave, nowhere else."""
    run = papp.client.execute
    (job_id,) = run(statements.enqueue(SCHEMA, [statements.make_request("add", (1, 2))]))
    worker = run(statements.register_worker(SCHEMA, name="w", host="h", pid=1,
                                            queues=["default"], pool="threads",
                                            concurrency=1))
    (job,) = run(statements.claim(SCHEMA, worker, ["default"], 1, 30))
    other = run(statements.enqueue(SCHEMA, [statements.make_request("add", (3, 4))]))[0]
    written = run(statements.update_progress(SCHEMA, {
        (job.id, job.lease): (7, None, '{"$date": "2026-01-02"}'),
        (other, job.lease): (1, 2, None)}))  # queued, and not under that lease
    assert written == {job_id: True}
    p = papp.AsyncResult(job_id).progress
    assert p is not None and (p.done, p.total, p.meta, p.fraction) == (
        7, None, dt.date(2026, 1, 2), None)
    assert papp.AsyncResult(other).progress is None
    with pytest.raises(JobNotFound):
        _ = papp.AsyncResult(987654321).progress


@pytest.mark.parametrize("pool, task", [
    ("threads", "progress_loop"),
    ("processes", "progress_loop"),
    ("asyncio", "async_progress_loop"),
])
def test_a_tight_loop_of_reports_costs_a_handful_of_writes(papp: App, dsn: str, pool: str,
                                                           task: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(COUNT_WRITES)
    n = 100_000
    with running_worker(papp, app_path=APP_PATH, pool=pool) as worker:
        r = papp.tasks[task].delay(n)
        micros = r.get(timeout=60)
        writer = worker.parts.progress
        assert writer is not None
        statements_sent = writer.writes
    writes = _writes(dsn, r.id)
    print(f"\n{pool}: {n:,} update_progress calls, {micros:.2f} us each, "
          f"{len(writes)} row writes, {statements_sent} progress statements")
    assert 1 <= len(writes) <= 6 and statements_sent <= 6
    assert writes[-1] == str(n)  # the last report is the one kept
    assert r.progress.done == n and r.progress.fraction == 1.0


def test_bad_reports_fail_the_task_with_a_clear_error(papp: App) -> None:
    with running_worker(papp):
        for kind, error, words in [("bool", "TypeError", "int or a float, not bool"),
                                   ("total", "ValueError", "total must be above 0"),
                                   ("meta", "TypeError", "not JSON serialisable")]:
            with pytest.raises(TaskError) as info:
                papp.tasks["bad_progress"].delay(kind).get(timeout=20)
            assert info.value.type == error and words in info.value.message
        assert papp.tasks["add"].delay(1, 1).get(timeout=20) == 2  # serving on


def test_a_retry_starts_without_the_last_attempts_progress(papp: App, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(COUNT_WRITES)
    with running_worker(papp):
        r = papp.tasks["reports_then_fails_once"].delay()
        assert r.get(timeout=20) == 2
    assert _writes(dsn, r.id) == ["5"]  # attempt 1's report was written before it failed
    assert r.progress is None and r.info().progress is None
