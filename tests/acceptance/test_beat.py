"""Real `pgq beat` processes: three at once fire each per-second tick exactly once, and
when the leader is SIGKILLed another takes over without missing or doubling a tick."""

from __future__ import annotations

import datetime as dt
import itertools
import signal
import statistics
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import pgq, wait_for


def _beats(dsn: str, tmp_path: Path, n: int) -> list[tuple[subprocess.Popen[str], Path]]:
    procs = []
    for i in range(n):
        log = tmp_path / f"beat{i}.log"
        procs.append((pgq(dsn, "beat", "--app", "beat_app:app", stderr=log.open("w")), log))
    return procs


def _leading(procs: list[tuple[subprocess.Popen[str], Path]]) -> list[int]:
    return [i for i, (p, log) in enumerate(procs)
            if p.poll() is None and log.read_text().count("scheduler: leading")
            > log.read_text().count("lost the lead")]


def _ticks(dsn: str) -> list[dt.datetime]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT t.fire_at FROM pgqueue.schedule_ticks t "
            "JOIN pgqueue.jobs j ON j.id = t.job_id ORDER BY t.fire_at")]


def _assert_every_second_once(ticks: list[dt.datetime]) -> None:
    assert len(ticks) == len(set(ticks)), "a tick was enqueued twice"
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ticks)]
    assert all(g == 1.0 for g in gaps), f"missed ticks: gaps {sorted(set(gaps))}"


def _stop(procs: list[tuple[subprocess.Popen[str], Path]]) -> list[int | None]:
    for p, _ in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return [p.wait(20) for p, _ in procs]


@pytest.mark.timeout(90)
def test_three_schedulers_fire_each_second_exactly_once(dsn, tmp_path):
    procs = _beats(dsn, tmp_path, 3)
    try:
        assert wait_for(lambda: len(_ticks(dsn)) >= 1, timeout=20, interval=0.2)
        time.sleep(21)
    finally:
        codes = _stop(procs)
    assert codes == [0, 0, 0]
    ticks = _ticks(dsn)
    print(f"three schedulers, {len(ticks)} ticks over "
          f"{(ticks[-1] - ticks[0]).total_seconds():.0f} s, jobs per tick: 1")
    assert len(ticks) >= 20
    _assert_every_second_once(ticks)
    with psycopg.connect(dsn) as conn:
        jobs = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
    assert jobs is not None and jobs[0] == len(ticks)
    assert sum(log.read_text().count("scheduler: leading") for _, log in procs) == 1


@pytest.mark.timeout(90)
def test_leader_killed_another_takes_over_without_missing_or_doubling(dsn, tmp_path):
    procs = _beats(dsn, tmp_path, 3)
    failovers = []
    try:
        for _ in range(2):
            assert wait_for(lambda: len(_leading(procs)) == 1, timeout=20, interval=0.05)
            time.sleep(2)
            (leader,) = _leading(procs)
            killed_at = time.monotonic()
            procs[leader][0].send_signal(signal.SIGKILL)
            procs[leader][0].wait(5)
            assert wait_for(lambda: len(_leading(procs)) == 1, timeout=10, interval=0.02)
            failovers.append(time.monotonic() - killed_at)
            procs.append((pgq(dsn, "beat", "--app", "beat_app:app",
                              stderr=(tmp_path / f"beat{len(procs)}.log").open("w")),
                          tmp_path / f"beat{len(procs)}.log"))
        time.sleep(2)
    finally:
        _stop(procs)
    print(f"leader fail-over after SIGKILL: p50 {statistics.median(failovers):.2f} s, "
          f"max {max(failovers):.2f} s")
    assert max(failovers) < 3.0
    _assert_every_second_once(_ticks(dsn))  # catch_up="all": the gap was filled in


@pytest.mark.timeout(90)
def test_hung_leader_loses_the_lead_and_cannot_double_ticks(dsn, tmp_path):
    procs = _beats(dsn, tmp_path, 2)
    try:
        assert wait_for(lambda: len(_leading(procs)) == 1, timeout=20, interval=0.05)
        (leader,) = _leading(procs)
        stopped_at = time.monotonic()
        procs[leader][0].send_signal(signal.SIGSTOP)  # hung, its connection still open
        follower = 1 - leader
        assert wait_for(lambda: "scheduler: leading" in procs[follower][1].read_text(),
                        timeout=20, interval=0.05)
        took_over = time.monotonic() - stopped_at
        procs[leader][0].send_signal(signal.SIGCONT)
        assert wait_for(lambda: "lost the lead" in procs[leader][1].read_text(), timeout=10)
        time.sleep(3)
    finally:
        _stop(procs)
    print(f"hung leader replaced after {took_over:.1f} s")
    assert took_over < 15  # idle_session_timeout (10 s) plus a follower's poll
    _assert_every_second_once(_ticks(dsn))
