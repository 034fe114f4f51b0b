"""Helpers shared by the side-by-side benchmark adapters and ``run.py``.

Stdlib and psycopg only: this module is imported both from pgqueue's interpreter and from
the peers' virtualenv (``benchmarks/.venv-peers``), which share nothing else.

It owns: the per-system scratch database, the workloads' names and default sizes, CPU
accounting from /proc, percentiles, the one-line JSON result, a "wait until" poller, and
the start/stop of worker processes (each in its own session, so nothing is left behind).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

HERE = Path(__file__).resolve().parent
ADAPTERS = HERE / "adapters"
RESULTS_DIR = HERE / ".results"
LOG_DIR = RESULTS_DIR / "logs"

DEFAULT_DSN = os.environ.get("PGQ_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

# The workload contract: names and default job counts.
DEFAULT_JOBS: dict[str, int] = {
    "enqueue-single": 5_000,
    "enqueue-batch": 50_000,
    "drain": 20_000,  # no-op tasks, each system's fastest kind (async where it has one)
    "drain-sync": 20_000,  # no-op plain functions in threads: what Celery users write
    "drain-io": 20_000,
    "drain-io-sync": 20_000,  # time.sleep(IO_SLEEP) in plain functions, in threads
    "many-queues": 20_000,  # spread over MANY_QUEUES queues, one worker process
    "latency": 300,
}
# The workloads that drain pre-enqueued jobs (run_drain), and whose plain-function kind.
DRAINS: tuple[str, ...] = ("drain", "drain-sync", "drain-io", "drain-io-sync")
MANY_QUEUES = 100
# pgqueue only: drain throughput with a big table. The jobs measured are SCALE_JOBS
# of these; PREFILL rows (finished jobs, or a backlog queued ahead) are written first.
# scale-10m also measures claim latency, and both against an empty table in the same run.
SCALE_JOBS: dict[str, int] = {"scale-finished": 20_000, "scale-backlog": 20_000,
                              "scale-10m": 20_000}
PREFILL: dict[str, int] = {"scale-finished": 1_000_000, "scale-backlog": 1_000_000,
                           "scale-10m": 10_000_000}
WORKLOADS: tuple[str, ...] = tuple(DEFAULT_JOBS)
BATCH_CHUNK = 1_000  # enqueue-batch: jobs per batch call
IO_SLEEP = 0.005  # drain-io: each task sleeps this long
LATENCY_RATE = 50.0  # latency: jobs enqueued per second, one at a time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- databases

def database_name(system: str) -> str:
    return "pgq_bench_" + "".join(c if c.isalnum() else "_" for c in system.lower())


def recreate_database(dsn: str, system: str) -> str:
    """Drop and create ``pgq_bench_<system>`` on the server of ``dsn``; return its DSN."""
    name = database_name(system)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(dsn, dbname=name)


def drop_database(dsn: str, system: str) -> None:
    name = database_name(system)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def dsn_url(dsn: str) -> str:
    """The DSN as a postgresql:// URL (asyncpg and some CLIs take only that form)."""
    parts = conninfo_to_dict(dsn)
    user = parts.get("user", "postgres")
    password = f":{parts['password']}" if parts.get("password") else ""
    host = parts.get("host", "127.0.0.1")
    port = parts.get("port", "5432")
    return f"postgresql://{user}{password}@{host}:{port}/{parts.get('dbname', 'postgres')}"


class FinishSpan(NamedTuple):
    """When jobs finished, as a system recorded it (epoch seconds)."""

    first: float
    last: float
    at_first: int  # jobs stamped with the first time (a whole batch, for batched writers)
    distinct: int  # distinct finish times


def span_of(times: Sequence[float]) -> FinishSpan:
    first = min(times)
    return FinishSpan(first, max(times), times.count(first), len(set(times)))


def finish_span(poll: Poller, table: str, column: str, where: str = "TRUE") -> FinishSpan:
    """The FinishSpan of a timestamp column of finished jobs."""
    row = poll.conn.execute(sql.SQL(
        "WITH f AS (SELECT {col} AS t FROM {tab} WHERE " + where + ")"
        " SELECT extract(epoch FROM min(t))::float8, extract(epoch FROM max(t))::float8,"
        " count(*) FILTER (WHERE t = (SELECT min(t) FROM f)), count(DISTINCT t) FROM f").format(
            col=sql.Identifier(column), tab=sql.Identifier(*table.split(".")))).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError(f"no finished jobs recorded in {table}")
    return FinishSpan(float(row[0]), float(row[1]), int(row[2]), int(row[3]))


def scalar(dsn: str, query: str) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return row[0] if row else None


def postgres_version(dsn: str) -> str:
    return f"PostgreSQL {scalar(dsn, 'SHOW server_version')}"


class Poller:
    """One autocommit connection for repeated small queries (not one connect per poll)."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)

    def scalar(self, query: str) -> Any:
        row = self.conn.execute(query).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------- Postgres writes

TABLE_COUNTS = ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del")
# B-tree WAL records that put a new entry on a leaf page (a split record carries the entry
# that caused it). Upper-level splits are counted too: about one per few hundred leaf ones.
BTREE_INSERTS = ("INSERT_LEAF", "INSERT_POST", "SPLIT_L", "SPLIT_R")


def table_counts(conn: psycopg.Connection[Any]) -> dict[str, dict[str, int]]:
    """pg_stat_user_tables' row counters of this database, by schema.table."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute("SELECT schemaname || '.' || relname, " + ", ".join(TABLE_COUNTS)
                        + " FROM pg_stat_user_tables").fetchall()
    return {r[0]: dict(zip(TABLE_COUNTS, map(int, r[1:]), strict=True)) for r in rows}


class PgWrites:
    """What a drain wrote in Postgres, per job.

    WAL bytes: pg_current_wal_lsn() at the start (after a CHECKPOINT, so every page the
    drain touches costs one full-page image, for every system alike) and when the last job
    is seen finished. The LSN is the whole server's: anything else running on it counts.
    Rows inserted, updated (HOT or not) and deleted: pg_stat_user_tables of the system's
    own database, read after the workers stopped (backends report when they exit at the
    latest). With the pg_walinspect extension available (PostgreSQL 15+, superuser), the
    WAL records of that window touching the system's database also give the full-page
    image bytes and the B-tree leaf inserts (index entries written).
    """

    def __init__(self, db: str) -> None:
        self.db = db
        self.lsn0 = self.lsn1 = ""
        self.tables0: dict[str, dict[str, int]] = {}
        self.walinspect = False

    def begin(self) -> None:
        with psycopg.connect(self.db, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
                self.walinspect = True
            except psycopg.Error:
                self.walinspect = False
            conn.execute("CHECKPOINT")
            self.tables0 = table_counts(conn)
            self.lsn0 = str(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])  # type: ignore[index]

    def end(self, poll: Poller) -> None:
        """The drain is over: the last job's outcome is committed."""
        self.lsn1 = str(poll.scalar("SELECT pg_current_wal_lsn()"))

    def result(self, jobs: int) -> dict[str, Any]:
        with psycopg.connect(self.db, autocommit=True) as conn:
            wal = conn.execute("SELECT pg_wal_lsn_diff(%s, %s)::bigint",
                               (self.lsn1, self.lsn0)).fetchone()[0]  # type: ignore[index]
            tables = table_counts(conn)
            out: dict[str, Any] = {"wal_bytes": int(wal), "wal_bytes_per_job": wal / jobs}
            delta = {t: {k: c[k] - self.tables0.get(t, {}).get(k, 0) for k in TABLE_COUNTS}
                     for t, c in tables.items()}
            delta = {t: d for t, d in delta.items() if any(d.values())}
            out["table_writes"] = delta
            total = {k: sum(d[k] for d in delta.values()) for k in TABLE_COUNTS}
            out |= {"rows_inserted_per_job": total["n_tup_ins"] / jobs,
                    "hot_updates_per_job": total["n_tup_hot_upd"] / jobs,
                    "non_hot_updates_per_job":
                        (total["n_tup_upd"] - total["n_tup_hot_upd"]) / jobs,
                    "rows_deleted_per_job": total["n_tup_del"] / jobs}
            if self.walinspect:
                out |= self._walinspect(conn, jobs)
        return out

    def _walinspect(self, conn: psycopg.Connection[Any], jobs: int) -> dict[str, Any]:
        try:
            row = conn.execute(
                "SELECT coalesce(sum(fpi_length), 0)::bigint,"
                " count(*) FILTER (WHERE resource_manager = 'Btree'"
                "   AND record_type = ANY(%s))"
                " FROM pg_get_wal_records_info(%s, %s)"
                " WHERE block_ref ~ ('rel [0-9]+/' || (SELECT oid FROM pg_database"
                "   WHERE datname = current_database()) || '/')",
                (list(BTREE_INSERTS), self.lsn0, self.lsn1)).fetchone()
        except psycopg.Error:  # e.g. the segments were recycled meanwhile
            return {}
        assert row is not None
        return {"fpi_bytes_per_job": int(row[0]) / jobs,
                "index_inserts_per_job": int(row[1]) / jobs}


# --------------------------------------------------------------------------- waiting

def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    """Call ``predicate`` every ``interval`` s until it is true; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class LineFile:
    """A file that tasks append lines to (O_APPEND); read incrementally by the adapter."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        self._offset = 0
        self._partial = b""
        self.lines: list[str] = []

    def refresh(self) -> int:
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        self.lines.extend(line.decode() for line in complete if line)
        return len(self.lines)

    def wait_for(self, count: int, timeout: float, interval: float = 0.05) -> None:
        wait_until(lambda: self.refresh() >= count, timeout,
                   f"{count} lines in {self.path.name}", interval)


def append_line(fd: int, line: str) -> None:
    """What a task does: one small write to an O_APPEND file (atomic for short lines)."""
    os.write(fd, line.encode())


def open_append(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


# --------------------------------------------------------------------------- statistics

def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def latency_stats(enqueued: dict[int, float], started: dict[int, float]) -> dict[str, Any]:
    """Enqueue->start latencies in ms from the producer's and the tasks' time.time()."""
    missing = sorted(set(enqueued) - set(started))
    if missing:
        raise RuntimeError(f"{len(missing)} jobs never started, e.g. {missing[:5]}")
    lat = [(started[n] - enqueued[n]) * 1000 for n in enqueued]
    return {"p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
            "p99_ms": percentile(lat, 99), "max_ms": max(lat), "min_ms": min(lat),
            "mean_ms": sum(lat) / len(lat)}


def parse_start_lines(lines: Iterable[str]) -> dict[int, float]:
    """``"n start_time"`` lines, as the latency task writes them, into {n: start_time}."""
    out: dict[int, float] = {}
    for line in lines:
        n, t = line.split()
        out[int(n)] = float(t)
    return out


def pace(t0: float, i: int, rate: float) -> float:
    """Seconds to sleep before the i-th enqueue of a fixed-rate schedule starting at t0."""
    return max(0.0, t0 + i / rate - time.monotonic())


# --------------------------------------------------------------------------- CPU accounting

def _stat(pid: int) -> tuple[str, int, list[int]] | None:
    """(comm, ppid, [utime, stime, cutime, cstime]) in clock ticks, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    comm = raw[raw.index("(") + 1: raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is state (field 3 of stat); utime is field 14 -> index 11.
    return comm, int(fields[1]), [int(x) for x in fields[11:15]]


def _all_stats() -> dict[int, tuple[str, int, list[int]]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                out[int(entry)] = st
    return out


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for p, (_, ppid, _) in stats.items():
        children.setdefault(ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in stats or p == pid:
            out.append(p)
            todo.extend(children.get(p, []))
    return out


def tree_cpu_seconds(pids: Iterable[int]) -> float:
    """utime+stime of each process tree, counting reaped children (cutime+cstime) too.

    A live child's time is only in its own stat; a reaped one's only in its parent's
    cutime/cstime, so summing all four over the live tree counts everything once.
    """
    stats = _all_stats()
    ticks = 0
    for root in pids:
        for p in descendants(root):
            if p in stats:
                ticks += sum(stats[p][2])
    return ticks / CLK_TCK


def server_cpu_seconds(kind: str) -> float:
    """CPU of the server a system talks to: 'postgres', 'redis' or 'rabbitmq'.

    Postgres: every live process named postgres (utime+stime), plus the postmaster's
    cutime+cstime so backends that exited in between still count. Redis: redis-server.
    RabbitMQ: the beam.smp VM. The whole server is counted, whatever else uses it.
    """
    names = {"postgres": {"postgres"}, "redis": {"redis-server"},
             "rabbitmq": {"beam.smp"}}[kind]
    stats = _all_stats()
    ticks = 0
    for _pid, (comm, ppid, t) in stats.items():
        if comm not in names:
            continue
        ticks += t[0] + t[1]
        parent = stats.get(ppid)
        if parent is None or parent[0] not in names:  # the postmaster / top process
            ticks += t[2] + t[3]
    return ticks / CLK_TCK


class CpuMeter:
    """Snapshots of worker-tree and server CPU; ``result(jobs)`` gives ms per job."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.worker_pids: list[int] = []
        self._server0 = 0.0
        self._worker0 = 0.0
        self.worker_s = 0.0
        self.server_s = 0.0

    def start(self, worker_pids: list[int]) -> None:
        self.worker_pids = worker_pids
        self._worker0 = tree_cpu_seconds(worker_pids)
        self._server0 = server_cpu_seconds(self.server)

    def stop(self) -> None:
        self.worker_s = tree_cpu_seconds(self.worker_pids) - self._worker0
        self.server_s = server_cpu_seconds(self.server) - self._server0

    def result(self, jobs: int) -> dict[str, float]:
        return {"worker_cpu_ms_per_job": self.worker_s * 1000 / jobs,
                "server_cpu_ms_per_job": self.server_s * 1000 / jobs,
                "worker_cpu_s": self.worker_s, "server_cpu_s": self.server_s}


# --------------------------------------------------------------------------- processes

class Workers:
    """Worker OS processes started by an adapter; ``stop()`` leaves none behind.

    Each starts in its own session (so a Ctrl-C at the terminal reaches only the adapter,
    which then stops them in order). Output goes to a log under benchmarks/.results/logs.
    """

    def __init__(self, system: str, workload: str) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{system}-{workload}.log"
        self._log = self.log_path.open("wb")
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        self._log.write(f"$ {' '.join(argv)}\n".encode())
        self._log.flush()
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=self._log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.args!r} exited with {p.returncode}; "
                                   f"see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM each worker, wait; then SIGKILL whatever is left of its tree."""
        trees = {p.pid: descendants(p.pid) for p in self.procs if p.poll() is None}
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
        for root, tree in trees.items():
            for pid in [*descendants(root), *tree]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        self.procs = []
        self._log.close()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop the workers."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# --------------------------------------------------------------------------- CLI and output

def base_parser(system: str, doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{system}_bench.py",
                                     description=(doc or "").strip().splitlines()[0]
                                     if doc else None)
    parser.add_argument("workload", choices=(*WORKLOADS, *SCALE_JOBS) if system == "pgqueue"
                        else WORKLOADS)
    parser.add_argument("--jobs", type=int, default=None,
                        help="how many jobs (default: per workload, see common.DEFAULT_JOBS)")
    parser.add_argument("--dsn", default=DEFAULT_DSN,
                        help="a maintenance DSN on the server; the adapter makes its own database")
    parser.add_argument("--chunk", type=int, default=BATCH_CHUNK,
                        help="enqueue-batch: jobs per batch call")
    if system == "pgqueue":
        parser.add_argument("--prefill", type=int, default=None,
                            help="scale-*: rows written before the measured drain "
                                 "(default: 1,000,000; scale-10m 10,000,000)")
        parser.add_argument("--latency-jobs", type=int, default=DEFAULT_JOBS["latency"],
                            help="scale-10m: jobs of each of its two latency measurements")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="give up waiting for jobs after this many seconds")
    return parser


def jobs_for(args: argparse.Namespace) -> int:
    return int(args.jobs or {**DEFAULT_JOBS, **SCALE_JOBS}[args.workload])


def emit(result: dict[str, Any]) -> None:
    """Print the ONE final line of JSON an adapter reports."""
    print(json.dumps(result, sort_keys=False), flush=True)


def chunks(n: int, size: int) -> Iterable[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


MIN_DISTINCT_FINISHES = 10  # fewer distinct finish times than this: too few to time a rate


def drain_result(jobs: int, fs: FinishSpan, cpu: CpuMeter, wall: float) -> dict[str, Any]:
    """The drain fields: first->last finish span from the system's own records, and CPU.

    jobs_per_s counts the jobs finished after the first recorded finish over that span:
    (jobs - at_first) / (last - first). ``at_first`` is how many jobs share the first
    timestamp: 1 where each finish is stamped alone, a whole batch where a system records
    outcomes in batches (pgqueue, pgqueuer), whose first batch would otherwise be counted
    in a span that does not contain its work. With fewer than MIN_DISTINCT_FINISHES
    distinct finish times (a tiny run of a batched writer) there is no rate to speak of,
    and jobs_per_s is null.
    """
    span = max(fs.last - fs.first, 1e-9)
    rate = (jobs - fs.at_first) / span if fs.distinct >= MIN_DISTINCT_FINISHES else None
    return {"jobs_per_s": rate, "seconds": span, "jobs_at_first_finish": fs.at_first,
            "distinct_finish_times": fs.distinct,
            "wall_from_worker_start_s": wall, **cpu.result(jobs)}
