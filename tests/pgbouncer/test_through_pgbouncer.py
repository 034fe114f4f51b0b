"""The suite's own core, resilience and scheduler tests pass through PgBouncer.

A second pytest runs the chosen files with ``PGQ_TEST_PGBOUNCER=1``: every
``dsn``, ``app`` and ``pgq`` process there goes through a real PgBouncer 1.18 in
transaction mode, with the direct DSN as PGQ_LISTEN_DSN and prepared statements
off (see tests/conftest.py). Chosen to fit the CI budget (~2 minutes):

- core: enqueue (in and out of transactions), claim (order, leases, batches),
  worker (results, errors, heartbeats);
- resilience: rescue of expired leases, retries and backoff, time limits,
  cancel, shutdown releasing unfinished jobs, atomic tasks; and from the chaos
  file the two short ones (a SIGKILLed worker's job claimed again within lease +
  two beats; a stalled worker can't overwrite its successor);
- scheduler: leadership and take-over on the direct connection, ticks, pause,
  resume, trigger.

Left out: the long chaos drains and ``test_beat.py`` (minutes each; they pass
through the bouncer but cost more than the budget), and files whose subject is
the direct connection itself (killing producers' backends by application_name,
LISTEN counts per backend), and the two below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.pgbouncer import bouncer

CHOSEN = [
    "tests/integration/test_enqueue.py",
    "tests/integration/test_claim.py",
    "tests/integration/test_worker.py",
    "tests/integration/test_resilience.py",
    "tests/integration/test_scheduler.py",
    "tests/acceptance/test_chaos.py::test_a_sigkilled_workers_job_is_claimed_again_within_lease_plus_two_beats",
    "tests/acceptance/test_chaos.py::test_a_stalled_worker_cannot_overwrite_the_attempt_that_replaced_it",
]

# Not about connections, and among the slowest: the claim's EXPLAIN, and child
# processes crashing (their env carries PGQ_PREPARED_STATEMENTS; atomic tasks in
# processes still run here).
LEFT_OUT = ["test_claim_query_uses_the_partial_index",
            "test_process_pool_limits_crashes_and_recovery"]


@pytest.mark.timeout(400)
def test_core_resilience_and_scheduler_tests_pass_through_pgbouncer(tmp_path: Path) -> None:
    if bouncer.binary() is None:
        pytest.skip(f"pgbouncer is not installed: {bouncer.INSTALL_HINT}")
    report = tmp_path / "logins"
    env = {**os.environ, "PGQ_TEST_PGBOUNCER": "1", "PGQ_TEST_PGBOUNCER_REPORT": str(report)}
    env.pop("PGQ_LISTEN_DSN", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CHOSEN,
         "-k", " and ".join(f"not {name}" for name in LEFT_OUT)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=380)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    summary = re.search(r"(\d+) passed", run.stdout)
    # The summary's count, not the word: a test's own name may hold "failed".
    failed = re.search(r"\b(\d+) (failed|errors?)\b", run.stdout)
    assert summary and int(summary.group(1)) >= 50 and failed is None, out[-3000:]
    logins = int(report.read_text())  # the bouncer's log: it really went through it
    assert logins >= 100, out[-3000:]
    print(f"\nthrough PgBouncer: {summary.group(0)}, {logins} client logins")
