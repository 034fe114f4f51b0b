"""PGQ_MONITOR_DSN: the dashboard's pages, `pgq status` and /metrics read from it (a
read replica); actions (pause, retry, cancel) and the xmin horizon still go to PGQ_DSN.

The "replica" is a second database made from the same template, with different
rows: what a reader shows says which database it read.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from starlette.testclient import TestClient

from pgqueue import App
from pgqueue.dashboard import create_app
from pgqueue.monitor import Monitor, close_reader, reader
from tests.conftest import ROOT, _janitor, _pgq_env, count, until

_counter = itertools.count()


def _enqueue_raw(dsn: str, queue: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute(  # type: ignore[index]
            "INSERT INTO pgqueue.jobs (queue, task, args, kwargs) "
            "VALUES (%s, 'add', '[1, 2]', '{}') RETURNING id", (queue,)).fetchone()[0])


@pytest.fixture(scope="module")
def replica(pg_server: str, template_db: str) -> Iterator[str]:
    """Shared by the module's tests: none of them writes to it."""
    name = f"pgq_replica_{os.getpid()}_{next(_counter)}"
    janitor = _janitor(pg_server, name, template=template_db)
    janitor.init()
    try:
        dsn = make_conninfo(pg_server, dbname=name)
        _enqueue_raw(dsn, "on-replica")
        yield dsn
    finally:
        janitor.drop()


@pytest.fixture
def split(dsn: str, replica: str) -> Iterator[tuple[App, int]]:
    """An app on the primary whose monitor reads the replica; each has its own queue
    (the primary's job id is returned)."""
    job = _enqueue_raw(dsn, "on-primary")
    app = App(dsn, monitor_dsn=replica)
    try:
        yield app, job
    finally:
        close_reader(app)
        app.close()


def test_monitor_reads_the_replica_and_acts_on_the_primary(dsn, split):
    app, job = split
    monitor = Monitor(app)
    assert [q.queue for q in monitor.queues()] == ["on-replica"]
    assert [j.queue for j in monitor.jobs().jobs] == ["on-replica"]
    monitor.pause_queue("on-primary")
    assert count(dsn, "SELECT count(*) FROM pgqueue.queues WHERE name = 'on-primary' "
                      "AND paused") == 1
    assert count(app.settings.monitor_dsn,  # type: ignore[arg-type]
                 "SELECT count(*) FROM pgqueue.queues") == 0
    assert monitor.cancel_job(job) == "cancelled"
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s "
                      "AND state = 'cancelled'", job) == 1
    assert reader(app) is reader(app) is not app.client  # one reader pool per app


def test_the_xmin_horizon_is_the_primarys(dsn, split):
    app, _ = split
    with psycopg.connect(dsn, application_name="held-on-primary") as holder:
        holder.execute("SELECT txid_current()")
        until(lambda: any(h.name == "held-on-primary"
                          for h in Monitor(app).xmin_horizon().holders), timeout=10)


def test_dashboard_and_metrics_read_the_replica(dsn, split):
    app, _ = split
    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        assert [q["queue"] for q in client.get("/api/overview").json()["queues"]] == [
            "on-replica"]
        assert "on-replica" in client.get("/").text
        metrics = client.get("/metrics").text
        assert 'queue="on-replica"' in metrics and 'queue="on-primary"' not in metrics
        token = client.get("/api/csrf").json()["csrf_token"]
        assert client.post("/api/queues/on-primary/pause",
                           headers={"X-CSRF-Token": token}).status_code < 400
    assert count(dsn, "SELECT count(*) FROM pgqueue.queues WHERE name = 'on-primary' "
                      "AND paused") == 1


def test_pgq_status_reads_the_replica(dsn, replica, split):
    out = subprocess.run([sys.executable, "-m", "pgqueue.cli", "status", "--json"],
                         cwd=str(ROOT), env={**_pgq_env(dsn), "PGQ_MONITOR_DSN": replica},
                         text=True, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"queue": "on-replica"' in out.stdout and "on-primary" not in out.stdout
