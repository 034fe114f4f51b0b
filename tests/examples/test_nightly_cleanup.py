"""examples/nightly_cleanup for real: a `pgq worker --beat` subprocess leads the
scheduler; the nightly schedule is stored with its 03:00 Paris rule, runs when
triggered, and (with a per-second rule) fires on its own. Stale rows go, fresh stay."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.conftest import count, wait_for
from tests.examples.conftest import example_pgq, stop

STALE, FRESH = 12_000, 500  # 12,000 stale rows: three batches of 5,000


def _leading(log: Path) -> bool:
    return "scheduler: leading" in log.read_text()


def _pgq(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = example_pgq(dsn, "nightly_cleanup", *args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=15)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _succeeded(dsn: str) -> int:
    return count(dsn, "SELECT count(*) FROM pgqueue.jobs "
                      "WHERE task = 'delete_stale_sessions' AND state = 'succeeded'")


@pytest.mark.timeout(30)
def test_triggered_nightly_cleanup_deletes_stale_rows_and_keeps_fresh(dsn, load_example,
                                                                      tmp_path):
    cleanup_app = load_example("nightly_cleanup", "cleanup_app")
    cleanup_app.seed(dsn, STALE, FRESH)
    log = tmp_path / "worker.log"
    worker = example_pgq(dsn, "nightly_cleanup", "worker", "--app", "cleanup_app:app",
                         "--beat", stderr=log.open("w"))
    try:
        assert wait_for(lambda: _leading(log), timeout=10, interval=0.05), log.read_text()
        listed = _pgq(dsn, "schedules", "list")
        triggered = _pgq(dsn, "schedules", "trigger", "delete_stale_sessions")
        assert triggered.returncode == 0, triggered.stderr
        assert wait_for(lambda: _succeeded(dsn) == 1, timeout=10, interval=0.05)
    finally:
        assert stop(worker) == 0

    assert count(dsn, "SELECT count(*) FROM cleanup_sessions") == FRESH
    assert count(dsn, "SELECT count(*) FROM cleanup_sessions "
                      "WHERE last_seen_at < now() - interval '30 days'") == 0
    job_id = int(triggered.stdout.rsplit("job", 1)[1])
    assert cleanup_app.app.AsyncResult(job_id).get(timeout=1) == STALE

    # The stored rule is the nightly one: next fire at 03:00 in Paris, whatever the season.
    [line] = [ln for ln in listed.stdout.splitlines() if ln.startswith("delete_stale_sessions")]
    assert "0 3 * * * Europe/Paris" in line and " active " in line
    next_fire = dt.datetime.fromisoformat(" ".join(line.split()[-2:]))
    paris = next_fire.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (3, 0)
    assert dt.timedelta(0) < next_fire - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=25)


@pytest.mark.timeout(30)
def test_the_scheduler_fires_the_schedule_on_its_own(dsn, load_example, tmp_path):
    cleanup_app = load_example("nightly_cleanup", "cleanup_app")
    cleanup_app.seed(dsn, STALE, FRESH)
    log = tmp_path / "worker.log"
    # The same code with a per-second rule (six fields, seconds last), so the leader
    # fires it within the test instead of at 03:00.
    worker = example_pgq(dsn, "nightly_cleanup", "worker", "--app", "cleanup_app:app",
                         "--beat", env={"CLEANUP_CRON": "* * * * * *"}, stderr=log.open("w"))
    try:
        assert wait_for(lambda: _succeeded(dsn) >= 2, timeout=10, interval=0.05), \
            log.read_text()
    finally:
        assert stop(worker) == 0
    assert count(dsn, "SELECT count(*) FROM cleanup_sessions") == FRESH
    assert count(dsn, "SELECT count(*) FROM pgqueue.schedule_ticks "
                      "WHERE schedule = 'delete_stale_sessions'") >= 2
    assert "scheduler: leading" in log.read_text()
    with psycopg.connect(dsn) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM pgqueue.jobs "
                                          "WHERE state = 'succeeded' ORDER BY id")]
    results = [cleanup_app.app.AsyncResult(i).get(timeout=1) for i in ids]
    assert results[0] == STALE and set(results[1:]) <= {0}  # later runs find nothing left
