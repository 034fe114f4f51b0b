"""Side-by-side benchmarks: pgqueue against procrastinate, pgqueuer and Celery (Redis, RabbitMQ).

    python benchmarks/run.py [--runs 3] [--systems pgqueue,procrastinate,...]
        [--workloads drain,latency,...] [--quick] [--out benchmarks/RESULTS.md]
    python benchmarks/run.py --render-only benchmarks/.results/<timestamp>.jsonl

Run it with the interpreter pgqueue is installed in. The peers live in their own
virtualenv, benchmarks/.venv-peers, made here on first use from peers-requirements.txt
(they never become pgqueue dependencies). Each measurement is one adapter process,
``benchmarks/adapters/<system>_bench.py WORKLOAD``, that makes its own fresh state, starts
and stops its own workers and prints one JSON line. Runs are interleaved (for each run,
for each workload, every system in turn), so a noisy minute hits all systems alike.
Raw results go to benchmarks/.results/<timestamp>.jsonl, the summary to --out.

Services: PostgreSQL (--dsn, default postgresql://postgres@127.0.0.1:5432/postgres),
Redis at 127.0.0.1:6379 (database 5 only) and RabbitMQ at 127.0.0.1:5672 (guest/guest,
queue pgq_bench only).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common

HERE = common.HERE
PEERS_VENV = HERE / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
REQUIREMENTS = HERE / "peers-requirements.txt"

# system -> (interpreter: "self" = this one, "peers" = the peers venv; adapter; extra args)
SYSTEMS: dict[str, tuple[str, str, list[str]]] = {
    "pgqueue": ("self", "pgqueue_bench.py", []),
    "procrastinate": ("peers", "procrastinate_bench.py", []),
    "pgqueuer": ("peers", "pgqueuer_bench.py", []),
    "celery-redis": ("peers", "celery_bench.py", ["--broker", "redis"]),
    "celery-amqp": ("peers", "celery_bench.py", ["--broker", "amqp"]),
}
PGQUEUE_ONLY = tuple(common.SCALE_JOBS)  # workloads only pgqueue's adapter runs
QUICK_JOBS = {"enqueue-single": 200, "enqueue-batch": 1_000, "drain": 200, "drain-sync": 200,
              "drain-io": 200, "drain-io-sync": 200, "many-queues": 300, "latency": 100,
              "scale-finished": 200, "scale-backlog": 200, "scale-10m": 200}
QUICK_PREFILL = 2_000
QUICK_LATENCY = 50  # scale-10m --quick: jobs of each latency measurement
THROUGHPUT = ("enqueue-single", "enqueue-batch", *common.DRAINS, "many-queues")
# Measured in the first run only, whatever --runs says: its prefill alone takes minutes.
ONCE = ("scale-10m",)
CHART = "results.png"  # written next to --out
TIMEOUT = 1_800.0  # seconds for one adapter process (scale-10m: twice that)


# --------------------------------------------------------------------------- the peers' venv

def ensure_peers_venv() -> None:
    """Create benchmarks/.venv-peers, or re-install when peers-requirements.txt changed."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = PEERS_VENV / ".requirements.sha256"
    if PEERS_PYTHON.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return
    if not PEERS_PYTHON.exists():
        print(f"creating {PEERS_VENV.relative_to(HERE.parent)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    print(f"installing {REQUIREMENTS.name} into it (pip) ...", flush=True)
    subprocess.run([str(PEERS_PYTHON), "-m", "pip", "install", "--disable-pip-version-check",
                    "-q", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest + "\n")
    print("peers virtualenv ready", flush=True)


# --------------------------------------------------------------------------- running

@functools.cache
def adapter_supports(system: str, workload: str) -> bool:
    if workload in PGQUEUE_ONLY:
        if system != "pgqueue":
            return False
        helptext = subprocess.run(adapter_argv(system, "--help"), capture_output=True,
                                  text=True).stdout
        return workload in helptext
    return True


def adapter_argv(system: str, *args: str) -> list[str]:
    interp, script, extra = SYSTEMS[system]
    python = sys.executable if interp == "self" else str(PEERS_PYTHON)
    return [python, str(common.ADAPTERS / script), *args, *extra]


def run_adapter(system: str, workload: str, jobs: int | None, dsn: str,
                quick: bool = False) -> dict[str, Any]:
    argv = adapter_argv(system, workload, "--dsn", dsn,
                        *(["--jobs", str(jobs)] if jobs else []),
                        *(["--prefill", str(QUICK_PREFILL)]
                          if quick and workload in PGQUEUE_ONLY else []),
                        *(["--latency-jobs", str(QUICK_LATENCY)]
                          if quick and workload in ONCE else []))
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=HERE.parent)
    try:
        out, err = proc.communicate(timeout=TIMEOUT * (2 if workload in ONCE else 1))
    except subprocess.TimeoutExpired:
        proc.terminate()  # the adapter turns SIGTERM into a clean stop of its workers
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in common.descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            out, err = proc.communicate()
        err += f"\ntimed out after {TIMEOUT:.0f} s"
    except BaseException:  # Ctrl-C or SIGTERM: let the adapter stop its workers, then go
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        raise
    elapsed = time.monotonic() - t0
    lines = [line for line in out.splitlines() if line.strip()]
    if proc.returncode == 0 and lines:
        try:
            result: dict[str, Any] = json.loads(lines[-1])
            result["elapsed_s"] = elapsed
            return result
        except json.JSONDecodeError:
            pass
    tail = "\n".join((err or out).strip().splitlines()[-15:])
    return {"system": system, "workload": workload, "jobs": jobs, "error": tail,
            "returncode": proc.returncode, "elapsed_s": elapsed}


def summary(result: dict[str, Any]) -> str:
    if "error" in result:
        last = result["error"].strip().splitlines()[-1:] or ["?"]
        return f"FAILED ({last[0][:100]})"
    if result.get("workload") == "latency":
        return (f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                f"max {result['max_ms']:.1f} ms")
    rate = result.get("jobs_per_s")
    text = f"{rate:,.0f} jobs/s" if rate is not None else "jobs/s n/a (too few jobs to time)"
    if "worker_cpu_ms_per_job" in result:
        text += (f", CPU/job worker {result['worker_cpu_ms_per_job']:.3f} ms + server "
                 f"{result['server_cpu_ms_per_job']:.3f} ms")
    if "wal_bytes_per_job" in result:
        text += f", WAL {result['wal_bytes_per_job']:,.0f} B/job"
    if result.get("workload") == "many-queues":
        text += f"; one queue {fmt(result.get('one_queue_jobs_per_s'))} jobs/s"
    if result.get("workload") == "scale-10m":
        lat = result["latency"]
        text += (f"; prefill {result['prefill']:,} rows in {result['prefill_s']:.0f} s; "
                 f"latency p50 {lat['p50_ms']:.1f} ms p99 {lat['p99_ms']:.1f} ms; vs empty: "
                 f"drain {fmt(result.get('vs_empty_jobs_per_s'), 2)}x, p50 "
                 f"{result['vs_empty_p50']:.2f}x, p99 {result['vs_empty_p99']:.2f}x")
    return text


# --------------------------------------------------------------------------- machine facts

def git_commit() -> str | None:
    """The short commit of the pgqueue checkout being measured (a + if it has changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "pgqueue", "sql"],
                               cwd=HERE.parent, text=True, capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def machine_facts(dsn: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"cores": os.cpu_count(), "kernel": platform.release(),
                             "python": platform.python_version(),
                             "python_executable": sys.executable}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        facts["postgres"] = common.postgres_version(dsn)
    except Exception as exc:  # still render without it
        facts["postgres"] = f"unknown ({exc.__class__.__name__})"
    if PEERS_PYTHON.exists():
        facts["peers_python"] = subprocess.run(
            [str(PEERS_PYTHON), "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True).stdout.strip()
    return facts


# --------------------------------------------------------------------------- rendering

def fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def times(x: float | None) -> str:
    """A ratio already computed: "0.95x", or "-" when there is none."""
    return "-" if x is None else f"{x:.2f}x"


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def by(results: list[dict[str, Any]], workload: str, system: str) -> list[dict[str, Any]]:
    return [r for r in results if r.get("workload") == workload and r.get("system") == system
            and "error" not in r]


def med(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return common.median(values) if values else None


def span(rows: list[dict[str, Any]], key: str, digits: int = 0) -> str:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "-"
    return f"{fmt(min(values), digits)}-{fmt(max(values), digits)}"


def throughput_table(results: list[dict[str, Any]], workload: str,
                     systems: list[str]) -> list[str]:
    cpu = workload in common.DRAINS
    head = "| system | median jobs/s | min-max | pgqueue ÷ system |"
    rule = "|---|---:|---:|---:|"
    if cpu:
        head += (" worker CPU ms/job | server CPU ms/job | total CPU ms/job | round trips/job"
                 " | WAL bytes/job |")
        rule += "---:|---:|---:|---:|---:|"
    lines = [head + " runs |", rule + "---:|"]
    base = med(by(results, workload, "pgqueue"), "jobs_per_s")
    for system in systems:
        rows = by(results, workload, system)
        if not rows:
            continue
        m = med(rows, "jobs_per_s")
        line = f"| {system} | {fmt(m)} | {span(rows, 'jobs_per_s')} | {ratio(base, m)} |"
        if cpu:
            w, s = med(rows, "worker_cpu_ms_per_job"), med(rows, "server_cpu_ms_per_job")
            total = (w or 0) + (s or 0) if w is not None or s is not None else None
            line += (f" {fmt(w, 3)} | {fmt(s, 3)} | {fmt(total, 3)} |"
                     f" {fmt(med(rows, 'round_trips_per_job'), 3)} |"
                     f" {fmt(med(rows, 'wal_bytes_per_job'))} |")
        lines.append(line + f" {len(rows)} |")
    return lines


def scale_table(results: list[dict[str, Any]], workload: str) -> list[str]:
    """pgqueue's drain with a big table against its drain on an empty one."""
    lines = ["| table | median jobs/s | min-max | ÷ empty-table drain | runs |",
             "|---|---:|---:|---:|---:|"]
    empty = by(results, "drain", "pgqueue")
    rows = by(results, workload, "pgqueue")
    e, m = med(empty, "jobs_per_s"), med(rows, "jobs_per_s")
    prefill = rows[0].get("prefill") if rows else None
    what = "finished jobs kept" if workload == "scale-finished" else "jobs queued ahead"
    lines.append(f"| empty (the drain workload) | {fmt(e)} | {span(empty, 'jobs_per_s')} | "
                 f"1.00x | {len(empty)} |")
    if rows:
        lines.append(f"| {prefill:,} {what} | {fmt(m)} | {span(rows, 'jobs_per_s')} | "
                     f"{ratio(m, e)} | {len(rows)} |")
    return lines


def latency_table(results: list[dict[str, Any]], systems: list[str]) -> list[str]:
    lines = ["| system | p50 ms | p95 ms | p99 ms | max ms | p50 min-max | "
             "system ÷ pgqueue (p50) | system ÷ pgqueue (p99) | runs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = by(results, "latency", "pgqueue")
    b50, b99 = med(base, "p50_ms"), med(base, "p99_ms")
    for system in systems:
        rows = by(results, "latency", system)
        if not rows:
            continue
        p50, p99 = med(rows, "p50_ms"), med(rows, "p99_ms")
        lines.append(f"| {system} | {fmt(p50, 1)} | {fmt(med(rows, 'p95_ms'), 1)} | "
                     f"{fmt(p99, 1)} | {fmt(med(rows, 'max_ms'), 1)} | "
                     f"{span(rows, 'p50_ms', 1)} | {ratio(p50, b50)} | {ratio(p99, b99)} | "
                     f"{len(rows)} |")
    return lines


WRITES = (("wal_bytes_per_job", "WAL bytes", 0),
          ("fpi_bytes_per_job", "of which full-page images", 0),
          ("rows_inserted_per_job", "rows inserted", 2),
          ("hot_updates_per_job", "HOT updates", 2),
          ("non_hot_updates_per_job", "non-HOT updates", 2),
          ("rows_deleted_per_job", "rows deleted", 2),
          ("index_inserts_per_job", "index entries written", 2))


def writes_table(results: list[dict[str, Any]], workload: str, systems: list[str]) -> list[str]:
    """What Postgres wrote per job in a drain, for the systems that keep jobs there."""
    rows_of = {s: by(results, workload, s) for s in systems}
    rows_of = {s: r for s, r in rows_of.items() if r and any("wal_bytes_per_job" in x for x in r)}
    if not rows_of:
        return []
    lines = ["", "Postgres writes per job (medians; see the caveat *WAL and row counts*):", "",
             "| system | " + " | ".join(label for _, label, _ in WRITES) + " |",
             "|---|" + "---:|" * len(WRITES)]
    for system, rows in rows_of.items():
        lines.append(f"| {system} | " + " | ".join(fmt(med(rows, key), d)
                                                   for key, _, d in WRITES) + " |")
    return lines


def many_queues_table(results: list[dict[str, Any]], systems: list[str]) -> list[str]:
    lines = [f"| system | {common.MANY_QUEUES} queues: jobs/s | min-max | one queue: jobs/s | "
             f"{common.MANY_QUEUES} queues ÷ one | pgqueue ÷ system | worker CPU ms/job | "
             "server CPU ms/job | WAL bytes/job | runs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = med(by(results, "many-queues", "pgqueue"), "jobs_per_s")
    for system in systems:
        rows = by(results, "many-queues", system)
        if not rows:
            continue
        m = med(rows, "jobs_per_s")
        lines.append(f"| {system} | {fmt(m)} | {span(rows, 'jobs_per_s')} | "
                     f"{fmt(med(rows, 'one_queue_jobs_per_s'))} | "
                     f"{times(med(rows, 'vs_one_queue'))} | {ratio(base, m)} | "
                     f"{fmt(med(rows, 'worker_cpu_ms_per_job'), 3)} | "
                     f"{fmt(med(rows, 'server_cpu_ms_per_job'), 3)} | "
                     f"{fmt(med(rows, 'wal_bytes_per_job'))} | {len(rows)} |")
    return lines


def scale_10m_table(results: list[dict[str, Any]]) -> list[str]:
    """Drain and claim latency with the prefill, against an empty table in the same process."""
    rows = by(results, "scale-10m", "pgqueue")
    if not rows:
        return []
    empty = [r["empty"] for r in rows]
    lines = ["| table | drain jobs/s | ÷ empty | latency p50 ms | p99 ms | p50 ÷ empty | "
             "p99 ÷ empty | WAL bytes/job | runs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    e_drain = [e["drain"] for e in empty]
    e_lat = [e["latency"] for e in empty]
    lines.append(f"| empty (same process, first) | {fmt(med(e_drain, 'jobs_per_s'))} | 1.00x | "
                 f"{fmt(med(e_lat, 'p50_ms'), 1)} | {fmt(med(e_lat, 'p99_ms'), 1)} | 1.00x | "
                 f"1.00x | {fmt(med(e_drain, 'wal_bytes_per_job'))} | {len(rows)} |")
    lat = [r["latency"] for r in rows]
    lines.append(f"| {rows[0]['prefill']:,} finished jobs kept | {fmt(med(rows, 'jobs_per_s'))} "
                 f"| {times(med(rows, 'vs_empty_jobs_per_s'))} | {fmt(med(lat, 'p50_ms'), 1)} "
                 f"| {fmt(med(lat, 'p99_ms'), 1)} | {times(med(rows, 'vs_empty_p50'))} | "
                 f"{times(med(rows, 'vs_empty_p99'))} | {fmt(med(rows, 'wal_bytes_per_job'))} "
                 f"| {len(rows)} |")
    lines += ["", f"Prefill (INSERT ... SELECT generate_series in chunks, then VACUUM ANALYZE): "
              f"{span(rows, 'prefill_s', 1)} s. Latency configuration: "
              f"{rows[0].get('latency_config', '?')}."]
    return lines


# --------------------------------------------------------------------------- the chart

COLORS = {"pgqueue": "#2b6cb0", "procrastinate": "#9c4221", "pgqueuer": "#2f855a",
          "celery-redis": "#c53030", "celery-amqp": "#d69e2e"}


def render_chart(results: list[dict[str, Any]], systems: list[str], workloads: list[str],
                 path: Path) -> bool:
    """Bars of median jobs/s per throughput workload (log scale) and of latency p50/p99,
    per system, into a PNG. False when matplotlib is missing (pgqueue's dev extra has it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return False
    tp = [w for w in workloads if w in THROUGHPUT and any(by(results, w, s) for s in systems)]
    lat = [s for s in systems if by(results, "latency", s)]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3.2, 1]})
    ax = axes[0]
    width = 0.8 / max(1, len(systems))
    for k, system in enumerate(systems):
        values = [med(by(results, w, system), "jobs_per_s") for w in tp]
        xs = [i + (k - (len(systems) - 1) / 2) * width for i in range(len(tp))]
        ax.bar([x for x, v in zip(xs, values, strict=True) if v], [v for v in values if v],
               width, color=COLORS.get(system))
    ax.set_yscale("log")
    ax.set_xticks(range(len(tp)), tp, rotation=20)
    ax.set_ylabel("jobs/s (median over runs, log scale)")
    ax.set_title("Throughput: higher is better")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(handles=[Patch(color=COLORS.get(s), label=s) for s in systems], fontsize=8)
    ax = axes[1]
    for j, (key, hatch) in enumerate((("p50_ms", ""), ("p99_ms", "//"))):
        values = [med(by(results, "latency", s), key) or 0 for s in lat]
        ax.bar([i + (j - 0.5) * 0.4 for i in range(len(lat))], values, 0.4, hatch=hatch,
               color=[COLORS.get(s) for s in lat], edgecolor="black", linewidth=0.4,
               label=key.removesuffix("_ms"))
    if not lat:
        ax.text(0.5, 0.5, "latency not measured in this run", ha="center",
                transform=ax.transAxes)
    ax.set_xticks(range(len(lat)), lat, rotation=20)
    ax.set_ylabel("enqueue → start, ms")
    ax.set_title("Latency, idle worker: lower is better")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


WORKLOAD_TEXT = {
    "enqueue-single": "One producer process, one enqueue call (one transaction or one "
                      "publish) per job, no worker running; jobs/s over the loop's wall time.",
    "enqueue-batch": "One producer process, the system's batch API in chunks of 1,000 "
                     "(Celery has none: see its configuration); jobs/s over the loop.",
    "drain": "Jobs pre-enqueued, then the workers start; jobs/s from the first to the last "
             "finished job as the system itself records it. CPU: worker process trees "
             "(children included, start-up included) and the broker/database server, per job.",
    "drain-sync": "As drain, with plain `def` no-op functions on a threads pool, what Celery "
                  "users write: pgqueue's threads pool, procrastinate's sync tasks, "
                  "Celery `-P threads`; pgqueuer takes no plain functions, so its row runs "
                  "each through `asyncio.to_thread`, as pgqueuer's error message advises.",
    "drain-io": "As drain, but each task sleeps 5 ms (asyncio.sleep on async runtimes, "
                "time.sleep in threads).",
    "drain-io-sync": "As drain-sync, but each plain function calls time.sleep(0.005) "
                     "(Celery: the same `-P threads` configuration as drain-io).",
    "many-queues": f"One worker process drains the jobs spread evenly over "
                   f"{common.MANY_QUEUES} queues (q0 ... q{common.MANY_QUEUES - 1}), all "
                   f"of which it serves (pgqueue `--queues q0,...`, procrastinate "
                   f"`--queues`, Celery `-Q`, pgqueuer: one entrypoint per queue); then, "
                   f"in a fresh state, the same configuration drains as many jobs from one "
                   f"queue. Both figures are from the same adapter process.",
    "latency": "One idle, warmed-up worker process; jobs enqueued one at a time at 50/s; "
               "enqueue→start in ms (producer's time.time() just before the call, the "
               "task's time.time() when it starts). Medians over runs of each percentile.",
    "scale-finished": "pgqueue only: the drain workload with 1,000,000 finished jobs kept "
                      "in the table (a week of history), against the plain drain's figure.",
    "scale-backlog": "pgqueue only: the drain workload behind a backlog of 1,000,000 queued "
                     "jobs (the workers take from the backlog; timed over the first 20,000 "
                     "finishes), against the plain drain's figure.",
    "scale-10m": "pgqueue only, once per invocation whatever --runs says (its prefill takes "
                 "minutes): in one adapter process, the drain workload and the latency "
                 "workload on an empty table, then the same two after 10,000,000 finished "
                 "jobs are written into `pgqueue.jobs` in SQL (INSERT ... SELECT "
                 "generate_series, triggers off, then VACUUM ANALYZE).",
}

SYSTEM_TEXT = {
    "pgqueue": "Producer: `task.delay()` / `task.map()` through the app's connection pool. "
               "Workers: `python -m pgqueue.cli worker` (= `pgq worker`), LISTEN/NOTIFY "
               "wake-ups, poll interval 5 s (default), claims of up to --batch-size jobs "
               "per round trip; no-op tasks are `async def` on the asyncio pool for drain, "
               "drain-io and many-queues, plain functions on the threads pool for "
               "drain-sync, drain-io-sync and latency. Enqueues and "
               "outcomes wait for the WAL flush (synchronous_commit on); claims don't (off "
               "for the claim's own transaction: a claim lost in a crash is re-queued, and "
               "the lease token refuses the old attempt's outcome). A task that returns "
               "None stores no result row.",
    "procrastinate": "Producer: sync API (`task.defer()`, `task.batch_defer()`) over "
                     "`PsycopgConnector` opened with `app.open()`. Workers: `procrastinate "
                     "worker` with listen/notify on (default), jobs kept after completion "
                     "(delete-jobs never, default). Tasks are `async def` except in "
                     "drain-sync and drain-io-sync, whose plain functions procrastinate "
                     "runs through asgiref's thread executor.",
    "pgqueuer": "Producer: `await Queries.enqueue()` on one asyncpg connection, lists for "
                "batches. Schema from `pgq install` (durability durable, the default). "
                "Workers: `pgqueuer.run(factory, batch_size=...)` on uvloop with asyncpg, "
                "`async def` entrypoints (pgqueuer 1.6 accepts no sync ones: in drain-sync and "
                "drain-io-sync each entrypoint awaits `asyncio.to_thread(plain function)`), "
                "no --max-concurrent-tasks cap (default: unlimited).",
    "celery-redis": "Broker redis://127.0.0.1:6379/5 (redis-py through kombu). "
                    "`task_ignore_result=True`, no result backend, early acks (default), "
                    "no -O option (in Celery 5 the default "
                    "prefork scheduling already is the fair one and the CLI offers no other; "
                    "it matters only for prefork, used here for latency). Workers: "
                    "`celery worker --without-gossip --without-mingle --without-heartbeat` "
                    "with the pool, concurrency and --prefetch-multiplier below.",
    "celery-amqp": "Broker amqp://127.0.0.1:5672// (kombu's default py-amqp client), queue "
                   "pgq_bench. Otherwise as celery-redis. Persistent messages in a durable "
                   "queue (Celery's defaults); no publisher confirms "
                   "(Celery's default), so a publish returns before RabbitMQ has stored "
                   "the message.",
}

CAVEATS = """\
- **One small machine.** Everything (producer, workers, PostgreSQL, Redis, RabbitMQ) shares
  the cores listed above, so the numbers rank the systems on this box; they are not capacity
  figures. Other work on the machine during a run (someone else's benchmark, autovacuum,
  a checkpoint) shows up as spread between runs; runs are interleaved so it hits every
  system alike, and the tables show the median and the min-max.
- **Same workload code for everyone.** benchmarks/harness.py times, paces and waits the
  same way for every system; an adapter only says how its system enqueues, starts workers
  and records finished jobs. Each measurement starts from fresh state: a new database
  `pgq_bench_<system>` (dropped afterwards), Redis database 5 flushed, or the RabbitMQ queue
  `pgq_bench` deleted.
- **Enqueue workloads** time a loop after one untimed warm-up call that opens the
  producer's connection. For the Postgres-based systems one enqueue is one committed
  transaction. **Celery has no transactional enqueue**: a publish is not atomic with the
  application's database writes (the job can run before, or without, the data it needs).
  Celery also has no batch insert: every job is its own broker message; enqueue-batch for
  Celery reuses one producer for all publishes (`apply_async(producer=...)`), which is the
  documented way to publish many; `celery_bench.py --batch-mode group` measures
  `group(...).apply_async()` instead. Celery's "chunks" primitive was not used: it packs many
  calls into one message, which changes what a job is.
- **Round trips per job** (drain) are the transactions committed in the system's
  database during the drain (`pg_stat_database.xact_commit`, read before the workers start
  and after they stop), divided by the jobs: every statement run in autocommit is one.
  They include the workers' start-up and shutdown, heartbeats, and the harness's own
  polling (ten cheap queries a second). Not measured for Celery (no database).
- **WAL and row counts** (drains, Postgres systems): WAL bytes per job is the
  `pg_current_wal_lsn()` difference from just before the workers start to the moment the
  last job is seen finished, divided by the jobs. A `CHECKPOINT` is run just before, so
  the first change of every page after it writes a full-page image, for every system
  alike (without it, whether a page was imaged would depend on when the last checkpoint
  happened to be). The LSN is the whole server's: autovacuum (which the drain's own dead
  rows may start), the workers' heartbeats and anything else on the server count too.
  Rows inserted / HOT updates / non-HOT updates / deleted are the deltas of
  `pg_stat_user_tables` over all tables of the system's database, read before the
  workers start and after they stop. Where the server has `pg_walinspect` (PostgreSQL
  15+), the WAL records of that window that touch the system's database also give the
  full-page image bytes and the index entries written (B-tree leaf inserts, including
  splits); `benchmarks/wal_per_job.py` breaks pgqueue's down by table and index.
- **How "finished" is detected** (drain), always from the system's own records:
  pgqueue `pgqueue.jobs.finished_at` of succeeded jobs; procrastinate the `succeeded` rows
  of `procrastinate_events` (`at` is the finishing transaction's `now()`); pgqueuer deletes
  finished jobs from its queue table and logs them in `pgqueuer_log` in the same statement,
  so its `created` times (status `successful`) are used; Celery keeps no record without a
  result backend (none is configured, `task_ignore_result=True`), so a `task_postrun`
  signal handler in the worker appends `time.time()` to a file opened `O_APPEND` (one small
  `os.write` per task) and the adapter waits until the file has N lines. That write is
  extra work only Celery's workers do (a few µs per task).
- **Batched outcome writes.** pgqueue and pgqueuer record finished jobs in batches, so many
  jobs share one timestamp. drain's jobs/s is therefore (jobs finished after the first
  recorded finish) ÷ (last - first finish): the first batch's work happened before the
  span began, so it is not counted in it. With 20,000 jobs the difference is under 1%.
- **CPU accounting** comes from /proc (utime+stime, in clock ticks of 10 ms). Worker CPU is
  every process in each worker's tree, with reaped children, from before the workers start
  to the last finished job, so it includes worker start-up (imports, connections): a fixed
  few hundred ms of CPU per worker process, small against 20,000 jobs but dominant in a
  quick run. Server CPU is the whole
  server: every `postgres` process plus what exited backends left in the postmaster's
  cutime/cstime; `redis-server`; or RabbitMQ's `beam.smp`. It counts anything else that
  server did meanwhile, including other databases' sessions. For Celery the broker's CPU is
  the server figure; Celery's workers do their own bookkeeping in memory.
- **Latency** includes each system's wake-up path: LISTEN/NOTIFY for pgqueue,
  procrastinate and pgqueuer; a blocking pop (Redis) or a pushed delivery (RabbitMQ) for
  Celery. The producer's clock and the task's clock are the same machine's.
- **Durability differs.** The Postgres-based systems commit each enqueue and each outcome
  to logged tables (pgqueuer installed with its default `durable` setting; its `volatile`
  and `balanced` settings use unlogged tables and would be faster). Celery's messages are
  persistent by default (RabbitMQ writes them to its message store; this Redis keeps
  nothing on disk). Results: none for Celery (no backend); pgqueue writes every succeeded
  job's return value (here null) to `job_results` in its outcome statement; procrastinate
  and pgqueuer keep no return value.
- **Commit costs differ.** Every Postgres enqueue waits for its commit (and, with the
  default `synchronous_commit=on`, for the WAL flush); a Redis LPUSH waits for Redis's
  reply (this Redis does not persist); a RabbitMQ publish without publisher confirms does
  not wait for the broker at all. enqueue-single therefore compares a durable commit with
  a network write.
- **Worker configurations** were picked with smoke runs of a few hundred jobs on this
  machine (process count 1 or 2, concurrency, prefetch, pool, batch size); they are
  constants at the top of each adapter and can be changed per run with flags, so a full
  run can re-check them. pgqueuer's workers dequeue up to --batch-size jobs per round trip
  and, with no --max-concurrent-tasks, run all of them at once.
- **pgqueuer oddities.** pgqueuer 1.6.0's `pgq run` fails at start-up with this typer
  release (its --log-level option hands a str where an enum is expected), so its workers
  are started through `pgqueuer.run()`, which is what `pgq run` calls; and its README's
  factory example (a coroutine returning a `PgQueuer`) is refused by `run()`, which wants
  an async context manager.
- **Quick runs** (`--quick`) use a few hundred jobs and one run: they check that
  everything works, and their figures mean little (a drain of 200 jobs lasts a few tens of
  milliseconds, below the precision of batched timestamps and 10 ms CPU ticks).
"""


def render(results: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> None:
    systems = [s for s in meta.get("systems", SYSTEMS) if any(
        r.get("system") == s for r in results)]
    workloads = [w for w in meta.get("workloads", common.WORKLOADS) if any(
        r.get("workload") == w for r in results)]
    facts = meta.get("machine", {})
    ok = [r for r in results if "error" not in r]
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# pgqueue and its peers, side by side", ""]
    commit = f" pgqueue's code at commit {meta['commit']}." if meta.get("commit") else ""
    lines.append(f"Generated by `python benchmarks/run.py{meta.get('argv', '')}` on "
                 f"{meta.get('date', '?')}; {meta.get('runs', '?')} run(s), interleaved."
                 f"{commit} Raw results: `{meta.get('raw', '?')}` (re-render with "
                 f"`--render-only`; scale-10m runs once whatever --runs says).")
    if meta.get("quick"):
        lines += ["", "**Quick smoke run: tiny job counts, one run. These figures only show "
                  "that the suite works; do not quote them.**"]
    lines += ["", "## Machine", ""]
    lines.append(f"- CPU: {facts.get('cpu', '?')}, {facts.get('cores', '?')} cores; RAM "
                 f"{facts.get('ram_gib', '?')} GiB; Linux {facts.get('kernel', '?')}")
    lines.append(f"- Python {facts.get('python', '?')} (pgqueue), "
                 f"{facts.get('peers_python', '?')} (peers' virtualenv)")
    servers = sorted({r["server"] for r in ok if r.get("server")})
    lines.append(f"- Servers: {', '.join(servers) or facts.get('postgres', '?')}")
    lines.append("- Packages:")
    for system in systems:
        rows = [r for r in ok if r.get("system") == system]
        if rows:
            v = rows[-1].get("version", "?")
            clients = rows[-1].get("client_versions") or {}
            extra = "".join(f", {k} {val}" for k, val in clients.items())
            name = system.split("-")[0]
            lines.append(f"  - {system}: {name} {v}{extra}")
    lines += ["", "## Results", ""]
    chart = out.parent / CHART
    if render_chart(results, systems, workloads, chart):
        lines += [f"![jobs/s per workload and latency per system]({CHART})", ""]
    lines += ["Throughput tables: higher is better, and **pgqueue ÷ system > 1 means pgqueue "
              "is faster**. Latency table: lower is better, and **system ÷ pgqueue > 1 means "
              "pgqueue is quicker**. Median over runs; min-max is the spread between runs."]
    for workload in workloads:
        rows = [r for r in results if r.get("workload") == workload]
        jobs = sorted({int(r["jobs"]) for r in rows if r.get("jobs")})
        lines += ["", f"### {workload}", "",
                  f"{WORKLOAD_TEXT.get(workload, '')} Jobs: "
                  f"{', '.join(f'{j:,}' for j in jobs) or '?'}.", ""]
        if workload == "latency":
            lines += latency_table(results, systems)
        elif workload == "scale-10m":
            lines += scale_10m_table(results)
        elif workload in PGQUEUE_ONLY:
            lines += scale_table(results, workload)
        elif workload == "many-queues":
            lines += many_queues_table(results, systems)
            lines += writes_table(results, workload, systems)
        else:
            lines += throughput_table(results, workload, systems)
            lines += writes_table(results, workload, systems)
        failed = [r for r in rows if "error" in r]
        if failed:
            lines += [""] + [f"- {r['system']} failed: "
                             f"`{r['error'].strip().splitlines()[-1][:200]}`" for r in failed]
    lines += ["", "## Configuration of each system", "",
              "Each system with its documented fast settings; the worker settings are "
              "constants at the top of each adapter (benchmarks/adapters/*_bench.py) and "
              "flags of the same name override them for one run.", ""]
    for system in systems:
        lines.append(f"**{system}**: {SYSTEM_TEXT.get(system, '')}")
        lines.append("")
        for workload in workloads:
            configs = sorted({r.get("config", "") for r in ok if r.get("system") == system
                              and r.get("workload") == workload and r.get("config")})
            for c in configs:
                lines.append(f"- {workload}: {c}")
            notes = sorted({r["note"] for r in ok if r.get("system") == system
                            and r.get("workload") == workload and r.get("note")})
            for n in notes:
                lines.append(f"  - note ({workload}): {n}")
        lines.append("")
    lines += ["## Caveats", "", CAVEATS]
    out.write_text("\n".join(lines).rstrip() + "\n")


def load(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results, meta = [], {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "meta" in row:
            meta = row["meta"]
        else:
            results.append(row)
    return results, meta


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, of: {', '.join(SYSTEMS)}")
    parser.add_argument("--workloads", default=None,
                        help=f"comma-separated, of: {', '.join(common.WORKLOADS)} "
                             f"(and {', '.join(PGQUEUE_ONLY)}, pgqueue only)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: a few hundred jobs, one run")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--dsn", default=common.DEFAULT_DSN,
                        help="maintenance DSN of the PostgreSQL server to use")
    parser.add_argument("--render-only", type=Path, metavar="FILE.jsonl",
                        help="re-render --out from saved raw results, run nothing")
    args = parser.parse_args()
    common.exit_on_sigterm()

    if args.render_only:
        saved, saved_meta = load(args.render_only)
        render(saved, saved_meta, args.out)
        print(f"wrote {args.out}")
        return

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {unknown}; known: {', '.join(SYSTEMS)}")
    if args.workloads:
        workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    else:
        workloads = [*common.WORKLOADS, *[w for w in PGQUEUE_ONLY if "pgqueue" in systems
                                          and adapter_supports("pgqueue", w)]]
    bad = [w for w in workloads if w not in common.WORKLOADS and w not in PGQUEUE_ONLY]
    if bad:
        parser.error(f"unknown workload(s) {bad}")
    runs = 1 if args.quick else args.runs

    if any(SYSTEMS[s][0] == "peers" for s in systems):
        ensure_peers_venv()
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = common.RESULTS_DIR / f"{stamp}.jsonl"
    argv = "".join(f" {a}" for a in sys.argv[1:])
    meta = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": argv, "runs": runs, "quick": args.quick, "systems": systems,
            "workloads": workloads, "raw": str(raw.relative_to(HERE.parent)),
            "machine": machine_facts(args.dsn), "commit": git_commit()}
    results: list[dict[str, Any]] = []
    t_start = time.monotonic()
    with raw.open("w") as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        for run in range(1, runs + 1):
            for workload in workloads:
                for system in systems:
                    if not adapter_supports(system, workload):
                        continue
                    if workload in ONCE and run > 1:
                        continue
                    jobs = QUICK_JOBS.get(workload) if args.quick else None
                    print(f"[run {run}/{runs}] {workload:<15} {system:<14} ", end="",
                          flush=True)
                    result = run_adapter(system, workload, jobs, args.dsn, args.quick)
                    result["run"] = run
                    results.append(result)
                    f.write(json.dumps(result) + "\n")
                    f.flush()
                    print(f"{summary(result)}  [{result['elapsed_s']:.1f} s]", flush=True)
    print(f"all done in {time.monotonic() - t_start:.0f} s; raw results in {raw}")
    render(results, meta, args.out)
    print(f"wrote {args.out}")
    failed = [r for r in results if "error" in r]
    if failed:
        print(f"{len(failed)} measurement(s) failed; see the logs in {common.LOG_DIR}",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
