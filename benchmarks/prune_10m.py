"""Pruning a big table while a worker drains a steady stream: does the worker stall?

    python benchmarks/prune_10m.py [--rows 10000000] [--dsn DSN] [--rate 100]
        [--batch 5000] [--pause 0.1] [--baseline 15]

Makes a fresh database pgq_bench_prune on the server of --dsn (without --dsn: a private
throwaway server from the ``pgserver`` binaries, removed afterwards), prefills ``--rows``
succeeded jobs that finished 8 to 15 days ago (past the default 7-day retention) in SQL,
one in ten with a stored result, and VACUUM ANALYZEs as autovacuum would have. Then one
`pgq worker` drains ``--rate`` small jobs a second, enqueued one at a time, for
``--baseline`` seconds before the prune, during the prune (the scheduler's own Pruner, in
this process), and a few seconds after.

Prints one JSON line: the prune's duration, rows/s, WAL written, its longest batch, and
the jobs' claim-to-start latency (started_at - run_at, both the database's clock)
p50/p99/max and the completions per second before vs during the prune.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "adapters"))

import common  # noqa: E402

from pgqueue.link import Link  # noqa: E402
from pgqueue.maintenance import Pruner  # noqa: E402

RETENTION = dt.timedelta(days=7)
TASK = "noop_async"


@contextlib.contextmanager
def server(dsn: str | None) -> Iterator[str]:
    """The DSN given, or a private throwaway server's."""
    if dsn:
        yield dsn
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # type: ignore[import-untyped]
    path = Path(tempfile.mkdtemp(prefix="pgq-prune-bench-"))
    try:
        srv = pgserver.get_server(path / "data", cleanup_mode="stop")
        yield srv.get_uri()
    finally:
        with contextlib.suppress(Exception):
            srv.cleanup()
        shutil.rmtree(path, ignore_errors=True)


def prefill(db: str, rows: int) -> int:
    """``rows`` finished jobs, 8 to 15 days old; returns the highest id among them."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, kwargs, state, attempts, "
            " created_at, run_at, started_at, finished_at) "
            "SELECT 'default', 'noop', jsonb_build_array(g), '{}', 'succeeded', 1, "
            " t, t, t, t + interval '2 ms' "
            "FROM generate_series(1, %s) g, "
            " LATERAL (SELECT now() - interval '15 days' + interval '7 days' * g / %s AS t) x",
            (rows, rows))
        conn.execute("INSERT INTO pgqueue.job_results (job_id, value) "
                     "SELECT id, jsonb_build_object('n', id) FROM pgqueue.jobs WHERE id % 10 = 0")
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
        conn.execute("VACUUM ANALYZE pgqueue.job_results")
        # Flush the prefill now, not during the baseline (one measured run's baseline
        # p99 was a 2 s checkpoint); needs superuser or pg_checkpoint, else skipped.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
        return int(conn.execute("SELECT max(id) FROM pgqueue.jobs").fetchone()[0])  # type: ignore[index]


def produce(db: str, rate: float) -> None:
    """The producer process (``--produce``): one job at a time at ``rate`` a second until
    SIGTERM. A process of its own, so that the pruner's client work in this one doesn't
    slow the stream it measures."""
    from pgqueue_tasks import app

    app.configure(dsn=db)
    t0, sent = time.monotonic(), 0
    while True:
        time.sleep(common.pace(t0, sent, rate))
        app.tasks[TASK].delay(sent)
        sent += 1


def db_now(db: str) -> dt.datetime:
    return common.scalar(db, "SELECT now()")  # type: ignore[no-any-return]


def window(db: str, base_id: int, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Latency of the jobs enqueued in [start, end), and completions per second in it."""
    with psycopg.connect(db, autocommit=True) as conn:
        lat = [float(r[0]) for r in conn.execute(
            "SELECT extract(epoch FROM started_at - run_at) * 1000 FROM pgqueue.jobs "
            "WHERE id > %s AND run_at >= %s AND run_at < %s AND started_at IS NOT NULL",
            (base_id, start, end))]
        done = conn.execute(
            "SELECT count(*) FROM pgqueue.jobs WHERE id > %s AND finished_at >= %s "
            "AND finished_at < %s", (base_id, start, end)).fetchone()[0]  # type: ignore[index]
    seconds = (end - start).total_seconds()
    if not lat:
        return {"seconds": seconds, "jobs": 0}
    return {"seconds": round(seconds, 1), "jobs": len(lat),
            "p50_ms": round(common.percentile(lat, 50), 1),
            "p99_ms": round(common.percentile(lat, 99), 1), "max_ms": round(max(lat), 1),
            "done_per_s": round(done / seconds, 1), "done_per_enqueued": round(done / len(lat), 3)}


def run(args: argparse.Namespace, maintenance: str) -> dict[str, Any]:
    db = common.recreate_database(maintenance, "prune")
    from pgqueue_tasks import app  # the tasks the worker runs

    app.configure(dsn=db)
    app.migrate()
    t = time.monotonic()
    base_id = prefill(db, args.rows)
    prefill_s = time.monotonic() - t
    workers = common.Workers("pgqueue", "prune")
    env = {"PGQ_DSN": db, "PYTHONPATH": str(HERE / "adapters")}
    workers.start([sys.executable, "-m", "pgqueue.cli", "worker", "--app", "pgqueue_tasks:app",
                   "--pool", "asyncio", "--concurrency", "20", "--batch-size", "20"], env=env)
    producers = common.Workers("pgqueue", "prune-producer")
    try:
        producers.start([sys.executable, __file__, "--produce", db, "--rate", str(args.rate)])
        time.sleep(2)  # warm-up: connections made, first claims done
        t_base = db_now(db)
        time.sleep(args.baseline)
        workers.check_alive()
        wal0 = common.scalar(db, "SELECT pg_current_wal_lsn()")
        t_prune = db_now(db)
        pruner = Pruner(Link(db, "pruner"), "pgqueue", RETENTION, batch=args.batch,
                        pause=args.pause)
        t = time.monotonic()
        pruned = asyncio.run(_prune(pruner))
        prune_s = time.monotonic() - t
        t_after = db_now(db)
        wal = common.scalar(db, f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{wal0}')")
        time.sleep(3)
        workers.check_alive()
        producers.stop()
        common.wait_until(lambda: common.scalar(
            db, f"SELECT count(*) FROM pgqueue.jobs WHERE id > {base_id} "
                "AND finished_at IS NULL") == 0, 60, "the stream to drain")
        left = common.scalar(db, f"SELECT count(*) FROM pgqueue.jobs WHERE id <= {base_id}")
    finally:
        producers.stop()
        workers.stop()
        app.close()
    before, during = window(db, base_id, t_base, t_prune), window(db, base_id, t_prune, t_after)
    common.drop_database(maintenance, "prune")
    return {
        "rows": args.rows, "batch": args.batch, "pause": args.pause, "rate": args.rate,
        "prefill_s": round(prefill_s, 1), "pruned": pruned["jobs"], "left": left,
        "prune_s": round(prune_s, 1), "rows_per_s": round(pruned["jobs"] / prune_s),
        "wal_mb": round(float(wal) / 2**20), "batches": len(pruner.batches),
        "batch_max_ms": round(max(pruner.batches) * 1000, 1),
        "batch_p50_ms": round(common.percentile(pruner.batches, 50) * 1000, 1),
        "before": before, "during": during,
        "p99_ratio": round(during["p99_ms"] / before["p99_ms"], 2)
        if during.get("p99_ms") and before.get("p99_ms") else None,
        "throughput_ratio": round(during["done_per_s"] / before["done_per_s"], 2)
        if during.get("done_per_s") and before.get("done_per_s") else None,
    }


async def _prune(pruner: Pruner) -> dict[str, int]:
    try:
        return await pruner.run_once()
    finally:
        await pruner.link.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=10_000_000,
                        help="finished jobs past the retention to prefill (default 10,000,000)")
    parser.add_argument("--dsn", default=os.environ.get("PGQ_BENCH_DSN"),
                        help="a maintenance DSN on the server (default: a private server)")
    parser.add_argument("--rate", type=float, default=100.0, help="jobs enqueued a second")
    parser.add_argument("--batch", type=int, default=Pruner.__init__.__defaults__[0],  # type: ignore[index]
                        help="rows per prune batch (default: the Pruner's)")
    parser.add_argument("--pause", type=float, default=Pruner.__init__.__defaults__[1],  # type: ignore[index]
                        help="seconds the pruner rests between batches (default: the Pruner's)")
    parser.add_argument("--baseline", type=float, default=15.0,
                        help="seconds of stream measured before the prune")
    parser.add_argument("--produce", metavar="DSN", help=argparse.SUPPRESS)
    args = parser.parse_args()
    common.exit_on_sigterm()
    if args.produce:
        return produce(args.produce, args.rate)
    with server(args.dsn) as maintenance:
        print(json.dumps(run(args, maintenance)), flush=True)


if __name__ == "__main__":
    main()
