"""Chaos for workflows: chains, groups and chords complete while real `pgq worker`
processes are SIGKILLed, and a stalled worker's late completion changes nothing.

What is under test is the workflow trigger (migration 0009): a step is released,
cancelled or counted in the transaction of the lease-checked statement that ended
it, so a worker's death costs a rescue, never a lost or doubled release. The
workers are test_chaos.py's: a 2 s lease, a 0.5 s heartbeat, and each runs the
rescuer, so a dead worker's jobs are queued again about 2 s after it died.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import psycopg
import pytest

from pgqueue import App, JobState
from pgqueue.canvas import chain, chord, group
from tests.acceptance.test_chaos import BEAT, RESCUE_BOUND, Fleet
from tests.conftest import count, wait_for

MEMBERS, MEMBER_SECONDS = 1000, 0.2  # each of the group and the chord
STEPS, STEP_SECONDS = 10, 1.0  # the chain


@pytest.fixture
def canvas(dsn: str) -> Iterator[App]:
    """The producer, with the canvas tasks registered (signatures are built from them)."""
    from tests.tasks_app import register, register_canvas

    app = App(dsn)
    register(app)
    register_canvas(app)
    yield app
    app.close()


def _create_runs(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:  # the shape record_once creates
        conn.execute("CREATE TABLE public.runs (key text, value jsonb)")


def _runs(dsn: str, key: str) -> list[Any]:
    with psycopg.connect(dsn) as conn:
        return [v for (v,) in conn.execute("SELECT value FROM public.runs WHERE key = %s",
                                           (key,))]


def _states(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute(
            "SELECT state::text, count(*) FROM pgqueue.jobs GROUP BY 1").fetchall())


def _unfinished_workflows(dsn: str) -> int:
    return count(dsn, "SELECT count(*) FROM pgqueue.workflow_status WHERE NOT finished")


def _holder(dsn: str, job_id: int) -> int | None:
    """Pid of the worker running the job, if it is running."""
    return count(dsn, "SELECT w.pid FROM pgqueue.jobs j JOIN pgqueue.workers w "
                      "ON w.id = j.worker_id WHERE j.id = %s AND j.state = 'running'",
                 job_id) or None


def _in_logs(fleet: Fleet, text: str) -> int:
    return sum(fleet.log(p).count(text) for p in fleet.procs)


def _chain_ran_in_order(dsn: str, ids: list[int]) -> bool:
    """Each step's last attempt started after the step before it finished."""
    with psycopg.connect(dsn) as conn:
        rows = {i: (s, f) for i, s, f in conn.execute(
            "SELECT id, started_at, finished_at FROM pgqueue.jobs WHERE id = ANY(%s)", (ids,))}
    return all(rows[b][0] >= rows[a][1] for a, b in pairwise(ids))


def _lineage(r: Any) -> list[int]:
    """A chain's job ids, first step first."""
    ids = []
    while r is not None:
        ids.append(r.id)
        r = r.parent
    return ids[::-1]


@pytest.mark.timeout(180)
def test_chain_group_and_chord_complete_while_a_worker_is_sigkilled_every_2s(
        canvas, dsn, tmp_path):
    _create_runs(dsn)
    slow_add, record_result = canvas.tasks["slow_add"], canvas.tasks["record_result"]
    steps = chain(slow_add.s(0, 1, STEP_SECONDS),
                  *(slow_add.s(1, STEP_SECONDS) for _ in range(STEPS - 1))).delay()
    members = group(slow_add.s(i, i, MEMBER_SECONDS) for i in range(MEMBERS)).delay()
    callback = chord([slow_add.s(i, 1, MEMBER_SECONDS) for i in range(MEMBERS)],
                     record_result.s("callback")).delay()
    total = STEPS + 2 * MEMBERS + 1
    fleet = Fleet(dsn, tmp_path, "--concurrency", "8")
    rng = random.Random()
    began = time.monotonic()
    for _ in range(4):
        fleet.start()
    try:
        next_kill = began + rng.uniform(1.5, 2.5)
        while _unfinished_workflows(dsn):
            assert time.monotonic() - began < 120, f"not done in 120 s: {_states(dsn)}"
            if time.monotonic() >= next_kill:
                fleet.kill(rng.choice(fleet.alive()))
                fleet.start()
                next_kill = time.monotonic() + rng.uniform(1.5, 2.5)
            time.sleep(0.05)
        took = time.monotonic() - began
        assert len(fleet.alive()) == 4, "a worker that was not killed died"
    finally:
        codes = fleet.stop()
    assert codes == [0] * 4

    assert steps.get(timeout=5) == STEPS
    assert _chain_ran_in_order(dsn, _lineage(steps))
    assert members.get(timeout=5) == [2 * i for i in range(MEMBERS)]  # in member order
    expected = [i + 1 for i in range(MEMBERS)]
    assert callback.get(timeout=5) == expected
    assert callback.parent.get(timeout=5) == expected
    # Released once, with the whole header's results: one completed run.
    assert _runs(dsn, "callback") == [expected]
    assert _states(dsn) == {"succeeded": total}  # nothing running, queued or waiting
    assert count(dsn, "SELECT count(*) FROM pgqueue.workflow_groups "
                      "WHERE succeeded <> size OR failed <> 0 OR finished_at IS NULL") == 0

    kills = len(fleet.killed)
    rescues = count(dsn, "SELECT sum(rescues) FROM pgqueue.jobs")
    with psycopg.connect(dsn) as conn:
        rescued_chain, rescued_callback = conn.execute(
            "SELECT sum(rescues) FILTER (WHERE id = ANY(%s)), "
            "sum(rescues) FILTER (WHERE id = %s) FROM pgqueue.jobs",
            (_lineage(steps), callback.id)).fetchone()
    deadlocks = _in_logs(fleet, "deadlock detected")
    fallbacks = _in_logs(fleet, "recording them one by one")
    print(f"\ncanvas chaos: a chain of {STEPS} x {STEP_SECONDS}s, a group and a chord of "
          f"{MEMBERS} x {MEMBER_SECONDS}s ({total} jobs) done in {took:.1f}s by 4 workers x 8 "
          f"with {kills} SIGKILLs; rescues={rescues} (chain steps {rescued_chain}, chord "
          f"callback {rescued_callback}); callback runs={len(_runs(dsn, 'callback'))}; "
          f"finish batches that deadlocked={deadlocks}, recorded one by one={fallbacks}")
    assert kills >= 5, f"done in {took:.1f}s, too fast to kill much"
    assert rescues > 0
    # Batches with members of both groups take the group locks in one order (finish_jobs).
    assert deadlocks == 0


@pytest.mark.timeout(120)
def test_a_stalled_members_late_completion_is_refused_and_the_callback_runs_once(
        canvas, dsn, tmp_path):
    _create_runs(dsn)
    held, record_result = canvas.tasks["held"], canvas.tasks["record_result"]
    fleet = Fleet(dsn, tmp_path, "--concurrency", "1")
    a = fleet.start()
    try:
        assert wait_for(lambda: fleet.serving(a), timeout=20)
        c = chord([held.s(f"member {i}", 3.0) for i in range(3)],
                  record_result.s("callback")).delay()
        first, *others = c.parent.results
        assert wait_for(lambda: _holder(dsn, first.id) == a.pid, timeout=10)
        assert wait_for(lambda: _runs(dsn, "member 0") == [a.pid], timeout=5)  # caught mid-run
        a.send_signal(signal.SIGSTOP)  # it can't heartbeat: its lease runs out
        b = fleet.start()
        # B runs the other two, rescues the first once A's lease expired, runs it, and the
        # last of them to end releases the callback.
        assert c.get(timeout=3.0 + RESCUE_BOUND + 3.0 + 10) == [b.pid] * 3
        assert _runs(dsn, "member 0") == [a.pid, b.pid]
        assert _runs(dsn, "callback") == [[b.pid] * 3]
        a.send_signal(signal.SIGCONT)
        # A wakes with its sleep over and offers its outcome: refused by the lease.
        assert wait_for(lambda: f"lease lost for jobs [{first.id}]" in fleet.log(a),
                        timeout=10), fleet.log(a)
        time.sleep(2 * BEAT)  # and anything else A might still try
        assert _runs(dsn, "callback") == [[b.pid] * 3]  # the callback ran once
        info = first.info()
        assert (info.state, info.attempts, first.get(timeout=1)) == (JobState.SUCCEEDED, 2,
                                                                     b.pid)
        assert [r.info().attempts for r in others] == [1, 1]
        assert count(dsn, "SELECT count(*) FROM pgqueue.job_errors WHERE job_id = %s "
                          "AND attempt = 1 AND type = 'WorkerLost'", first.id) == 1
        assert c.get(timeout=1) == [b.pid] * 3 and c.info().attempts == 1
        assert count(dsn, "SELECT succeeded FROM pgqueue.workflow_groups WHERE id = %s",
                     c.parent.id) == 3
        assert _states(dsn) == {"succeeded": 4}
        assert a.poll() is None and b.poll() is None
    finally:
        codes = fleet.stop()
    assert codes == [0, 0]
