"""One locked job row doesn't stall the heartbeat: the other jobs keep their leases."""

from __future__ import annotations

import psycopg

from pgqueue import App, JobState
from tests.conftest import running_worker, wait_for


def _lease_ends(conn: psycopg.Connection[tuple[float]], job_id: int) -> float:
    row = conn.execute("SELECT extract(epoch FROM lease_expires_at)::float8 "
                       "FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()
    return float(row[0]) if row and row[0] is not None else -1.0


def test_a_locked_row_is_skipped_and_kept(app: App, dsn: str) -> None:
    jobs = [app.tasks["sleepy"].delay(3) for _ in range(3)]
    with running_worker(app, concurrency=3):
        assert wait_for(lambda: all(j.state is JobState.RUNNING for j in jobs), 5)
        with psycopg.connect(dsn) as locker, psycopg.connect(dsn, autocommit=True) as conn:
            locker.execute("SELECT 1 FROM pgqueue.jobs WHERE id = %s FOR UPDATE",
                           (jobs[0].id,))
            first = _lease_ends(conn, jobs[1].id)
            # Each beat (0.5 s) pushes the lease's end later; a stalled heartbeat can't.
            assert wait_for(lambda: _lease_ends(conn, jobs[1].id) > first + 0.4, 3), \
                "the heartbeat stalled behind a locked row"
            locker.rollback()
        assert [j.get(timeout=15) for j in jobs] == ["slept"] * 3
