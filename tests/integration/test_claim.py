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


# -- many queues: read first, lock after -----------------------------------------------

def _enqueue(dsn, queue, n, priority=0):
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, kwargs, priority) "
            "SELECT %s, 'add', '[1, 1]', '{}', %s FROM generate_series(1, %s) "
            "RETURNING id", (queue, priority, n)).fetchall()
    return [r[0] for r in rows]


def test_many_queues_claim_the_best_overall_even_beyond_a_queues_share(app, dsn):
    # 8 queues and a batch of 4: each queue's first read is 2 rows (3 x 4 / 8, rounded up), so
    # the 4 best, all in one queue, are found only by reading that queue further.
    queues = [f"mq{i}" for i in range(8)]
    for q in queues[1:]:
        _enqueue(dsn, q, 3)
    best = _enqueue(dsn, queues[0], 10, priority=5)
    assert [j.id for j in claim(app, limit=4, queues=queues)] == best[:4]
    assert [j.id for j in claim(app, limit=4, queues=queues)] == best[4:8]
    got = claim(app, limit=30, queues=queues)
    assert [j.id for j in got[:2]] == best[8:] and len(got) == 2 + 7 * 3


def test_many_queues_order_matches_the_one_queue_rule(app, dsn):
    # Spread unevenly, by priority then age then id, as one queue would order them.
    queues = [f"mo{i}" for i in range(5)]
    ids: list[tuple[int, int]] = []  # (priority, id)
    for i, q in enumerate(queues):
        for p in (0, 3, 1):
            ids += [(p, j) for j in _enqueue(dsn, q, 2 + 3 * i, priority=p)]
    want = [j for _, j in sorted(ids, key=lambda t: (-t[0], t[1]))]
    got: list[int] = []
    while batch := claim(app, limit=7, queues=queues):
        got += [j.id for j in batch]
    assert got == want


def test_two_claims_at_once_on_many_queues_share_the_jobs(app, dsn):
    queues = [f"mc{i}" for i in range(6)]
    for q in queues:
        _enqueue(dsn, q, 10)
    first = statements.claim("pgqueue", 1, queues, 8, 30)
    with psycopg.connect(dsn) as holder:  # a claim still in flight: its locks held
        held = {r[0] for r in holder.execute(first.query.text, first.params).fetchall()}
        assert len(held) == 8
        # The other claim's best 2 x 4 are exactly the 8 locked: it skips them, and
        # takes 4 others rather than none.
        other = [j.id for j in claim(app, limit=4, queues=queues)]
        assert len(other) == 4 and not held & set(other)
        holder.rollback()
    assert len(claim(app, limit=100, queues=queues)) == 60 - 4


def test_many_queues_skip_paused_queues_and_tasks_under_a_limit(app, dsn):
    queues = ["mp0", "mp1", "mp2"]
    for q in queues:
        _enqueue(dsn, q, 3)
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO pgqueue.queues (name, paused) VALUES ('mp1', true)")
        conn.execute("UPDATE pgqueue.jobs SET task = 'limited' WHERE id = "
                     "(SELECT min(id) FROM pgqueue.jobs WHERE queue = 'mp2')")
    q = statements.claim("pgqueue", 1, queues, 10, 30, skip_tasks=["limited"])
    got = app.client.execute(q)
    assert sorted(j.queue for j in got) == ["mp0"] * 3 + ["mp2"] * 2


def test_many_queues_with_priority_aging(app, dsn):
    # Aging lifts a job over the levels above it in its own queue (see claim_jobs).
    (other,) = _enqueue(dsn, "ma0", 1, priority=2)
    (fresh,) = _enqueue(dsn, "ma1", 1, priority=3)
    with psycopg.connect(dsn) as conn:
        (old,) = conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, kwargs, run_at) VALUES "
            "('ma1', 'add', '[]', '{}', now() - interval '10 minutes') RETURNING id").fetchone()
    q = statements.claim("pgqueue", 1, ["ma0", "ma1"], 1, 30, aging=60.0)
    assert [j.id for j in app.client.execute(q)] == [old]  # 0 + 10 levels beats 3
    assert [j.id for j in app.client.execute(q)] == [fresh]
    assert [j.id for j in app.client.execute(q)] == [other]
