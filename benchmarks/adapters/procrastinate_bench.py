"""procrastinate in the side-by-side benchmark suite (run with benchmarks/.venv-peers).

    python benchmarks/adapters/procrastinate_bench.py WORKLOAD [--jobs N] [--dsn DSN]
        [--procs P] [--concurrency C] [--task noop|noop_sync|io|io_sync]

Fresh database pgq_bench_procrastinate with procrastinate's schema; the producer uses
procrastinate's sync API (``task.defer`` / ``task.batch_defer``); workers are
``procrastinate worker`` processes. Finished jobs are read from procrastinate's own
tables: ``procrastinate_jobs.status`` and the ``succeeded`` rows of ``procrastinate_events``.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import harness

# ---- Worker configuration (CLI flags override). Tasks are in procrastinate_tasks.py. -------
# Async tasks run on the worker's event loop; sync ones go to a thread via asgiref, whose
# default executor is small, so async is procrastinate's fast path for both workloads.
WORKER: dict[str, dict[str, Any]] = {
    "drain": {"procs": 2, "concurrency": 50, "task": "noop"},
    "drain-sync": {"procs": 2, "concurrency": 50, "task": "noop_sync"},
    "drain-io": {"procs": 2, "concurrency": 100, "task": "io"},
    "drain-io-sync": {"procs": 2, "concurrency": 100, "task": "io_sync"},
    "many-queues": {"procs": 1, "concurrency": 50, "task": "noop"},
    "latency": {"procs": 1, "concurrency": 10, "task": "latency"},
}


class ProcrastinateAdapter(harness.PostgresAdapter):
    system = "procrastinate"
    WORKER: ClassVar[dict[str, dict[str, Any]]] = WORKER

    def describe(self, cfg: dict[str, Any]) -> str:
        return (f"{cfg['procs']} x `procrastinate worker --concurrency {cfg['concurrency']}`"
                f" (listen/notify on, delete-jobs never); "
                f"{'sync' if cfg['task'].endswith('_sync') else 'async'} task {cfg['task']}")

    def version(self) -> str:
        return version("procrastinate")

    finish_table = "procrastinate_events"
    finish_column = "at"
    finish_filter = "type = 'succeeded'"

    def open(self) -> None:
        os.environ["BENCH_DSN"] = self.db
        from procrastinate_tasks import app

        self.app = app
        app.open()
        app.schema_manager.apply_schema()

    def close(self) -> None:
        self.app.close()

    def flush_stats(self) -> None:
        self.app.close()
        self.app.open()

    def _task(self, name: str) -> Any:
        return self.app.tasks[name]

    def enqueue_one(self, task: str, n: int) -> None:
        self._task(task).defer(n=n)

    def enqueue_many(self, task: str, ns: range, queue: str | None = None) -> None:
        t = self._task(task)
        deferrer = t.configure(queue=queue) if queue else t
        deferrer.batch_defer(*({"n": i} for i in ns))

    def producer_note(self, batch: bool) -> str:
        return (f"task.batch_defer() of {self.args.chunk} jobs" if batch
                else "task.defer() (sync connector)")

    def start_workers(self, workers: common.Workers, cfg: dict[str, Any],
                      out: Path | None, queues: list[str] | None = None) -> None:
        env = {"BENCH_DSN": self.db, "PYTHONPATH": str(common.ADAPTERS)}
        if out is not None:
            env["BENCH_OUT"] = str(out)
        for i in range(cfg["procs"]):
            workers.start([sys.executable, "-m", "procrastinate",
                           "--app=procrastinate_tasks.app", "worker",
                           f"--name=bench{i}", f"--concurrency={cfg['concurrency']}",
                           *([f"--queues={','.join(queues)}"] if queues else [])],
                          env=env)

    def finished(self, out: common.LineFile | None) -> int:
        # counted off the jobs table; the finish times come from the events table
        return int(self.poll.scalar(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"))


if __name__ == "__main__":
    harness.main(ProcrastinateAdapter, __doc__)
