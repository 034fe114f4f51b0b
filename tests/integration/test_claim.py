"""Claim order (priority, then oldest, eta respected), the claim index, and fencing."""

import datetime as dt
import time

import psycopg

from pgqueue import statements
from pgqueue.job import JobState
from pgqueue.statements import Finish


def claim(app, worker_id=1, limit=10, queues=("default",)):
    return app.client.execute(statements.claim("pgqueue", worker_id, queues, limit, 30))


def test_priority_then_oldest(app):
    add = app.tasks["add"]
    low = add.apply_async(args=(0, 0), priority=0)
    high = add.apply_async(args=(0, 0), priority=9)
    low2 = add.apply_async(args=(0, 0), priority=0)
    mid = add.apply_async(args=(0, 0), priority=5)
    assert [j.id for j in claim(app)] == [high.id, mid.id, low.id, low2.id]


def test_claim_respects_the_batch_limit_and_queues(app):
    for i in range(5):
        app.tasks["add"].delay(i, i)
    app.tasks["send_email"].delay("a@b.c")
    assert len(claim(app, limit=3)) == 3
    assert len(claim(app, limit=10)) == 2
    assert [j.task for j in claim(app, queues=("emails",))] == ["send_email"]
    assert claim(app, queues=("default", "emails")) == []


def test_eta_and_countdown_are_respected(app):
    add = app.tasks["add"]
    later = add.apply_async(args=(1, 1), countdown=1.0)
    past = add.apply_async(args=(1, 1), eta=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert [j.id for j in claim(app)] == [past.id]
    time.sleep(1.1)
    assert [j.id for j in claim(app)] == [later.id]


def test_claim_sets_a_lease_and_counts_the_attempt(app, dsn):
    r = app.tasks["add"].delay(1, 2)
    (job,) = claim(app, worker_id=7)
    assert job.attempt == 1 and job.lease is not None
    with psycopg.connect(dsn) as conn:
        state, worker, expires = conn.execute(
            "SELECT state, worker_id, lease_expires_at - now() FROM pgqueue.jobs "
            "WHERE id = %s", (r.id,)).fetchone()
    assert state == "running" and worker == 7
    assert dt.timedelta(seconds=25) < expires <= dt.timedelta(seconds=30)


def test_finish_with_a_stale_lease_changes_nothing(app):
    import uuid

    r = app.tasks["add"].delay(1, 2)
    (job,) = claim(app)
    stale = Finish(job.id, uuid.uuid4(), JobState.SUCCEEDED, value_json="99", queue=job.queue)
    assert app.client.execute(statements.finish("pgqueue", 1, [stale])) == set()
    assert r.state is JobState.RUNNING
    good = Finish(job.id, job.lease, JobState.SUCCEEDED, value_json="3", queue=job.queue)
    assert app.client.execute(statements.finish("pgqueue", 1, [good])) == {job.id}
    assert r.get(timeout=1) == 3
    # A duplicate of the same write (a retried statement) is refused too.
    assert app.client.execute(statements.finish("pgqueue", 1, [good])) == set()


def test_claim_query_uses_the_partial_index(app, dsn):
    add = app.tasks["add"]
    for i in range(300):
        add.delay(i, i)
    with psycopg.connect(dsn) as conn:
        conn.execute("ANALYZE pgqueue.jobs")
        conn.execute("SET enable_seqscan = off")  # small table: make the planner show its hand
        q = statements.claim("pgqueue", 1, ["default"], 10, 30)
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + q.query.text, q.params))
    assert "jobs_claim_idx" in plan, plan


def test_the_queue_table_is_vacuumed_early_and_unthrottled(dsn):
    """0005: a vacuum starts after 1% of jobs is dead (not 20%), without cost delay."""
    with psycopg.connect(dsn) as conn:
        (options,) = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'pgqueue.jobs'::regclass").fetchone()
    assert "autovacuum_vacuum_scale_factor=0.01" in options
    assert "autovacuum_vacuum_cost_delay=0" in options
