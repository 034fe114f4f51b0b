"""The benchmark suite still runs: pgqueue's side of it, with a few jobs per workload.

The full side-by-side run (peers in their own virtualenv, 3 runs of every
workload) is not a CI test; this only keeps `benchmarks/` from rotting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = ("enqueue-single", "enqueue-batch", "drain", "drain-sync", "drain-io",
             "drain-io-sync", "many-queues", "latency", "scale-finished", "scale-backlog",
             "scale-10m")
DRAINS = ("drain", "drain-sync", "drain-io", "drain-io-sync", "many-queues",
          "scale-finished", "scale-backlog", "scale-10m")


@pytest.mark.timeout(240)
def test_quick_run_measures_every_workload_and_writes_the_table(pg_server: str,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--systems", "pgqueue",
         "--dsn", pg_server, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = out.read_text()
    for workload in WORKLOADS:
        assert f"### {workload}" in table
    assert "failed" not in table
    # the chart is written beside the table, as a PNG, and shown in it
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "![" in table and "(results.png)" in table
    raw = sorted((ROOT / "benchmarks" / ".results").glob("*.jsonl"))[-1]
    rows = [json.loads(line) for line in raw.read_text().splitlines()[1:]]
    by_workload = {r["workload"]: r for r in rows}
    assert set(by_workload) == set(WORKLOADS)
    assert by_workload["enqueue-batch"]["jobs_per_s"] > 0
    assert by_workload["latency"]["p99_ms"] < 1000
    for drain in DRAINS:
        result = by_workload[drain]
        assert result["worker_cpu_ms_per_job"] > 0
        # every job is claimed and finished: two updates of its row, and WAL for them
        assert result["wal_bytes_per_job"] > 0
        assert result["table_writes"]["pgqueue.jobs"]["n_tup_upd"] >= 2 * result["jobs"]
    many = by_workload["many-queues"]
    assert many["queues"] == 100 and many["one_queue"]["worker_cpu_ms_per_job"] > 0
    scale = by_workload["scale-10m"]
    assert scale["prefill"] == 2_000 and scale["prefill_s"] > 0
    assert scale["latency"]["p99_ms"] < 1000 and scale["empty"]["latency"]["p99_ms"] < 1000
    assert "### scale-10m" in table and "2,000 finished jobs kept" in table
