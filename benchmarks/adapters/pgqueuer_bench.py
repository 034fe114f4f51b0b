"""pgqueuer in the side-by-side benchmark suite (run with benchmarks/.venv-peers).

    python benchmarks/adapters/pgqueuer_bench.py WORKLOAD [--jobs N] [--dsn DSN]
        [--procs P] [--batch-size B] [--concurrency C]

Fresh database pgq_bench_pgqueuer with `pgq install` (durability "durable", the default:
all tables logged). The producer awaits ``Queries.enqueue`` on one asyncpg connection
(lists of entrypoints/payloads/priorities for a batch). Workers are processes running
``pgqueuer.run`` on uvloop, exactly what ``pgq run`` does (pgqueuer_worker.py says why not
the CLI itself). pgqueuer deletes a finished job from its queue table and writes a row to
``pgqueuer_log`` in the same statement: finished jobs are counted there (status
'successful'), and its ``created`` times give first and last.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import uvloop
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import harness

# ---- Worker configuration (CLI flags override). The factory is pgqueuer_tasks:main. -------
# batch_size: `pgq run --batch-size` (jobs dequeued per round trip, and the size at which the
# status-log buffer flushes); concurrency: `--max-concurrent-tasks` (0 = unlimited; when set
# it must be at least twice batch_size).
WORKER: dict[str, dict[str, Any]] = {
    "drain": {"procs": 2, "batch_size": 1000, "concurrency": 0, "task": "noop"},
    # pgqueuer 1.6 refuses plain functions as entrypoints; its error message says to wrap
    # them: `async def entry(job): await asyncio.to_thread(fn, job)`. These do that.
    "drain-sync": {"procs": 2, "batch_size": 1000, "concurrency": 0, "task": "noop_thread"},
    "drain-io": {"procs": 2, "batch_size": 500, "concurrency": 0, "task": "io"},
    "drain-io-sync": {"procs": 2, "batch_size": 500, "concurrency": 0, "task": "io_thread"},
    # pgqueuer has no queues apart from entrypoints: a worker dequeues the entrypoints it
    # registered, so 100 queues are 100 entrypoints (noop_q0 ... noop_q99) in one worker.
    "many-queues": {"procs": 1, "batch_size": 1000, "concurrency": 0, "task": "noop"},
    "latency": {"procs": 1, "batch_size": 10, "concurrency": 0, "task": "latency"},
}


class PgqueuerAdapter(harness.PostgresAdapter):
    system = "pgqueuer"
    WORKER: ClassVar[dict[str, dict[str, Any]]] = WORKER

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--batch-size", type=int)

    def describe(self, cfg: dict[str, Any]) -> str:
        limit = (f" --max-concurrent-tasks {cfg['concurrency']}" if cfg["concurrency"]
                 else "")
        kind = ("async entrypoint around asyncio.to_thread(plain function)"
                if cfg["task"].endswith("_thread") else "async entrypoint")
        return (f"{cfg['procs']} x `pgq run`-equivalent `--batch-size {cfg['batch_size']}{limit}` "
                f"(asyncpg, uvloop); {kind} {cfg['task']}")

    def version(self) -> str:
        return version("pgqueuer")

    # pgqueuer deletes a finished job and logs it here in the same statement
    finish_table = "pgqueuer_log"
    finish_column = "created"
    finish_filter = "status = 'successful'"

    def open(self) -> None:
        self.url = common.dsn_url(self.db)
        subprocess.run([sys.executable, "-m", "pgqueuer", "--pg-dsn", self.url, "install"],
                       check=True, capture_output=True)
        self.runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        self.conn = self.runner.run(asyncpg.connect(self.url))
        self.queries = Queries(AsyncpgDriver(self.conn))

    def close(self) -> None:
        self.runner.run(self.conn.close())
        self.runner.close()

    def flush_stats(self) -> None:
        self.runner.run(self.conn.close())
        self.conn = self.runner.run(asyncpg.connect(self.url))
        self.queries = Queries(AsyncpgDriver(self.conn))

    def enqueue_one(self, task: str, n: int) -> None:
        self.runner.run(self.queries.enqueue(task, str(n).encode()))

    def enqueue_many(self, task: str, ns: range, queue: str | None = None) -> None:
        self.runner.run(self._enqueue_many(f"{task}_{queue}" if queue else task, ns))

    async def _enqueue_many(self, task: str, ns: range) -> None:
        await self.queries.enqueue([task] * len(ns), [str(i).encode() for i in ns],
                                   [0] * len(ns))

    def producer_note(self, batch: bool) -> str:
        return (f"await Queries.enqueue(lists of {self.args.chunk})" if batch
                else "await Queries.enqueue(entrypoint, payload)")

    # The timed loops run as one coroutine each, so no per-call event-loop entry is timed.
    def timed_enqueue_single(self, n: int) -> float:
        async def loop() -> float:
            await self.queries.enqueue("noop", b"-1")
            t0 = time.perf_counter()
            for i in range(n):
                await self.queries.enqueue("noop", str(i).encode())
            return time.perf_counter() - t0

        return self.runner.run(loop())

    def timed_enqueue_batch(self, n: int, chunk: int) -> float:
        async def loop() -> float:
            await self.queries.enqueue("noop", b"-1")
            t0 = time.perf_counter()
            for part in common.chunks(n, chunk):
                await self._enqueue_many("noop", part)
            return time.perf_counter() - t0

        return self.runner.run(loop())

    def latency_loop(self, n: int) -> dict[int, float]:
        async def loop() -> dict[int, float]:
            enqueued: dict[int, float] = {}
            t0 = time.monotonic()
            for i in range(n):
                await asyncio.sleep(common.pace(t0, i, common.LATENCY_RATE))
                enqueued[i] = time.time()
                await self.queries.enqueue("latency", str(i).encode())
            return enqueued

        return self.runner.run(loop())

    def note(self) -> str:
        if self.workload in ("drain-sync", "drain-io-sync"):
            return ("pgqueuer 1.6 takes no plain-function entrypoints; each job runs its "
                    "plain function through asyncio.to_thread (the default executor: "
                    "min(32, cores + 4) threads), as its error message recommends")
        if self.workload == "many-queues":
            return ("pgqueuer's queues are its entrypoints: the worker registers noop_q0 "
                    "... noop_q99 and the jobs are spread over them")
        if self.workload in ("drain", "drain-io", "latency"):
            return ("workers run pgqueuer.run() via pgqueuer_worker.py: `pgq run` of "
                    "pgqueuer 1.6.0 fails at start under typer 0.29 (--log-level parsing)")
        return ""

    def start_workers(self, workers: common.Workers, cfg: dict[str, Any],
                      out: Path | None, queues: list[str] | None = None) -> None:
        env = {"BENCH_DSN": self.url, "PYTHONPATH": str(common.ADAPTERS)}
        if queues:
            env["BENCH_QUEUES"] = ",".join(queues)
        if out is not None:
            env["BENCH_OUT"] = str(out)
        argv = [sys.executable, str(common.ADAPTERS / "pgqueuer_worker.py"),
                "--batch-size", str(cfg["batch_size"])]
        if cfg["concurrency"]:
            argv += ["--max-concurrent-tasks", str(cfg["concurrency"])]
        for _ in range(cfg["procs"]):
            workers.start(argv, env=env)


if __name__ == "__main__":
    harness.main(PgqueuerAdapter, __doc__)
