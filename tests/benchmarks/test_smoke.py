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
WORKLOADS = ("enqueue-single", "enqueue-batch", "drain", "drain-io", "latency",
             "scale-finished", "scale-backlog")


@pytest.mark.timeout(180)
def test_quick_run_measures_every_workload_and_writes_the_table(pg_server: str,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--systems", "pgqueue",
         "--dsn", pg_server, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = out.read_text()
    for workload in WORKLOADS:
        assert f"### {workload}" in table
    assert "failed" not in table
    raw = sorted((ROOT / "benchmarks" / ".results").glob("*.jsonl"))[-1]
    rows = [json.loads(line) for line in raw.read_text().splitlines()[1:]]
    by_workload = {r["workload"]: r for r in rows}
    assert set(by_workload) == set(WORKLOADS)
    assert by_workload["enqueue-batch"]["jobs_per_s"] > 0
    assert by_workload["latency"]["p99_ms"] < 1000
    for drain in ("drain", "drain-io", "scale-finished", "scale-backlog"):
        assert by_workload[drain]["worker_cpu_ms_per_job"] > 0
