"""Celery in the side-by-side benchmark suite, with Redis or RabbitMQ as the broker.

    python benchmarks/adapters/celery_bench.py WORKLOAD --broker redis|amqp [--jobs N]
        [--procs P] [--concurrency C] [--pool prefork|threads|solo] [--prefetch M]

Fresh state: Redis database 5 is flushed (FLUSHDB of that database only); on RabbitMQ only
the benchmark's own queue, ``pgq_bench``, is deleted. No result backend, results ignored.
Workers are ``celery worker`` processes with --without-gossip --without-mingle
--without-heartbeat. Celery records nothing about finished tasks without a result
backend, so drain completion is read from a file its ``task_postrun`` handler appends to
(see celery_tasks.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import harness

BROKERS = {
    "redis": "redis://127.0.0.1:6379/5",  # a database of its own: FLUSHDB touches only it
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}

# ---- Worker configuration (CLI flags override). Tasks are in celery_tasks.py. ---------------
# pool/concurrency: `celery worker -P/-c`; prefetch: --prefetch-multiplier (messages
# reserved per pool slot); procs: how many such worker processes.
WORKER: dict[str, dict[str, Any]] = {
    "drain": {"procs": 2, "pool": "solo", "concurrency": 1, "prefetch": 64, "task": "noop"},
    # plain functions on the threads pool (Celery's tasks are all plain functions)
    "drain-sync": {"procs": 2, "pool": "threads", "concurrency": 10, "prefetch": 64,
                   "task": "noop"},
    "drain-io": {"procs": 2, "pool": "threads", "concurrency": 20, "prefetch": 16,
                 "task": "io"},
    "many-queues": {"procs": 1, "pool": "solo", "concurrency": 1, "prefetch": 64,
                    "task": "noop"},
    "latency": {"procs": 1, "pool": "prefork", "concurrency": 2, "prefetch": 4,
                "task": "latency"},
}
WORKER["drain-io-sync"] = WORKER["drain-io"]  # drain-io already is time.sleep in threads
MANY = [f"q{i}" for i in range(common.MANY_QUEUES)]  # many-queues' queue names


class CeleryAdapter(harness.Adapter):
    system = "celery"
    WORKER: ClassVar[dict[str, dict[str, Any]]] = WORKER
    PRELOAD_CHUNK = 1_000
    drain_file = True

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.broker = args.broker
        self.url = BROKERS[args.broker]
        self.system = f"celery-{args.broker}"  # type: ignore[misc]
        self.server = "redis" if args.broker == "redis" else "rabbitmq"  # type: ignore[misc]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--broker", choices=tuple(BROKERS), required=True)
        parser.add_argument("--pool", choices=("prefork", "threads", "solo"))
        parser.add_argument("--prefetch", type=int, help="--prefetch-multiplier")
        parser.add_argument("--batch-mode", choices=("producer", "group"), default="producer",
                            help="enqueue-batch: reuse one producer, or group().apply_async")

    def describe(self, cfg: dict[str, Any]) -> str:
        return (f"{cfg['procs']} x `celery worker -P {cfg['pool']} -c {cfg['concurrency']} "
                f"--prefetch-multiplier {cfg['prefetch']} --without-gossip --without-mingle "
                f"--without-heartbeat`; task {cfg['task']}; no result backend")

    def version(self) -> str:
        return version("celery")

    def extra_fields(self) -> dict[str, Any]:
        client = "redis" if self.broker == "redis" else "amqp"
        return {"client_versions": {"kombu": version("kombu"), client: version(client)}}

    def setup(self) -> None:
        os.environ["BENCH_BROKER"] = self.url
        from celery_tasks import QUEUE, app

        self.app = app
        if self.broker == "redis":
            import redis

            r = redis.Redis.from_url(self.url)
            r.flushdb()
            self._server_version = f"Redis {r.info('server')['redis_version']}"
            r.close()
        else:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=3)
                conn.default_channel.queue_delete(QUEUE)
                props = conn.connection.server_properties
                self._server_version = f"RabbitMQ {props.get('version', '?')}"
        self.producer_cm = app.producer_or_acquire()
        self.producer = self.producer_cm.__enter__()

    def teardown(self) -> None:
        self.producer_cm.__exit__(None, None, None)
        self.setup_clean()

    def setup_clean(self) -> None:
        """Leave the broker as found: drop the benchmark's messages and queue."""
        from celery_tasks import QUEUE

        if self.broker == "redis":
            import redis

            r = redis.Redis.from_url(self.url)
            r.flushdb()
            r.close()
        else:
            with self.app.connection_for_write() as conn:
                for queue in (QUEUE, *MANY):
                    conn.default_channel.queue_delete(queue)

    def server_version(self) -> str:
        return self._server_version

    def enqueue_one(self, task: str, n: int) -> None:
        self.app.tasks[task].delay(n)

    def enqueue_many(self, task: str, ns: range, queue: str | None = None) -> None:
        t = self.app.tasks[task]
        if queue is not None:
            for i in ns:
                t.apply_async((i,), producer=self.producer, queue=queue)
            return
        if self.args.batch_mode == "group":
            from celery import group

            group(t.s(i) for i in ns).apply_async()
        else:
            for i in ns:
                t.apply_async((i,), producer=self.producer)

    def producer_note(self, batch: bool) -> str:
        if not batch:
            return "task.delay() (pooled producer)"
        if self.args.batch_mode == "group":
            return "group(task.s(i) for i in chunk).apply_async()"
        return "task.apply_async(producer=one reused producer), one message per job"

    def note(self) -> str:
        if self.workload == "enqueue-batch":
            return ("Celery has no batch insert: one broker message per job, published "
                    "through one reused producer (faster here than group().apply_async()). "
                    "No transactional enqueue.")
        if self.workload in (*common.DRAINS, "many-queues"):
            return ("no result backend, so completion is seen by a task_postrun handler "
                    "appending time.time() to an O_APPEND file (one os.write per task)")
        return ""

    def start_workers(self, workers: common.Workers, cfg: dict[str, Any],
                      out: Path | None, queues: list[str] | None = None) -> None:
        env = {"BENCH_BROKER": self.url, "PYTHONPATH": str(common.ADAPTERS),
               "BENCH_PREFETCH": str(cfg["prefetch"])}
        if out is not None:
            env["BENCH_OUT"] = env["BENCH_POSTRUN"] = str(out)
            if self.workload == "latency":
                del env["BENCH_POSTRUN"]
        celery = str(Path(sys.executable).with_name("celery"))
        for i in range(cfg["procs"]):
            workers.start([celery, "-A", "celery_tasks", "worker",
                           "-Q", ",".join(queues or ["pgq_bench"]),
                           "-P", cfg["pool"], "-c", str(cfg["concurrency"]),
                           "--prefetch-multiplier", str(cfg["prefetch"]),
                           "--without-gossip", "--without-mingle", "--without-heartbeat",
                           "-n", f"bench{i}@%h", "--loglevel", "WARNING"],
                          env=env, cwd=common.ADAPTERS)

    def finished(self, out: common.LineFile | None) -> int:
        assert out is not None
        return out.refresh()

    def first_last(self, out: common.LineFile | None) -> common.FinishSpan:
        assert out is not None
        return common.span_of([float(x) for x in out.lines])


if __name__ == "__main__":
    harness.main(CeleryAdapter, __doc__)
