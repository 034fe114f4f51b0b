"""Priority aging: a waiting job's effective priority rises with its wait, so none starves."""

from __future__ import annotations

import threading
import time

import psycopg

from pgqueue import statements
from tests.conftest import running_worker


def _claim(app, limit=1, aging=0.0, cap=100):
    return app.client.execute(statements.claim("pgqueue", 1, ["default"], limit, 30, (),
                                               aging, cap))


def test_an_old_job_catches_up_with_higher_priorities(app, dsn):
    add = app.tasks["add"]
    old = add.apply_async((0, 0), priority=0)
    for i in range(3):
        add.apply_async((i, i), priority=5)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgqueue.jobs SET run_at = now() - interval '10 s' WHERE id = %s",
                     (old.id,))
    assert _claim(app, aging=0.0)[0].id != old.id  # by priority alone
    assert _claim(app, aging=1.0)[0].id == old.id  # 0 + 10 levels >= 5
    # the cap bounds the rise: 0 + 3 < 5, the old one keeps waiting
    add.apply_async((9, 9), priority=0)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgqueue.jobs SET run_at = now() - interval '10 s' "
                     "WHERE state = 'queued' AND priority = 0")
    claimed = _claim(app, limit=1, aging=1.0, cap=3)
    assert claimed[0].args_json != "[9, 9]"


def test_the_aging_claim_stays_on_the_index(app, dsn):
    add = app.tasks["add"]
    for i in range(300):
        add.apply_async((i, i), priority=i % 4)
    with psycopg.connect(dsn) as conn:
        conn.execute("ANALYZE pgqueue.jobs")
        conn.execute("SET enable_seqscan = off")
        q = statements.claim("pgqueue", 1, ["default"], 10, 30, (), 60.0, 100)
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + q.query.text, q.params))
    assert "jobs_claim_idx" in plan and "Seq Scan on jobs" not in plan, plan


def test_a_low_priority_job_is_not_starved_by_a_stream(app, dsn):
    """One worker slot, a job at priority 0, then a stream at priority 4 that never
    runs dry: with 0.5 s a level, the old job starts within about 4 x 0.5 = 2 s."""
    add = app.tasks["slow_add"]
    low = add.apply_async((0, 0, 0.02), priority=0)
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            app.enqueue_many([add.signature((1, 1, 0.02), priority=4) for _ in range(20)])
            time.sleep(0.2)

    producer = threading.Thread(target=stream)
    producer.start()
    try:
        with running_worker(app, concurrency=1, batch_size=1, priority_aging=0.5):
            low.get(timeout=20)
    finally:
        stop.set()
        producer.join()
    info = low.info()
    waited = (info.started_at - info.created_at).total_seconds()
    # The bound, plus one level (a claim ages at most that often), a claim and a busy slot.
    assert waited < 2 + 0.5 + 1.5, waited
    with psycopg.connect(dsn) as conn:
        started_before = conn.execute(
            "SELECT count(*) FROM pgqueue.jobs WHERE priority = 4 AND started_at < %s",
            (info.started_at,)).fetchone()[0]
    assert started_before > 10  # the stream was running meanwhile
