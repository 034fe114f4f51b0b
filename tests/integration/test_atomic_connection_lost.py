"""An atomic task whose connection drops is retried, unrecorded (not failed), like a
job of a lost worker; its writes happen once."""

from __future__ import annotations

from typing import Any

import psycopg

from pgqueue import App
from tests.conftest import running_worker


def test_a_dropped_atomic_connection_gives_the_job_back(app: App, dsn: str) -> None:
    runs: list[int] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE atomic_effects (n int)")

    @app.task(atomic=True, bind=True)  # no retries: a failure would be final
    def drops_once(self: Any) -> int:
        runs.append(1)
        self.connection.execute("INSERT INTO atomic_effects VALUES (%s)", (len(runs),))
        if len(runs) == 1:
            self.connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return len(runs)

    job = drops_once.delay()
    with running_worker(app):
        assert job.get(timeout=20) == 2
    with psycopg.connect(dsn) as conn:
        effects = [r[0] for r in conn.execute("SELECT n FROM atomic_effects").fetchall()]
        attempts = conn.execute("SELECT attempts FROM pgqueue.jobs WHERE id = %s",
                                (job.id,)).fetchone()
    assert effects == [2]  # the first attempt's write died with its connection
    assert attempts == (1,)  # given back uncounted, not failed and retried
