"""Core numbers on this machine: enqueue->start latency on an idle worker, and drain time.

    python benchmarks/core.py [--dsn postgresql://postgres@127.0.0.1/postgres]

Creates (and drops) a database ``pgq_bench`` on that server. Times come from the
database's clock (created_at, started_at, finished_at), not the script's.
Not a CI test: numbers depend on the machine. The side-by-side suite against
other queues is separate (see the performance issue).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def worker(dsn: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PGQ_DSN": dsn, "PYTHONPATH": str(HERE)}
    return subprocess.Popen([sys.executable, "-m", "pgqueue.cli", "worker", "--app",
                             "bench_tasks:app", *args], env=env, stderr=subprocess.DEVNULL)


def scalar(dsn: str, query: str) -> float:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def wait_until(dsn: str, query: str, target: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while scalar(dsn, query) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(query)
        time.sleep(0.05)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def latency(dsn: str, n: int = 300, rate: float = 50.0) -> dict[str, float]:
    from bench_tasks import app

    app.configure(dsn=dsn)
    w = worker(dsn, "--poll-interval", "10")
    try:
        wait_until(dsn, "SELECT count(*) FROM pgqueue.worker_status WHERE status='up'", 1, 30)
        time.sleep(1)
        for i in range(n):
            app.tasks["noop"].delay(i)
            time.sleep(1 / rate)
        wait_until(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state='succeeded'", n, 60)
    finally:
        w.send_signal(signal.SIGTERM)
        w.wait(30)
    with psycopg.connect(dsn) as conn:
        lat = [r[0] for r in conn.execute(
            "SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 "
            "FROM pgqueue.jobs")]
    app.close()
    return {"p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99), "max": max(lat)}


def drain(dsn: str, n: int, concurrency: int) -> dict[str, float]:
    from bench_tasks import app

    app.configure(dsn=dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.job_results, pgqueue.job_errors")
    for start in range(0, n, 5000):
        app.tasks["noop"].map([(i,) for i in range(start, min(n, start + 5000))])
    t0 = time.monotonic()
    w = worker(dsn, "--concurrency", str(concurrency))
    try:
        wait_until(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state='succeeded'", n, 600)
        wall = time.monotonic() - t0
    finally:
        w.send_signal(signal.SIGTERM)
        w.wait(30)
    span = scalar(dsn, "SELECT extract(epoch FROM max(finished_at) - min(finished_at)) "
                       "FROM pgqueue.jobs")
    return {"seconds": span, "jobs_per_s": n / span, "wall_with_startup": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get(
        "PGQ_BENCH_DSN", "postgresql://postgres@127.0.0.1/postgres"))
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS pgq_bench")
        conn.execute("CREATE DATABASE pgq_bench")
    dsn = make_conninfo(args.dsn, dbname="pgq_bench")
    from pgqueue.migrate import migrate_dsn

    migrate_dsn(dsn, "pgqueue")
    lat = latency(dsn)
    print("latency enqueue->start (ms, idle worker, 300 jobs at 50/s): "
          + ", ".join(f"{k} {v:.1f}" for k, v in lat.items()))
    for c in (10, 50):
        d = drain(dsn, args.jobs, c)
        print(f"drain {args.jobs} no-op jobs, 1 worker process, concurrency {c}: "
              f"{d['seconds']:.2f} s first->last finish ({d['jobs_per_s']:.0f} jobs/s), "
              f"{d['wall_with_startup']:.2f} s including worker start-up")
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE pgq_bench WITH (FORCE)")


if __name__ == "__main__":
    main()
