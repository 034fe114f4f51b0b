"""Replaying jobs: failed only in bulk, the budget they started with, retry forever."""

from __future__ import annotations

import psycopg

from pgqueue import App, JobState
from tests.conftest import running_worker, wait_for


def _row(dsn: str, job_id: int) -> tuple[str, int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT state::text, attempts, max_attempts FROM pgqueue.jobs "
                           "WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_each_replay_gets_the_budget_the_job_started_with(app: App, dsn: str) -> None:
    @app.task(max_retries=1, default_retry_delay=0)
    def fails_twice() -> None:
        raise OSError("down")

    job = fails_twice.delay()
    with running_worker(app):
        for replay in range(3):
            assert wait_for(lambda: _row(dsn, job.id)[0] == "failed", 10)
            assert _row(dsn, job.id)[1] == 2 * (replay + 1)
            assert app.retry_failed() == [job.id]
        assert wait_for(lambda: _row(dsn, job.id)[0] == "failed", 10)
    assert _row(dsn, job.id) == ("failed", 8, 8)  # 2 attempts a run, never more


def test_retry_failed_leaves_cancelled_jobs_alone(app: App, dsn: str) -> None:
    later = app.tasks["add"].apply_async((1, 2), countdown=3600)
    assert later.cancel() is JobState.CANCELLED
    assert app.retry_failed() == []
    assert later.state is JobState.CANCELLED
    assert later.retry()  # by id, a cancelled job may be replayed on purpose
    assert later.state is JobState.QUEUED


def test_max_retries_none_retries_forever(app: App, dsn: str) -> None:
    @app.task(max_retries=None, default_retry_delay=0, retry_jitter=False)
    def never_works() -> None:
        raise OSError("still down")

    job = never_works.delay()
    with running_worker(app):
        assert wait_for(lambda: _row(dsn, job.id)[1] >= 20, 20)
    state, _, max_attempts = _row(dsn, job.id)
    assert state in ("queued", "running")
    assert max_attempts == 2**31 - 1
