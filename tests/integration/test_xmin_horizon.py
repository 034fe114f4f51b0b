"""A transaction left idle pins the xmin horizon (vacuum can't remove dead job rows,
claims slow down): `pgq status`, the dashboard and /metrics name it, and forget it
once it ends."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from starlette.testclient import TestClient

from pgqueue.dashboard import create_app
from pgqueue.metrics import render
from pgqueue.monitor import Monitor
from tests.conftest import ROOT, _pgq_env, until

NAME = "report-cron"  # the application_name of the session left open


@pytest.fixture
def holder(dsn: str) -> Iterator[psycopg.Connection]:
    """A session that took a transaction id, then sat idle in transaction."""
    conn = psycopg.connect(dsn, application_name=NAME)
    conn.execute("SELECT txid_current()")
    try:
        yield conn
    finally:
        conn.close()


def _status(dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgqueue.cli", "status"], cwd=str(ROOT),
                          env={**_pgq_env(dsn), "PGQ_XMIN_WARN": "1"}, text=True,
                          capture_output=True, timeout=60)


def _held(app, pid: int) -> bool:
    horizon = Monitor(app).xmin_horizon()
    return any(h.pid == pid for h in horizon.holders) and horizon.warning


def test_an_idle_transaction_is_reported_everywhere_until_it_ends(app, dsn, holder):
    app.configure(xmin_warn=1.0)
    pid = holder.info.backend_pid
    until(lambda: _held(app, pid), timeout=10)
    found = Monitor(app).xmin_horizon()
    oldest = found.holders[0]
    assert (oldest.kind, oldest.pid, oldest.name, oldest.state) == (
        "session", pid, NAME, "idle in transaction")
    assert oldest.seconds is not None and oldest.seconds > 1 and oldest.xids is not None
    assert found.warn_after_seconds == 1.0

    out = _status(dsn)
    assert out.returncode == 0, out.stderr
    assert re.search(rf"WARNING: session '{NAME}' \(pid {pid}\) has held the xmin horizon",
                     out.stdout), out.stdout
    assert re.search(rf"session\s+{pid}\s+{NAME}\s+\S+\s+idle in transaction", out.stdout)

    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        api = client.get("/api/overview").json()["xmin_horizon"]
        assert api["warning"] is True
        assert [h["name"] for h in api["holders"] if h["pid"] == pid] == [NAME]
        page = client.get("/").text
        assert 'id="xmin-horizon" data-warning="yes"' in page
        assert f'data-pid="{pid}"' in page and NAME in page
        metrics = client.get("/metrics").text
    seconds = float(re.search(r"^pgqueue_oldest_xmin_age_seconds (\S+)$", metrics,
                              re.M).group(1))  # type: ignore[union-attr]
    assert seconds > 1
    assert float(re.search(r"^pgqueue_oldest_xmin_age_xids (\S+)$", metrics,
                           re.M).group(1)) >= 0  # type: ignore[union-attr]

    holder.close()  # its backend leaves pg_stat_activity a moment later
    horizon = until(lambda: (h := Monitor(app).xmin_horizon()).holders == [] and h, timeout=10)
    assert not horizon.warning and horizon.oldest_seconds is None
    assert "pgqueue_oldest_xmin_age_seconds 0.0" in render(Monitor(app))[0].decode()
    out = _status(dsn)
    assert "WARNING" not in out.stdout and NAME not in out.stdout


def test_a_young_transaction_is_listed_without_a_warning(app, holder):
    pid = holder.info.backend_pid
    until(lambda: any(h.pid == pid for h in Monitor(app).xmin_horizon().holders), timeout=10)
    assert not Monitor(app).xmin_horizon().warning  # the default: 5 minutes
    assert os.environ.get("PGQ_XMIN_WARN") is None
