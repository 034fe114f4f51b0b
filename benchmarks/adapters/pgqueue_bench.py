"""pgqueue in the side-by-side benchmark suite (the adapter protocol: see benchmarks/run.py).

    python benchmarks/adapters/pgqueue_bench.py WORKLOAD [--jobs N] [--dsn DSN]
        [--procs P] [--concurrency C] [--pool threads|asyncio|processes] [--batch-size B]

Runs with pgqueue's own interpreter and uses only its public API and `pgq worker`
(as ``python -m pgqueue.cli worker``). Makes a fresh database pgq_bench_pgqueue, runs the
workload, stops its workers and prints one line of JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import harness

# ---- Worker configuration: the one place to tune. CLI flags override per run. -------------
# procs: worker OS processes; concurrency / pool / batch_size: `pgq worker` options;
# task: the task in pgqueue_tasks.py the workload enqueues (noop, noop_async, io, io_async).
WORKER: dict[str, dict[str, Any]] = {
    "drain": {"procs": 2, "concurrency": 500, "pool": "asyncio", "batch_size": 500,
              "task": "noop_async"},
    # plain functions on the threads pool, with the README's recommended settings
    "drain-sync": {"procs": 2, "concurrency": 500, "pool": "threads", "batch_size": 500,
                   "task": "noop"},
    "drain-io": {"procs": 2, "concurrency": 500, "pool": "asyncio", "batch_size": 500,
                 "task": "io_async"},
    "drain-io-sync": {"procs": 2, "concurrency": 500, "pool": "threads", "batch_size": 500,
                      "task": "io"},
    # one worker process serving every queue (and, for the ratio, serving one)
    "many-queues": {"procs": 1, "concurrency": 500, "pool": "asyncio", "batch_size": 500,
                    "task": "noop_async"},
    "latency": {"procs": 1, "concurrency": 10, "pool": "threads", "batch_size": 100,
                "task": "latency"},
}
WORKER["scale-finished"] = WORKER["scale-backlog"] = WORKER["scale-10m"] = WORKER["drain"]
PREFILL_CHUNK = 1_000_000  # rows per INSERT ... SELECT: one transaction each
POLL_INTERVAL = 5.0  # the default: LISTEN/NOTIFY wakes workers, polling is the fallback


class PgqueueAdapter(harness.PostgresAdapter):
    system = "pgqueue"
    WORKER: ClassVar[dict[str, dict[str, Any]]] = WORKER

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--pool", choices=("threads", "asyncio", "processes"))
        parser.add_argument("--batch-size", type=int)

    def describe(self, cfg: dict[str, Any]) -> str:
        return (f"{cfg['procs']} x `pgq worker --pool {cfg['pool']} --concurrency "
                f"{cfg['concurrency']} --batch-size {cfg['batch_size']}`; task "
                f"{cfg['task']}")

    def version(self) -> str:
        import pgqueue

        return pgqueue.__version__  # the distribution is pgqueue-tasks

    base_id = 0  # scale-finished: the prefilled rows' ids are <= this
    finish_table = "pgqueue.jobs"
    finish_column = "finished_at"

    def open(self) -> None:
        from pgqueue_tasks import app

        self.app = app
        app.configure(dsn=self.db)
        app.migrate()

    def close(self) -> None:
        self.app.close()

    def flush_stats(self) -> None:
        self.app.close()  # the pool opens again on the next enqueue

    def enqueue_one(self, task: str, n: int) -> None:
        self.app.tasks[task].delay(n)

    def enqueue_many(self, task: str, ns: range, queue: str | None = None) -> None:
        t = self.app.tasks[task]
        if queue is None:
            t.map([(i,) for i in ns])
        else:
            self.app.enqueue_many([t.signature((i,), queue=queue) for i in ns])

    def producer_note(self, batch: bool) -> str:
        return f"task.map() of {self.args.chunk} jobs" if batch else "task.delay()"

    def prefill(self, kind: str, rows: int) -> None:
        """Rows written in SQL (a million through the API would take a minute per run):
        finished jobs of the last week, or queued ones that sort ahead of the measured
        jobs. Then VACUUM ANALYZE, as autovacuum would have done on a table this old.
        Finished rows are history: they are written with triggers off
        (session_replication_role = replica: no NOTIFY for jobs nobody will run), in
        chunks of PREFILL_CHUNK rows, oldest first, so ids and finish times both grow."""
        import psycopg

        with psycopg.connect(self.db, autocommit=True) as conn:
            if kind == "finished":
                conn.execute("SET session_replication_role = replica")
                for part in common.chunks(rows, PREFILL_CHUNK):
                    conn.execute(
                        "INSERT INTO pgqueue.jobs (queue, task, args, kwargs, state, "
                        " attempts, created_at, run_at, started_at, finished_at) "
                        "SELECT 'default', 'noop', jsonb_build_array(g), '{}', "
                        " 'succeeded', 1, t, t, t, t + interval '2 ms' "
                        "FROM generate_series(%s::bigint, %s) g, "
                        " LATERAL (SELECT now() - interval '7 days' * (%s - g) / %s AS t) x",
                        (part.start + 1, part.stop, rows, rows))
                conn.execute("RESET session_replication_role")
            else:
                conn.execute(
                    "INSERT INTO pgqueue.jobs (queue, task, args, kwargs, run_at, created_at) "
                    "SELECT 'default', %s, jsonb_build_array(g), '{}', "
                    " now() - interval '1 hour', now() - interval '1 hour' "
                    "FROM generate_series(1, %s) g", (self.config()["task"], rows))
            conn.execute("VACUUM ANALYZE pgqueue.jobs")
            if kind == "finished":  # measure only the jobs enqueued after these
                self.base_id = conn.execute("SELECT max(id) FROM pgqueue.jobs").fetchone()[0]

    def start_workers(self, workers: common.Workers, cfg: dict[str, Any],
                      out: Path | None, queues: list[str] | None = None) -> None:
        env = {"PGQ_DSN": self.db, "PYTHONPATH": str(common.ADAPTERS)}
        if out is not None:
            env["BENCH_OUT"] = str(out)
        for _ in range(cfg["procs"]):
            workers.start([sys.executable, "-m", "pgqueue.cli", "worker",
                           "--app", "pgqueue_tasks:app", "--pool", cfg["pool"],
                           "--concurrency", str(cfg["concurrency"]),
                           "--batch-size", str(cfg["batch_size"]),
                           "--poll-interval", str(POLL_INTERVAL),
                           *(["--queues", ",".join(queues)] if queues else [])], env=env)

    def finish_where(self) -> str:
        # finished_at IS NOT NULL: read off jobs_finished_idx, so that polling a table
        # with a million-job backlog doesn't scan it ten times a second
        return (f"finished_at IS NOT NULL AND state = 'succeeded' "
                f"AND id > {int(self.base_id)}")


if __name__ == "__main__":
    harness.main(PgqueueAdapter, __doc__)
