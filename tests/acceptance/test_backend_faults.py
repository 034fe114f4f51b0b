"""Every pgqueue backend of the workers and of the producer is terminated, again and
again (`pg_terminate_backend`), while 2,000 plain and 500 atomic jobs drain: no job
is lost, none fails, and no atomic effect happens twice."""

from __future__ import annotations

import threading

import psycopg

from pgqueue import App
from tests.acceptance.test_chaos import Fleet
from tests.conftest import count, terminate_backends, wait_for

PLAIN, ATOMIC = 2000, 500


def test_terminated_backends_lose_nothing_and_double_no_effect(producer: App, dsn: str,
                                                                tmp_path: object) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.runs (n int NOT NULL, pid int NOT NULL)")
        conn.execute("CREATE TABLE public.charges (order_id int NOT NULL, job_id bigint)")
    from tests.tasks_app import register_atomic
    register_atomic(producer)
    producer.tasks["record_run"].map([(n, 0.01) for n in range(PLAIN)])
    producer.tasks["charge"].map([(n,) for n in range(ATOMIC)])
    fleet = Fleet(dsn, tmp_path, "--concurrency", "8")  # type: ignore[arg-type]
    for _ in range(2):
        fleet.start()
    stop, kills = threading.Event(), []

    def killer() -> None:
        while not stop.wait(0.5):
            kills.append(terminate_backends(dsn))  # workers', producer's: all pgqueue's

    thread = threading.Thread(target=killer, daemon=True)
    try:
        assert wait_for(lambda: all(fleet.serving(p) for p in fleet.procs), 30)
        thread.start()
        waiter = producer.tasks["charge"].delay(ATOMIC)  # a producer waiting meanwhile
        done = lambda: count(dsn, "SELECT count(*) FROM pgqueue.jobs "  # noqa: E731
                             "WHERE state IN ('succeeded', 'failed', 'cancelled')")
        if not wait_for(lambda: done() == PLAIN + ATOMIC + 1, timeout=60, interval=0.2):
            with psycopg.connect(dsn) as conn:
                states = conn.execute("SELECT state::text, task, count(*), min(id) FROM "
                                      "pgqueue.jobs WHERE state <> 'succeeded' "
                                      "GROUP BY 1, 2").fetchall()
            raise AssertionError((states, [fleet.log(p)[-3000:] for p in fleet.procs]))
        assert waiter.get(timeout=30) == f"charged {ATOMIC}"
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(5)
        codes = fleet.stop()
    assert codes == [0, 0]
    with psycopg.connect(dsn) as conn:
        unfinished = conn.execute(
            "SELECT j.task, j.state::text, e.type, left(e.message, 120), count(*) "
            "FROM pgqueue.jobs j LEFT JOIN pgqueue.job_errors e ON e.job_id = j.id "
            "WHERE j.state <> 'succeeded' GROUP BY 1, 2, 3, 4").fetchall()
    assert unfinished == []
    assert count(dsn, "SELECT count(DISTINCT n) FROM public.runs") == PLAIN  # none lost
    assert count(dsn, "SELECT count(DISTINCT order_id) FROM public.charges") == ATOMIC + 1
    assert count(dsn, "SELECT count(*) FROM public.charges") == ATOMIC + 1  # each once
    assert len(kills) >= 4 and sum(kills) >= 40, kills  # the faults really happened
    print(f"\nterminations: {len(kills)} rounds, {sum(kills)} backends; plain executions "
          f"{count(dsn, 'SELECT count(*) FROM public.runs')} for {PLAIN} jobs")
