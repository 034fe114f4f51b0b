"""Workflow members end under their group's row lock: batches must take those locks in
one order, or two workers' finish statements deadlock. Seen with 4 workers draining 2,000
small chords whose members take random times: a few batches a run logged "recording 70
outcomes failed (DeadlockDetected ...); recording them one by one", each after a 1 s
wait (deadlock_timeout)."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg

from pgqueue import JobState, statements
from pgqueue.canvas import group
from pgqueue.client import run
from pgqueue.job import ClaimedJob
from pgqueue.statements import Finish
from tests.conftest import count, wait_for

# The order in which a finish statement meets its batch's rows is its plan's: the batch's
# own (a loop over the outcomes, each found by id), or the running rows' index (by lease
# expiry), or where the rows lie in the table. Forced to one of the first two, which the
# test makes agree.
BY_BATCH_OR_LEASE = "SET enable_seqscan = off; SET enable_bitmapscan = off"


def _waiting_on_locks(dsn: str) -> int:
    return count(dsn, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                      "current_database() AND wait_event_type = 'Lock'")


def test_batches_ending_members_of_two_groups_in_opposite_orders_do_not_deadlock(app, dsn):
    add = app.tasks["add"]
    g1 = group(add.s(1, 1), add.s(2, 2)).delay()
    g2 = group(add.s(3, 3), add.s(4, 4)).delay()
    claimed = {j.id: j for j in app.client.execute(
        statements.claim("pgqueue", 1, ["default"], 10, 30))}
    a1, a2 = (claimed[r.id] for r in g1.results)
    b1, b2 = (claimed[r.id] for r in g2.results)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n, job in enumerate((a1, b1, b2, a2), start=1):
            conn.execute("UPDATE pgqueue.jobs SET lease_expires_at = now() + %s * interval "
                         "'1 minute' WHERE id = %s", (n, job.id))
    errors: list[BaseException] = []

    def finish(jobs: list[ClaimedJob]) -> None:
        records = [Finish(j.id, j.lease, JobState.SUCCEEDED,
                          value_json=str(sum(json.loads(j.args_json))),
                          in_workflow=j.in_workflow, queue=j.queue)
                   for j in jobs]
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(BY_BATCH_OR_LEASE)
                assert run(conn, statements.finish("pgqueue", 1, records)) == {
                    j.id for j in jobs}
        except BaseException as exc:  # re-raised by the test below
            errors.append(exc)

    batches: list[Any] = []
    with psycopg.connect(dsn) as blocker:  # holds the first group until both batches wait
        blocker.execute("SELECT 1 FROM pgqueue.workflow_groups WHERE id = %s FOR UPDATE",
                        (g1.id,))
        for n, jobs in enumerate(([a1, b1], [b2, a2]), start=1):
            batches.append(threading.Thread(target=finish, args=(jobs,)))
            batches[-1].start()
            assert wait_for(lambda n=n: _waiting_on_locks(dsn) == n, timeout=10)
    for t in batches:
        t.join(30)
    assert not errors, errors
    assert g1.get(timeout=5) == [2, 4] and g2.get(timeout=5) == [6, 8]
