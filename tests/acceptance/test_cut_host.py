"""Many hosts, one cut off: three worker hosts reach Postgres over links of their own,
and one host's link goes down mid-drain for longer than the lease.

The hosts are network namespaces (see tests/acceptance/netns.py), each running a
real ``pgq worker`` whose PGQ_DSN is Postgres's address on that host's link,
with a 4 s lease and a 1 s heartbeat. While 300 jobs of 0.2 s drain, one host's
network card is set down: its connections stall (TCP waits; nothing errors).
What must be true:

- **rescued**: the jobs it held are running on the other hosts within
  lease + one sweep (+ a margin for a loaded machine), counted from the cut;
- **refused**: once the link is back, the cut worker's stale completions of those
  jobs reach Postgres and are refused by the lease check (it logs "lease lost
  for jobs [...]"); the outcome kept is the rescuer's;
- **nothing lost**: every job ends succeeded with its own result, each with one
  recorded outcome; the only jobs that ran twice are the ones the cut host held;
- **resumes**: the cut worker serves again: jobs on a queue that only it serves,
  enqueued during the cut, are done soon after the link returns.

The figures (rescue time, lost, refused, executions, resume time) are printed
(``pytest -s``) and written as JSON to ``$PGQ_NETNS_REPORT`` when it is set. The
test skips, saying why, where network namespaces can't be made (not root, no
``ip``, no permission).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqueue import App
from pgqueue.migrate import migrate_dsn
from tests.acceptance.netns import Host, Network, Postgres, unavailable
from tests.conftest import ROOT, TESTS, until

LEASE, BEAT = 4.0, 1.0
# The last heartbeat before the cut extended the lease to at most LEASE from then;
# one sweep (every BEAT) after expiry it is queued again and claimed at once
# (the rescue NOTIFYs). The margin is for two busy cores.
RESCUE_BOUND = LEASE + BEAT + 2.0
RESUME_BOUND = 15.0  # from the link's return to the cut worker's first new job done
JOBS, SECONDS, CONCURRENCY, PRIVATE = 300, 0.2, 4, 5
CUT = 1  # the host whose link goes down


@pytest.fixture
def network() -> Iterator[Network]:
    reason = unavailable()
    if reason:
        pytest.skip(f"can't build worker hosts as network namespaces: {reason}")
    net = Network(3)
    try:
        yield net
    finally:
        net.remove()


@pytest.fixture
def server(network: Network) -> Iterator[Postgres]:
    pg = Postgres([h.server_address for h in network.hosts],
                  [str(h.subnet) for h in network.hosts])
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE pgq_cut")
        migrate_dsn(pg.dsn(dbname="pgq_cut"), "pgqueue")
        yield pg
    finally:
        pg.stop()


class Hosts:
    """One `pgq worker` per namespace; each logs to its own file."""

    def __init__(self, net: Network, pg: Postgres, work: Path) -> None:
        self.net, self.pg, self.work = net, pg, work
        self.procs: dict[int, subprocess.Popen[str]] = {}
        self.ids: dict[int, int] = {}  # host -> worker id

    def start(self, host: Host) -> None:
        env = {**os.environ, "PGQ_DSN": self.pg.dsn(host.server_address, "pgq_cut"),
               "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}", "PGQ_NETNS_HOST": f"h{host.n}",
               "PGQ_NETNS_RECORDS": str(self.work)}
        env.pop("PGQ_SCHEMA", None)
        with open(self.log_path(host.n), "w") as log:
            self.procs[host.n] = subprocess.Popen(
                [*self.net.exec_prefix(host), sys.executable, "-m", "pgqueue.cli", "worker",
                 "--app", "netns_app:app", "--queues", f"default,h{host.n}",
                 "--concurrency", str(CONCURRENCY), "--lease-seconds", str(LEASE),
                 "--heartbeat-interval", str(BEAT), "--shutdown-timeout", "5"],
                env=env, cwd=str(ROOT), text=True, stdout=log, stderr=subprocess.STDOUT)

    def log_path(self, n: int) -> Path:
        return self.work / f"worker-h{n}.log"

    def log(self, n: int) -> str:
        return self.log_path(n).read_text()

    def wait_serving(self) -> None:
        for n, proc in self.procs.items():
            def serving(n: int = n, proc: subprocess.Popen[str] = proc) -> Any:
                return proc.poll() is not None or re.search(
                    r"\(id (\d+)\) serving queues", self.log(n))

            found = until(serving, timeout=30)
            assert proc.poll() is None, f"worker h{n} exited:\n{self.log(n)}"
            self.ids[n] = int(found.group(1))

    def stop(self) -> dict[int, int | None]:
        codes: dict[int, int | None] = {}
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for n, proc in self.procs.items():
            try:
                codes[n] = proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes[n] = None
        return codes


def rows(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def test_a_cut_off_host_is_rescued_refused_and_resumes(
        network: Network, server: Postgres, tmp_path: Path) -> None:
    dsn = server.dsn(dbname="pgq_cut")
    hosts = Hosts(network, server, tmp_path)
    producer = App(dsn)
    from tests.netns_app import register

    register(producer)
    step = producer.tasks["netns.step"]
    cut = network.hosts[CUT]
    try:
        for host in network.hosts:
            hosts.start(host)
        hosts.wait_serving()
        cut_id = hosts.ids[CUT]
        figures = drain_through_a_cut(dsn, network, hosts, cut, cut_id, step)
        codes = hosts.stop()
    finally:
        network.restore(cut)  # in case the test failed during the cut
        hosts.stop()
        producer.close()
    assert codes == {0: 0, 1: 0, 2: 0}, [hosts.log(n) for n in codes]
    check_outcomes(dsn, hosts, cut_id, figures)


def drain_through_a_cut(dsn: str, network: Network, hosts: Hosts, cut: Host, cut_id: int,
                        step: Any) -> dict[str, Any]:
    step.map([(i, SECONDS) for i in range(JOBS)])

    def holding() -> list[int]:
        return [r[0] for r in rows(dsn, "SELECT id FROM pgqueue.jobs WHERE state = 'running' "
                                        "AND worker_id = %s", cut_id)]

    # Mid-drain: every host has finished jobs and the one to be cut holds some.
    until(lambda: len(rows(dsn, "SELECT DISTINCT worker_id FROM pgqueue.jobs WHERE "
                                "state = 'succeeded'")) == 3 and len(holding()) >= 2,
          timeout=30, interval=0.02)
    network.cut(cut)
    cut_at = time.monotonic()
    time.sleep(0.5)  # anything already on the wire has landed (or been dropped)
    held = holding()
    assert held, "the cut host held no job when its link went down"
    private = producer_send_private(step, cut)

    def rescued() -> bool:
        moved = rows(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s) AND "
                          "worker_id <> %s AND state IN ('running', 'succeeded')",
                     held, cut_id)
        return int(moved[0][0]) == len(held)

    until(rescued, timeout=RESCUE_BOUND + 5, interval=0.05)
    rescue_s = time.monotonic() - cut_at
    # Keep the link down a little past the rescue, and at least past lease + sweep.
    time.sleep(max(0.5, LEASE + BEAT - (time.monotonic() - cut_at)))
    network.restore(cut)
    restored_at = time.monotonic()
    restored_at_db = rows(dsn, "SELECT now()")[0][0]
    cut_s = restored_at - cut_at

    def first_private_done() -> bool:
        done = rows(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s) AND "
                         "state = 'succeeded'", private)
        return int(done[0][0]) > 0

    until(first_private_done, timeout=RESUME_BOUND + 30, interval=0.05)
    resume_s = time.monotonic() - restored_at
    until(lambda: rows(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state NOT IN "
                            "('succeeded', 'failed', 'cancelled')")[0][0] == 0,
          timeout=60, interval=0.1)
    # The refusals are logged once the cut worker's stale writes come back.
    until(lambda: set(held) <= refused_ids(hosts.log(CUT)), timeout=20, interval=0.1)
    return {"jobs": JOBS + PRIVATE, "held_at_cut": len(held), "held": held,
            "private": private, "restored_at_db": restored_at_db, "cut_s": round(cut_s, 2),
            "rescue_s": round(rescue_s, 2), "resume_s": round(resume_s, 2),
            "rescue_bound_s": RESCUE_BOUND, "lease_s": LEASE, "heartbeat_s": BEAT}


def producer_send_private(step: Any, cut: Host) -> list[int]:
    """Jobs on the queue only the cut host serves: proof that it serves again."""
    results = step.app.enqueue_many([step.signature((1000 + i, SECONDS), queue=f"h{cut.n}")
                                     for i in range(PRIVATE)])
    return [r.id for r in results]


def refused_ids(log: str) -> set[int]:
    return {int(i) for found in re.findall(r"lease lost for jobs \[([\d, ]*)\]", log)
            for i in found.split(",") if i.strip()}


def executions(work: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(work.glob("h*"))
            for line in path.read_text().splitlines()]


def check_outcomes(dsn: str, hosts: Hosts, cut_id: int, figures: dict[str, Any]) -> None:
    held, private = set(figures["held"]), set(figures["private"])
    jobs = {r[0]: r[1:] for r in rows(
        dsn, "SELECT j.id, j.state::text, j.worker_id, j.attempts, r.value, j.args->>0 "
             "FROM pgqueue.jobs j LEFT JOIN pgqueue.job_results r ON r.job_id = j.id")}
    lost = [i for i, (state, *_rest) in jobs.items() if state != "succeeded"]
    refused = refused_ids(hosts.log(CUT))
    runs = executions(hosts.work)
    per_job = Counter(r["job"] for r in runs)
    after = figures["restored_at_db"]
    resumed = rows(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE worker_id = %s AND "
                        "state = 'succeeded' AND finished_at > %s", cut_id, after)[0][0]
    figures.update(lost=len(lost), refused=len(refused), executions=len(runs),
                   executed_twice=sum(1 for c in per_job.values() if c > 1),
                   cut_worker_jobs_after_restore=int(resumed))
    report(figures)

    assert len(jobs) == JOBS + PRIVATE
    assert not lost, f"jobs not succeeded: {[(i, jobs[i]) for i in lost]}"
    # Each result is the job's own argument: no outcome landed on another job.
    assert all(value == int(arg) for _s, _w, _a, value, arg in jobs.values())
    # The held jobs' outcomes are the rescuers': a later attempt, on another worker,
    # after one recorded loss of the cut worker's attempt (and no other error).
    for i in held:
        _state, worker, attempts, *_ = jobs[i]
        assert worker != cut_id and attempts >= 2, (i, jobs[i])
    errors = rows(dsn, "SELECT job_id, type FROM pgqueue.job_errors")
    assert sorted(errors) == sorted((i, "WorkerLost") for i in held), errors
    # Every stale completion of the cut worker was refused, and nobody else's was.
    assert refused == held, (refused, held, hosts.log(CUT))
    assert all(not refused_ids(hosts.log(n)) for n in hosts.procs if n != CUT)

    assert set(per_job) == set(jobs), "a job succeeded that never ran"
    assert {i for i, c in per_job.items() if c > 1} <= held  # only the held ran twice
    by_host: dict[int, set[str]] = defaultdict(set)
    for r in runs:
        by_host[r["job"]].add(r["host"])
    assert all(by_host[i] == {f"h{CUT}"} for i in private)
    assert figures["rescue_s"] <= RESCUE_BOUND, figures
    assert figures["resume_s"] <= RESUME_BOUND, figures


def report(figures: dict[str, Any]) -> None:
    shown = {k: v for k, v in figures.items()
             if k not in ("held", "private", "restored_at_db")}
    print(f"\ncut host: {json.dumps(shown)}")
    path = os.environ.get("PGQ_NETNS_REPORT")
    if path:
        Path(path).write_text(json.dumps(shown, indent=2) + "\n")
