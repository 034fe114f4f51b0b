"""A rolling deploy, new producers first: a job whose task the worker doesn't know
goes back for a while (uncounted, logged once per task name), then fails."""

from __future__ import annotations

import logging

import psycopg
import pytest

from pgqueue import App, TaskError
from tests.conftest import running_worker, wait_for


def _row(dsn: str, job_id: int) -> tuple[str, int, bool]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT state::text, attempts, run_at > now() FROM pgqueue.jobs "
                           "WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_an_unknown_task_waits_for_a_worker_that_knows_it(app: App, dsn: str,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.WARNING, "pgqueue.worker")
    jobs = [app.send_task("shipped.tomorrow", (i,)) for i in range(3)]
    with running_worker(app, unknown_task_grace=60):
        assert wait_for(lambda: all(_row(dsn, j.id) == ("queued", 0, True) for j in jobs), 10)
        assert sum("shipped.tomorrow" in r.getMessage() for r in caplog.records) == 1

        @app.task(name="shipped.tomorrow")  # the new code arrives
        def shipped(i: int) -> int:
            return i * 10

        assert [j.get(timeout=15) for j in jobs] == [0, 10, 20]


def test_after_the_grace_it_fails_as_unknown(app: App, dsn: str) -> None:
    job = app.send_task("never.shipped")
    with psycopg.connect(dsn, autocommit=True) as conn:  # enqueued long ago
        conn.execute("UPDATE pgqueue.jobs SET created_at = now() - interval '2 minutes' "
                     "WHERE id = %s", (job.id,))
    with running_worker(app, unknown_task_grace=60), pytest.raises(TaskError) as err:
        job.get(timeout=10)
    assert err.value.type == "UnknownTask"
