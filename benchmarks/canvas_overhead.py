"""What a workflow costs: 10,000 plain jobs against a 10,000-member group and chord.

    python benchmarks/canvas_overhead.py [--dsn DSN] [--jobs 10000] [--runs 3]
        [--procs 2] [--concurrency 500] [--pool asyncio] [--batch-size 500]

Each run, per kind (plain, group, chord), on a fresh database: times the enqueue
(plain jobs both as ``enqueue_many`` of signatures and as ``task.map``), then
starts the workers and drains. Reported: enqueue jobs/s; drain jobs/s from the
first to the last finished job as the database recorded it (the chord's callback
not counted, its delay after the last member reported apart); and Postgres time
per job, the sum of pg_stat_statements' total_exec_time over the top-level
statements of the phase (lock waits included: a group's members are counted
under its row lock), divided by the jobs. A member's extra database time is the
group's figure minus the plain jobs'. Then, with the workers stopped, the same
number of jobs again, claimed and finished from this process a batch at a time
on one connection: the finish statement's own cost, with no lock waits.

pg_stat_statements must be preloaded: without --dsn a private server is started
from the system's binaries (``pg_config --bindir``, or PGQ_BENCH_PG_BIN) with it
preloaded, and removed at the end. The worker settings default to the drain
workload's (benchmarks/adapters/pgqueue_bench.py). Not a test: prints a table
and one JSON line per run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

import pgqueue

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

KINDS = ("plain", "group", "chord")
# The workers import the pgqueue this script imports (a checkout on PYTHONPATH, say),
# not whichever one is installed.
PACKAGE_ROOT = str(Path(pgqueue.__file__).resolve().parents[1])
# Statements by what they do, told apart by a fragment of their text.
CATEGORIES = (("finish", "AS o(id, lease, state"), ("claim", "candidates AS"),
              ("heartbeat", "alive AS"), ("enqueue", "INSERT INTO"))


# --------------------------------------------------------------------------- the server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_server() -> Iterator[str]:
    """A throwaway server with pg_stat_statements preloaded; yields its maintenance DSN."""
    bindir = Path(os.environ.get("PGQ_BENCH_PG_BIN") or subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    root = Path(tempfile.mkdtemp(prefix="pgq-canvas-bench-"))
    data = root / "data"
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as postgres
        as_owner = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    port = _free_port()
    options = (f"-p {port} -k {root} -c listen_addresses='' "
               "-c shared_preload_libraries=pg_stat_statements "
               "-c pg_stat_statements.track=all -c max_connections=200")

    def run(*argv: str) -> None:
        subprocess.run([*as_owner, *argv], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E",
            "UTF8")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
            str(root / "server.log"), "-w", "start")
        yield f"host={root} port={port} user=postgres dbname=postgres"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- measuring

def reset_statements(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")


def statement_ms(db: str) -> dict[str, float]:
    """Top-level execution time of this database's statements since the reset, in ms:
    the total, and per category."""
    with psycopg.connect(db, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query, total_exec_time FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND toplevel AND query NOT LIKE '%%pg_stat_statements%%'").fetchall()
    out = {"total": 0.0, **{name: 0.0 for name, _ in CATEGORIES}, "other": 0.0}
    for query, ms in rows:
        out["total"] += ms
        name = next((n for n, fragment in CATEGORIES if fragment in query), "other")
        out[name] += ms
    return out


def members_span(db: str, first_id: int, last_id: int) -> tuple[float, float]:
    """(first, last) finished_at of jobs first_id..last_id, epoch seconds."""
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM min(finished_at))::float8, "
            "extract(epoch FROM max(finished_at))::float8 FROM pgqueue.jobs "
            "WHERE id BETWEEN %s AND %s", (first_id, last_id)).fetchone()
    assert row is not None
    return float(row[0]), float(row[1])


def finished_at(db: str, job_id: int) -> float:
    return float(common.scalar(db, f"SELECT extract(epoch FROM finished_at)::float8 "
                                   f"FROM pgqueue.jobs WHERE id = {int(job_id)}"))


# --------------------------------------------------------------------------- one kind

def enqueue(app: Any, kind: str, n: int, asyncio_pool: bool) -> tuple[list[int], int | None,
                                                                        dict[str, float]]:
    """Enqueue n jobs of the kind; (member ids, callback id, {how: seconds})."""
    from pgqueue.canvas import chord, group

    member = app.tasks["ident_async" if asyncio_pool else "ident"]
    callback = app.tasks["count_async" if asyncio_pool else "count_values"]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if kind == "plain":
        ids = [r.id for r in app.enqueue_many([member.s(i) for i in range(n)])]
        timings["enqueue_many"] = time.perf_counter() - t0
        return ids, None, timings
    if kind == "group":
        g = group(member.s(i) for i in range(n)).delay()
        timings["group"] = time.perf_counter() - t0
        return [r.id for r in g.results], None, timings
    c = chord([member.s(i) for i in range(n)], callback.s()).delay()
    timings["chord"] = time.perf_counter() - t0
    return [r.id for r in c.parent.results], c.id, timings


def time_map(app: Any, n: int, asyncio_pool: bool) -> float:
    """Seconds for task.map() of n jobs (the fastest plain batch), rolled back."""
    member = app.tasks["ident_async" if asyncio_pool else "ident"]
    with psycopg.connect(app.dsn()) as conn:
        t0 = time.perf_counter()
        member.map([(i,) for i in range(n)], connection=conn)
        took = time.perf_counter() - t0
        conn.rollback()
    return took


def finish_alone(app: Any, kind: str, args: argparse.Namespace) -> dict[str, float]:
    """The finish statement alone, without workers or lock waits: the kind's jobs claimed
    and finished from here, a batch at a time on one connection, as a worker's recorder
    writes them. Database ms per job (pg_stat_statements), and round-trip ms per job."""
    from pgqueue import JobState, statements
    from pgqueue.client import run
    from pgqueue.statements import Finish

    enqueue(app, kind, args.jobs, args.pool == "asyncio")
    schema = app.settings.schema
    reset_statements(app.dsn())
    spent = 0.0
    done = 0
    with psycopg.connect(app.dsn(), autocommit=True) as conn:
        while True:
            jobs = run(conn, statements.claim(schema, 1, ["default"], args.batch_size, 600))
            if not jobs:
                break
            batch = [Finish(j.id, j.lease, JobState.SUCCEEDED, value_json=j.args_json[1:-1],
                            queue=j.queue)
                     for j in jobs]
            t0 = time.perf_counter()
            run(conn, statements.finish(schema, 1, batch))
            spent += time.perf_counter() - t0
            done += len(jobs)
    return {"jobs": done, "finish_db_ms": statement_ms(app.dsn())["finish"] / done,
            "finish_round_trip_ms": spent * 1000 / done}


def run_kind(server: str, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    from pgqueue_tasks import app  # benchmarks/adapters on the path

    db = common.recreate_database(server, "canvas")  # one name: the app's DSN stays
    app.configure(dsn=db)
    asyncio_pool = args.pool == "asyncio"
    workers = common.Workers("pgqueue", f"canvas-{kind}")  # log: benchmarks/.results/logs
    try:
        app.migrate()
        reset_statements(db)
        ids, callback, timings = enqueue(app, kind, args.jobs, asyncio_pool)
        enqueue_db = statement_ms(db)["total"]
        if kind == "plain":
            timings["map"] = time_map(app, args.jobs, asyncio_pool)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE pgqueue.jobs")
        reset_statements(db)
        env = {"PGQ_DSN": db, "PYTHONPATH": os.pathsep.join((str(common.ADAPTERS),
                                                              PACKAGE_ROOT))}
        t0 = time.monotonic()
        for _ in range(args.procs):
            workers.start([sys.executable, "-m", "pgqueue.cli", "worker", "--app",
                           "pgqueue_tasks:app", "--pool", args.pool, "--concurrency",
                           str(args.concurrency), "--batch-size", str(args.batch_size)],
                          env=env)
        total = len(ids) + (callback is not None)
        poll = common.Poller(db)
        try:
            common.wait_until(lambda: poll.scalar(
                "SELECT count(*) FROM pgqueue.jobs WHERE state = 'succeeded'") >= total,
                timeout=300, what=f"{total} jobs of the {kind}", interval=0.02)
        finally:
            poll.close()
        wall = time.monotonic() - t0
        drain_db = statement_ms(db)
        first, last = members_span(db, min(ids), max(ids))
        result: dict[str, Any] = {
            "kind": kind, "jobs": len(ids),
            "enqueue_s": timings, "enqueue_db_ms": enqueue_db,
            "drain_jobs_per_s": len(ids) / (last - first), "drain_wall_s": wall,
            "drain_db_ms": drain_db,
        }
        workers.stop()
        result["finish_alone"] = finish_alone(app, kind, args)
        if callback is not None:
            result["callback_after_last_member_ms"] = (finished_at(db, callback) - last) * 1000
            value = common.scalar(db, "SELECT value FROM pgqueue.job_results "
                                      f"WHERE job_id = {int(callback)}")
            assert value == args.jobs, f"the chord's callback counted {value} results"
        return result
    finally:
        workers.stop()
        app.close()
        common.drop_database(server, "canvas")


# --------------------------------------------------------------------------- report

def report(runs: list[dict[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    def med(kind: str, key: Any) -> float:
        return common.median([key(r[kind]) for r in runs])

    n = args.jobs
    plain_rate = med("plain", lambda r: r["drain_jobs_per_s"])
    plain_db = med("plain", lambda r: r["drain_db_ms"]["total"]) / n
    plain_finish = med("plain", lambda r: r["drain_db_ms"]["finish"]) / n
    print(f"\n{n:,} jobs per kind; workers: {args.procs} x `pgq worker --pool {args.pool} "
          f"--concurrency {args.concurrency} --batch-size {args.batch_size}`; "
          f"median of {len(runs)} run(s)\n")
    alone_plain = med("plain", lambda r: r["finish_alone"]["finish_db_ms"])
    print("| kind | drain jobs/s | ÷ plain | db ms/job (drain) | extra db ms/member | "
          "finish ms/job (drain) | finish alone ms/job | enqueue s | enqueue db ms/job |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        rate = med(kind, lambda r: r["drain_jobs_per_s"])
        db_ms = med(kind, lambda r: r["drain_db_ms"]["total"]) / n
        finish = med(kind, lambda r: r["drain_db_ms"]["finish"]) / n
        alone = med(kind, lambda r: r["finish_alone"]["finish_db_ms"])
        enq = med(kind, lambda r, k=kind: r["enqueue_s"]["enqueue_many" if k == "plain"
                                                        else k])
        enq_db = med(kind, lambda r: r["enqueue_db_ms"]) / n
        print(f"| {kind} | {rate:,.0f} | {rate / plain_rate:.2f}x | {db_ms:.4f} | "
              f"{db_ms - plain_db:+.4f} | {finish:.4f} ({finish - plain_finish:+.4f}) | "
              f"{alone:.4f} ({alone - alone_plain:+.4f}) | {enq:.3f} | {enq_db:.4f} |")
    per_s = {how: n / med(kind, lambda r, how=how: r["enqueue_s"][how])
             for kind, how in (("plain", "map"), ("plain", "enqueue_many"),
                               ("group", "group"), ("chord", "chord"))}
    after = med("chord", lambda r: r["callback_after_last_member_ms"])
    print("\nenqueue jobs/s: " + ", ".join(f"{how} {rate:,.0f}" for how, rate in per_s.items())
          + f"; the chord's callback finished {after:.0f} ms after its last member")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a server with pg_stat_statements preloaded "
                                      "(default: a private one)")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--pool", choices=("threads", "asyncio"), default="asyncio")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    sys.path.insert(0, str(common.ADAPTERS))
    common.exit_on_sigterm()
    with contextlib.ExitStack() as stack:
        server = args.dsn or stack.enter_context(private_server())
        if "pg_stat_statements" not in str(common.scalar(server,
                                                         "SHOW shared_preload_libraries")):
            sys.exit(f"{server}: pg_stat_statements is not in shared_preload_libraries; "
                     "leave out --dsn to have a private server started with it")
        print(common.postgres_version(server))
        runs = []
        for i in range(args.runs):
            runs.append({kind: run_kind(server, kind, args) for kind in KINDS})
            print(json.dumps({"run": i + 1, **runs[-1]}))
        report(runs, args)


if __name__ == "__main__":
    main()
