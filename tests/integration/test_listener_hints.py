"""Any role may NOTIFY pgqueue's channels: a payload that isn't pgqueue's is logged and
ignored, and the listener goes on waking the worker and delivering cancels."""

from __future__ import annotations

import logging

import psycopg
import pytest

from pgqueue import App, JobState
from tests.conftest import running_worker, wait_for


def test_foreign_payloads_are_ignored(app: App, dsn: str,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "pgqueue.worker")
    with running_worker(app, poll_interval=60):  # only NOTIFY can wake it in time
        with psycopg.connect(dsn, autocommit=True) as conn:
            for payload in ("x", "", "-1", "9" * 40, "1,2"):
                conn.execute("SELECT pg_notify('pgqueue.cancel', %s)", (payload,))
            conn.execute("SELECT pg_notify('pgqueue.jobs', 'no-such-queue')")
        assert app.tasks["add"].delay(2, 3).get(timeout=5) == 5
        running = app.tasks["cancellable"].delay()
        assert wait_for(lambda: running.state is JobState.RUNNING, 5)
        running.cancel()
        assert wait_for(lambda: running.state is JobState.CANCELLED, 5)
    assert any("ignored a cancel notification" in r.getMessage() for r in caplog.records)
