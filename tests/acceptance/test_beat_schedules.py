"""Real `pgq beat` processes and `pgq schedules` commands facing schedule rows edited by
SQL: a broken row is skipped and shown, the others fire every second, a fixed row fires
again; schedules the code dropped are deleted by name or by --prune-schedules."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.acceptance.test_beat import _assert_every_second_once, _ticks
from tests.conftest import pgq, pgq_run, stop_process, wait_for


def _sql(dsn: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _beat(dsn: str, log: Path, *options: str) -> subprocess.Popen[str]:
    return pgq(dsn, "beat", "--app", "beat_app:app", *options, stderr=log.open("w"))


def _column(dsn: str, column: str, name: str) -> object:
    rows = _sql(dsn, f"SELECT {column} FROM pgqueue.schedules WHERE name = %s", name)
    return rows[0][0] if rows else None


def _fired(dsn: str, name: str) -> int:
    rows = _sql(dsn, "SELECT count(*) FROM pgqueue.schedule_ticks t JOIN pgqueue.jobs j "
                     "ON j.id = t.job_id WHERE t.schedule = %s", name)
    return int(rows[0][0])  # type: ignore[call-overload]


@pytest.mark.timeout(90)
def test_beat_skips_broken_rows_keeps_firing_and_recovers(dsn, tmp_path):
    log = tmp_path / "beat.log"
    proc = _beat(dsn, log)
    try:
        assert wait_for(lambda: len(_ticks(dsn)) >= 1, timeout=20, interval=0.2)
        for name in ("mars", "args-object"):  # working rows, then broken by hand
            _sql(dsn, "INSERT INTO pgqueue.schedules (name, task, queue, every_seconds) "
                      "VALUES (%s, 'tick', 'default', 3600)", name)
        assert wait_for(lambda: _column(dsn, "next_fire_at", "mars") is not None
                        and _column(dsn, "next_fire_at", "args-object") is not None, 10)
        _sql(dsn, "UPDATE pgqueue.schedules SET every_seconds = NULL, cron = '0 * * * *', "
                  "tz = 'Mars/Olympus' WHERE name = 'mars'")
        _sql(dsn, "UPDATE pgqueue.schedules SET args = '{\"a\": 1}' WHERE name = 'args-object'")
        _sql(dsn, "INSERT INTO pgqueue.schedules (name, task, queue, cron, paused) "
                  "VALUES ('gibberish', 'tick', 'default', 'not a cron', true)")
        assert wait_for(lambda: _column(dsn, "error", "mars") is not None
                        and _column(dsn, "error", "args-object") is not None
                        and _column(dsn, "error", "gibberish") is not None, 10)
        time.sleep(3)  # several more ticks: still logged once
        listing = pgq_run(dsn, "schedules", "list")
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        below = {line.split()[0]: lines[i + 1] for i, line in enumerate(lines[:-1])
                 if not line.startswith(" ")}
        assert "! skipped since" in below["mars"]
        assert "unknown time zone 'Mars/Olympus'" in below["mars"]
        assert "args must be a JSON array" in below["args-object"]
        assert "invalid cron expression" in below["gibberish"]
        assert sum("! skipped" in line for line in lines) == 3
        _sql(dsn, "UPDATE pgqueue.schedules SET cron = NULL, every_seconds = 1, tz = 'UTC' "
                  "WHERE name = 'mars'")
        _sql(dsn, "UPDATE pgqueue.schedules SET args = '[]', every_seconds = 1 "
                  "WHERE name = 'args-object'")
        assert wait_for(lambda: _fired(dsn, "mars") >= 2 and _fired(dsn, "args-object") >= 1,
                        timeout=10, interval=0.2)
        assert _column(dsn, "error", "mars") is None
        assert _column(dsn, "error_at", "args-object") is None
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        code = stop_process(proc)
    assert code == 0
    text = log.read_text()
    for name in ("mars", "args-object", "gibberish"):
        assert text.count(f"skipping schedule {name!r}") == 1, text[-3000:]
    assert "'mars' is valid again" in text
    every_second = [r[0] for r in _sql(dsn, "SELECT fire_at FROM pgqueue.schedule_ticks "
                                            "WHERE schedule = 'every-second' ORDER BY 1")]
    assert len(every_second) >= 5
    _assert_every_second_once(every_second)  # type: ignore[arg-type]


def test_schedules_delete_by_name(dsn):
    synced = pgq_run(dsn, "schedules", "list", "--app", "beat_app:app")
    assert synced.returncode == 0 and "every-second" in synced.stdout, synced.stderr
    out = pgq_run(dsn, "schedules", "delete", "every-second")
    assert out.returncode == 0, out.stderr
    assert "schedule every-second deleted" in out.stdout
    assert _sql(dsn, "SELECT count(*) FROM pgqueue.schedules") == [(0,)]
    again = pgq_run(dsn, "schedules", "delete", "every-second")
    assert again.returncode == 1
    assert "no schedule named 'every-second'; nothing deleted" in again.stderr


@pytest.mark.timeout(90)
def test_beat_prunes_schedules_the_code_dropped_only_when_asked(dsn, tmp_path):
    _sql(dsn, "INSERT INTO pgqueue.schedules (name, task, queue, every_seconds) "
              "VALUES ('dropped-from-code', 'old_task', 'default', 3600)")
    plain = _beat(dsn, tmp_path / "plain.log")
    try:
        assert wait_for(lambda: len(_ticks(dsn)) >= 1, timeout=20, interval=0.2)
    finally:
        assert stop_process(plain) == 0
    assert _column(dsn, "name", "dropped-from-code") == "dropped-from-code"

    log = tmp_path / "prune.log"
    pruning = _beat(dsn, log, "--prune-schedules")
    try:
        assert wait_for(lambda: "scheduler: leading" in log.read_text(), timeout=20)
    finally:
        pruning.send_signal(signal.SIGTERM)
        assert pruning.wait(20) == 0
    assert [r[0] for r in _sql(dsn, "SELECT name FROM pgqueue.schedules")] == ["every-second"]
    assert "deleted 1 stored schedules this code doesn't declare" in log.read_text()
    assert "dropped-from-code" in log.read_text()
