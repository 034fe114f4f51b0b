"""What one job costs Postgres in pgqueue's drain: WAL bytes, row writes, index entries.

    python benchmarks/wal_per_job.py [--jobs 20000] [--dsn DSN] [--pool asyncio|threads]
        [--procs 2] [--concurrency 500] [--batch-size 500] [--task noop_async]

Runs the drain workload once, exactly as ``benchmarks/run.py`` does (fresh database
pgq_bench_pgqueue_wal, jobs pre-enqueued, ``pgq worker`` processes started, a CHECKPOINT just
before them so that every page the drain touches costs one full-page image), then prints
per job:

- WAL bytes: ``pg_current_wal_lsn()`` over the drain (the whole server's WAL);
- rows inserted, updated (HOT and non-HOT) and deleted, per table (``pg_stat_user_tables``);
- the indexes of ``pgqueue.jobs`` with their predicates: a non-HOT update adds an entry to
  every index whose predicate the new row version satisfies, a HOT one to none;
- with ``pg_walinspect`` (PostgreSQL 15+, superuser): the drain's WAL records by relation
  and record type (B-tree inserts per index, heap updates, full-page images), so the
  bytes can be traced to the table or index that wrote them;
- with ``pg_stat_statements`` loaded (``shared_preload_libraries``): the statements the
  workers ran, calls and rows per job; otherwise the transactions per job.

About 20 s for 20,000 jobs on 2 cores. pgqueue only; the interpreter is pgqueue's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "adapters"))

import common
import harness
import psycopg
from pgqueue_bench import PgqueueAdapter

# The drain window's WAL records of this database, by relation and record type. A record
# is attributed to its first block's relation; records with none (commits) to "-".
WAL_BY_RELATION = """
WITH r AS (
    SELECT resource_manager AS rm, record_type AS rt, record_length AS len,
           fpi_length AS fpi, regexp_match(block_ref, 'rel [0-9]+/([0-9]+)/([0-9]+)') AS m
    FROM pg_get_wal_records_info(%s, %s))
SELECT coalesce(pg_filenode_relation(0, m[2]::oid)::text, CASE WHEN m IS NULL THEN '-'
                ELSE 'filenode ' || m[2] END) AS rel,
       rm, rt, count(*), sum(len)::bigint, sum(fpi)::bigint
FROM r
WHERE m IS NULL OR m[1]::oid = (SELECT oid FROM pg_database WHERE datname = current_database())
GROUP BY 1, 2, 3 ORDER BY 5 DESC
"""

STATEMENTS = """
SELECT calls, rows, regexp_replace(query, '\\s+', ' ', 'g')
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY calls DESC
"""


class Measured(PgqueueAdapter):
    """pgqueue's adapter; resets pg_stat_statements just before the workers start."""

    system = "pgqueue-wal"  # its own database, pgq_bench_pgqueue_wal, beside run.py's
    statements = False

    def start_workers(self, workers: common.Workers, cfg: dict[str, Any],
                      out: Path | None, queues: list[str] | None = None) -> None:
        with psycopg.connect(self.db, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT pg_stat_statements_reset()")
                self.statements = True
            except psycopg.Error:  # not in shared_preload_libraries
                self.statements = False
        super().start_workers(workers, cfg, out, queues)


def print_tables(result: dict[str, Any], jobs: int) -> None:
    print("\nrows per job, by table (pg_stat_user_tables):")
    print(f"  {'table':<24} {'inserted':>9} {'updated':>9} {'HOT':>9} {'non-HOT':>9} "
          f"{'deleted':>9}")
    for table, d in sorted(result["table_writes"].items()):
        upd, hot = d["n_tup_upd"], d["n_tup_hot_upd"]
        print(f"  {table:<24} {d['n_tup_ins'] / jobs:>9.3f} {upd / jobs:>9.3f} "
              f"{hot / jobs:>9.3f} {(upd - hot) / jobs:>9.3f} {d['n_tup_del'] / jobs:>9.3f}")


def print_indexes(conn: psycopg.Connection[Any]) -> None:
    print("\nindexes on pgqueue.jobs (a non-HOT update writes an entry to each one whose "
          "predicate the new row version satisfies):")
    for name, definition in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'pgqueue' "
            "AND tablename = 'jobs' ORDER BY indexname"):
        using = definition.split(" USING ", 1)[-1]
        print(f"  {name:<28} {using}")


def print_wal(conn: psycopg.Connection[Any], lsn0: str, lsn1: str, jobs: int) -> None:
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        rows = conn.execute(WAL_BY_RELATION, (lsn0, lsn1)).fetchall()
    except psycopg.Error as exc:
        print(f"\nWAL records by relation: not available ({exc.__class__.__name__}: "
              f"{str(exc).strip().splitlines()[0]}); needs pg_walinspect (PostgreSQL 15+) "
              "and a superuser DSN")
        return
    print("\nWAL records per job by relation and record type (pg_walinspect; '-' = no "
          "relation, e.g. commits, of the whole server):")
    print(f"  {'relation':<34} {'record':<22} {'records':>8} {'bytes':>8} {'of it FPI':>9}")
    for rel, rm, rt, count, length, fpi in rows:
        if count / jobs < 0.001:
            continue
        print(f"  {rel:<34} {f'{rm}/{rt}':<22} {count / jobs:>8.3f} {length / jobs:>8.1f} "
              f"{fpi / jobs:>9.1f}")
    btree = sum(c for _, rm, rt, c, _, _ in rows
                if rm == "Btree" and rt in common.BTREE_INSERTS)
    print(f"  index entries written (B-tree leaf inserts and splits): {btree / jobs:.3f} per job")


def print_statements(conn: psycopg.Connection[Any], jobs: int, result: dict[str, Any]) -> None:
    rows = conn.execute(STATEMENTS).fetchall()
    print("\nstatements per job (pg_stat_statements, this database; includes the "
          "benchmark's own polling):")
    total = 0
    for calls, nrows, query in rows:
        total += calls
        if calls / jobs >= 0.0005:
            print(f"  {calls / jobs:>8.4f} calls  {nrows / max(calls, 1):>8.1f} rows/call  "
                  f"{query[:90]}")
    print(f"  all statements: {total / jobs:.4f} per job "
          f"(transactions: {result.get('round_trips_per_job', 0):.4f} per job)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=common.DEFAULT_JOBS["drain"])
    parser.add_argument("--dsn", default=common.DEFAULT_DSN)
    PgqueueAdapter.add_arguments(parser)
    parser.set_defaults(workload="drain", chunk=common.BATCH_CHUNK, prefill=None,
                        timeout=600.0)
    args = parser.parse_args()
    common.exit_on_sigterm()
    ad = Measured(args)
    cfg = ad.config()
    ad.setup()
    try:
        result = harness.run_drain(ad, args.jobs, cfg)
        jobs, writes = args.jobs, ad.writes
        assert writes is not None
        rate = result.get("jobs_per_s")
        print(f"pgqueue drain of {jobs:,} jobs: {ad.describe(cfg)}; "
              f"{f'{rate:,.0f}' if rate else 'n/a'} jobs/s")
        print(f"  WAL {result['wal_bytes_per_job']:,.0f} bytes per job "
              f"({result['wal_bytes']:,} over the drain, whole server, after a CHECKPOINT)")
        print(f"  CPU per job: worker {result['worker_cpu_ms_per_job']:.3f} ms, "
              f"Postgres {result['server_cpu_ms_per_job']:.3f} ms; transactions per job "
              f"{result.get('round_trips_per_job', 0):.4f}")
        print_tables(result, jobs)
        with psycopg.connect(ad.db, autocommit=True) as conn:
            print_indexes(conn)
            print_wal(conn, writes.lsn0, writes.lsn1, jobs)
            if ad.statements:
                print_statements(conn, jobs, result)
            else:
                print("\nstatements per job: pg_stat_statements is not loaded on this "
                      "server (add it to shared_preload_libraries and restart to see them); "
                      f"transactions per job: {result.get('round_trips_per_job', 0):.4f}")
    finally:
        ad.teardown()


if __name__ == "__main__":
    main()
