"""The workloads, run the same way for every system; adapters supply only the system calls.

An adapter subclasses :class:`Adapter` (how to make a fresh state, enqueue, start workers
and tell finished jobs) and calls :func:`main`. The timing, the pacing, the readiness
check, CPU accounting and the JSON line are all here, so every system is measured alike.
Stdlib (and :mod:`common`) only, like common.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, ClassVar

import common


class Adapter:
    """One system under test. Subclasses fill in the class attributes and the hooks."""

    system: ClassVar[str]
    server: ClassVar[str] = "postgres"  # whose CPU counts as the server's: see common
    # Per-workload worker defaults ("procs", "concurrency", "task", ...). CLI flags
    # of the same names override them for one run.
    WORKER: ClassVar[dict[str, dict[str, Any]]] = {}
    PRELOAD_CHUNK: ClassVar[int] = 5_000  # drain: pre-enqueue this many per batch call
    drain_file: ClassVar[bool] = False  # drain completion comes from a task-written file
    writes: common.PgWrites | None = None  # the last drain's Postgres write accounting

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workload: str = args.workload
        self.dsn: str = args.dsn

    # ---- arguments and configuration --------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--procs", type=int, help="worker OS processes")
        parser.add_argument("--concurrency", type=int, help="jobs at once per worker process")
        parser.add_argument("--task", help="which task the workload enqueues")

    def config(self, workload: str | None = None) -> dict[str, Any]:
        """The worker settings of ``workload`` (default: this run's), flags applied."""
        workload = workload or self.workload
        cfg = dict(self.WORKER.get(workload) or self.WORKER.get("drain") or {})
        for key, value in vars(self.args).items():
            if key in cfg and value is not None:
                cfg[key] = value
        return cfg

    def describe(self, cfg: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in cfg.items())

    # ---- hooks ------------------------------------------------------------------------
    def version(self) -> str:
        raise NotImplementedError

    def server_version(self) -> str:
        return common.postgres_version(self.dsn)

    def setup(self) -> None:
        """A fresh state: database, schema, or flushed broker queue."""

    def teardown(self) -> None:
        """Undo setup (close connections, drop the database)."""

    def enqueue_one(self, task: str, n: int) -> None:
        raise NotImplementedError

    def enqueue_many(self, task: str, ns: range, queue: str | None = None) -> None:
        """Enqueue one job per number, in one batch call; to ``queue`` if given (else the
        system's default queue)."""
        raise NotImplementedError

    def producer_note(self, batch: bool) -> str:
        return ""

    def timed_enqueue_single(self, n: int) -> float:
        """Seconds for n one-job enqueues (after one untimed warm-up call)."""
        self.enqueue_one("noop", -1)
        t0 = time.perf_counter()
        for i in range(n):
            self.enqueue_one("noop", i)
        return time.perf_counter() - t0

    def timed_enqueue_batch(self, n: int, chunk: int) -> float:
        self.enqueue_one("noop", -1)
        t0 = time.perf_counter()
        for part in common.chunks(n, chunk):
            self.enqueue_many("noop", part)
        return time.perf_counter() - t0

    def prefill(self, kind: str, rows: int) -> None:
        """scale-*: write ``rows`` finished jobs ("finished") or queued ones ahead of the
        measured jobs ("backlog") before the drain."""
        raise NotImplementedError

    def preload(self, task: str, n: int, queues: list[str] | None = None) -> None:
        """Enqueue n jobs; with ``queues``, job i goes to queues[i % len(queues)] (as
        many to each), written queue by queue in batch calls."""
        if not queues:
            for part in common.chunks(n, self.PRELOAD_CHUNK):
                self.enqueue_many(task, part)
            return
        for q, queue in enumerate(queues):
            mine = range(q, n, len(queues))
            for start in range(0, len(mine), self.PRELOAD_CHUNK):
                self.enqueue_many(task, mine[start:start + self.PRELOAD_CHUNK], queue)

    def start_workers(self, workers: common.Workers, cfg: dict[str, Any],
                      out: Path | None, queues: list[str] | None = None) -> None:
        """Start cfg["procs"] worker processes; with ``queues``, each serves all of them."""
        raise NotImplementedError

    def finished(self, out: common.LineFile | None) -> int:
        """How many jobs have finished, from the system's own records."""
        raise NotImplementedError

    def first_last(self, out: common.LineFile | None) -> common.FinishSpan:
        """When the jobs finished, from the system's own records."""
        raise NotImplementedError

    def note(self) -> str:
        """Anything a reader of this workload's result should know about this system."""
        return ""

    def extra_fields(self) -> dict[str, Any]:
        """More fields for the JSON line (client library versions, notes)."""
        return {}

    def latency_loop(self, n: int) -> dict[int, float]:
        """Enqueue n latency jobs one at a time at LATENCY_RATE; {n: time.time() before}."""
        enqueued: dict[int, float] = {}
        t0 = time.monotonic()
        for i in range(n):
            time.sleep(common.pace(t0, i, common.LATENCY_RATE))
            enqueued[i] = time.time()
            self.enqueue_one("latency", i)
        return enqueued


class PostgresAdapter(Adapter):
    """A system that keeps its jobs in Postgres: a fresh database ``self.db`` per
    measurement, and finished jobs counted from the rows where ``finish_where()`` holds
    in ``finish_table``, stamped by ``finish_column``."""

    finish_table: ClassVar[str]
    finish_column: ClassVar[str]
    finish_filter: ClassVar[str] = "true"

    def setup(self) -> None:
        self.db = common.recreate_database(self.dsn, self.system)
        self.open()
        self.poll = common.Poller(self.db)

    def teardown(self) -> None:
        self.close()
        self.poll.close()
        common.drop_database(self.dsn, self.system)

    def open(self) -> None:
        """Install the system's schema in self.db and open its producer."""

    def close(self) -> None:
        """Close the producer."""

    def flush_stats(self) -> None:
        """Make the producer's backends report their statistics now: close its
        connections (a backend reports when it exits; an idle one may wait 10 s) and
        reconnect. Called after the preload, so that a drain's counts are the drain's."""

    def finish_where(self) -> str:
        return self.finish_filter

    def finished(self, out: common.LineFile | None) -> int:
        return int(self.poll.scalar(
            f"SELECT count(*) FROM {self.finish_table} WHERE {self.finish_where()}"))

    def first_last(self, out: common.LineFile | None) -> common.FinishSpan:
        return common.finish_span(self.poll, self.finish_table, self.finish_column,
                                  self.finish_where())


# ---- the workloads ------------------------------------------------------------------------

def run_enqueue(ad: Adapter, n: int, batch: bool) -> dict[str, Any]:
    seconds = (ad.timed_enqueue_batch(n, ad.args.chunk) if batch
               else ad.timed_enqueue_single(n))
    result: dict[str, Any] = {"jobs_per_s": n / seconds, "seconds": seconds,
                              "config": ad.producer_note(batch)}
    return result


def transactions(db: str | None) -> int | None:
    """Transactions committed in the system's database so far (Postgres systems only):
    every statement its workers run in autocommit is one, so the delta over a drain,
    divided by the jobs, is the round trips per job. Backends report these counts
    when they exit at the latest, so read it after the workers stopped."""
    if db is None:
        return None
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else None


def prefill_rows(ad: Adapter) -> int:
    return int(ad.args.prefill or common.PREFILL[ad.workload])


def run_drain(ad: Adapter, n: int, cfg: dict[str, Any], prefill: str | None = None,
              queues: list[str] | None = None) -> dict[str, Any]:
    """Drain n jobs; with prefill="backlog" the queue holds more than n, and the
    workers are stopped once n have finished. With ``queues``, the jobs are spread
    over them evenly and every worker serves them all."""
    if prefill:
        ad.prefill(prefill, prefill_rows(ad))
    ad.preload(cfg["task"], n, queues)
    if isinstance(ad, PostgresAdapter):
        ad.flush_stats()
    time.sleep(1.2)  # the producer's statistics reach pg_stat_database (1 s flush)
    db = ad.db if isinstance(ad, PostgresAdapter) else None
    xacts = transactions(db)
    writes = common.PgWrites(db) if db else None
    ad.writes = writes  # wal_per_job.py reads the window's LSNs off it
    if writes:
        writes.begin()
    out = (common.LineFile(common.RESULTS_DIR / f"{ad.system}-{ad.workload}.lines")
           if ad.drain_file else None)
    cpu = common.CpuMeter(ad.server)
    workers = common.Workers(ad.system, ad.workload)
    try:
        cpu.start([])
        t0 = time.monotonic()
        ad.start_workers(workers, cfg, out.path if out else None, queues)
        cpu.worker_pids = workers.pids

        def done() -> bool:
            workers.check_alive()
            return ad.finished(out) >= n

        common.wait_until(done, ad.args.timeout, f"{n} finished jobs", interval=0.1)
        cpu.stop()
        if writes and isinstance(ad, PostgresAdapter):
            writes.end(ad.poll)
        wall = time.monotonic() - t0
        finish = ad.first_last(out)
        finished = ad.finished(out)  # a backlog drain goes on past n until stopped
    finally:
        workers.stop()
    result = common.drain_result(finished, finish, cpu, wall)
    time.sleep(0.5)  # exiting backends flush their counts
    after = transactions(db)
    if xacts is not None and after is not None:
        # Includes start-up, shutdown and this script's polling (10 a second).
        result["round_trips_per_job"] = (after - xacts) / finished
    if writes:
        result |= writes.result(finished)
    return result


def run_many_queues(ad: Adapter, n: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """The same worker configuration drains n jobs from one queue, then (in a fresh
    state) n jobs spread evenly over MANY_QUEUES queues; both figures, and their ratio."""
    one = run_drain(ad, n, cfg)
    ad.teardown()
    ad.setup()
    queues = [f"q{i}" for i in range(common.MANY_QUEUES)]
    many = run_drain(ad, n, cfg, queues=queues)
    rate, base = many.get("jobs_per_s"), one.get("jobs_per_s")
    return {**many, "queues": len(queues), "one_queue": one,
            "one_queue_jobs_per_s": base,
            "vs_one_queue": rate / base if rate and base else None}


def run_scale_10m(ad: Adapter, n: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """pgqueue with a huge history: drain throughput and idle-worker claim latency on an
    empty table, then the same after prefilling ``--prefill`` finished rows in SQL."""
    lat_cfg, lat_n = ad.config("latency"), ad.args.latency_jobs
    empty = {"drain": run_drain(ad, n, cfg), "latency": run_latency(ad, lat_n, lat_cfg)}
    t0 = time.monotonic()
    ad.prefill("finished", prefill_rows(ad))
    prefill_s = time.monotonic() - t0
    drain = run_drain(ad, n, cfg)
    latency = run_latency(ad, lat_n, lat_cfg)
    e_rate, rate = empty["drain"].get("jobs_per_s"), drain.get("jobs_per_s")
    return {**drain, "prefill_s": prefill_s, "latency": latency, "empty": empty,
            "latency_config": ad.describe(lat_cfg),
            "vs_empty_jobs_per_s": rate / e_rate if rate and e_rate else None,
            "vs_empty_p50": latency["p50_ms"] / empty["latency"]["p50_ms"],
            "vs_empty_p99": latency["p99_ms"] / empty["latency"]["p99_ms"]}


def run_latency(ad: Adapter, n: int, cfg: dict[str, Any]) -> dict[str, Any]:
    out = common.LineFile(common.RESULTS_DIR / f"{ad.system}-latency.lines")
    workers = common.Workers(ad.system, "latency")
    try:
        ad.start_workers(workers, cfg, out.path)
        ad.enqueue_one("latency", -1)  # ready = the worker has run a job

        def ready() -> bool:
            workers.check_alive()
            return out.refresh() >= 1

        common.wait_until(ready, 120, "the worker's first job")
        time.sleep(1.0)
        enqueued = ad.latency_loop(n)
        out.wait_for(n + 1, ad.args.timeout)
    finally:
        workers.stop()
    started = common.parse_start_lines(out.lines)
    started.pop(-1, None)
    return {"jobs_per_s": None, **common.latency_stats(enqueued, started)}


def main(adapter: type[Adapter], doc: str | None) -> None:
    common.exit_on_sigterm()
    parser = common.base_parser(adapter.system, doc)
    adapter.add_arguments(parser)
    args = parser.parse_args()
    n = common.jobs_for(args)
    ad = adapter(args)
    cfg = ad.config()
    result: dict[str, Any] = {"system": ad.system, "workload": ad.workload, "jobs": n}
    ad.setup()
    try:
        result |= {"version": ad.version(), "server": ad.server_version()}
        result |= ad.extra_fields()
        if ad.workload in ("enqueue-single", "enqueue-batch"):
            result |= run_enqueue(ad, n, ad.workload == "enqueue-batch")
        elif ad.workload in common.DRAINS:
            result |= {"config": ad.describe(cfg)} | run_drain(ad, n, cfg)
        elif ad.workload == "many-queues":
            result |= {"config": ad.describe(cfg)} | run_many_queues(ad, n, cfg)
        elif ad.workload == "scale-10m":
            result |= {"config": ad.describe(cfg), "prefill": prefill_rows(ad),
                       "prefill_kind": "finished"} | run_scale_10m(ad, n, cfg)
        elif ad.workload.startswith("scale-"):
            kind = ad.workload.removeprefix("scale-")
            result |= {"config": ad.describe(cfg), "prefill": prefill_rows(ad),
                       "prefill_kind": kind} | run_drain(ad, n, cfg, kind)
        else:
            result |= {"config": ad.describe(cfg)} | run_latency(ad, n, cfg)
    finally:
        ad.teardown()
    if ad.note():
        result["note"] = ad.note()
    common.emit(result)
