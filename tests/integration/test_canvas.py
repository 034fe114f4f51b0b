"""Workflows on a real worker: chain, group, chord, link callbacks, nesting, failures."""

from __future__ import annotations

import psycopg
import pytest

from pgqueue import JobState, chain, chord, group, signature
from pgqueue.errors import ChordError, TaskError
from tests.conftest import count, running_worker


def test_chain_passes_each_result_on(app):
    add, mul = app.tasks["add"], app.tasks["mul"]
    with running_worker(app):
        r = (add.s(2, 3) | mul.s(4)).delay()
        assert r.get(timeout=10) == 20
        assert r.parent.get(timeout=10) == 5
        r = chain(add.s(1, 1), mul.s(3), mul.s(5)).apply_async()
        assert r.get(timeout=10) == 30
        assert r.parent.parent.get(timeout=10) == 2


def test_group_and_chord(app):
    add, tsum = app.tasks["add"], app.tasks["tsum"]
    with running_worker(app, concurrency=8):
        g = group(add.s(i, i) for i in range(50)).delay()
        assert g.get(timeout=30) == [2 * i for i in range(50)]
        assert g.ready() and g.successful() and not g.failed()
        assert g.completed_count() == 50
        assert app.GroupResult(g.id).get(timeout=5) == g.get()
        c = chord(group(add.s(i, i) for i in range(20)), tsum.s()).delay()
        assert c.get(timeout=30) == sum(2 * i for i in range(20))
        c2 = chord([add.s(1, 1), add.s(2, 2)])(tsum.s())
        assert c2.get(timeout=10) == 6


def test_failed_step_stops_the_chain(app, dsn):
    add, div, mul = app.tasks["add"], app.tasks["div"], app.tasks["mul"]
    with running_worker(app):
        r = chain(add.s(1, 1), div.s(0), mul.s(3), mul.s(5)).delay()
        with pytest.raises(TaskError) as caught:
            r.get(timeout=10)
        assert caught.value.type == "ZeroDivisionError"
        assert caught.value.job_id == r.parent.parent.id  # the div step
        assert r.state is JobState.CANCELLED and r.parent.state is JobState.CANCELLED


def test_chord_member_failure_skips_the_callback(app, dsn):
    add, div, tsum = app.tasks["add"], app.tasks["div"], app.tasks["tsum"]
    with running_worker(app):
        c = chord([add.s(1, 1), div.s(1, 0), add.s(2, 2)], tsum.s()).delay()
        with pytest.raises(ChordError) as caught:
            c.get(timeout=10)
        assert "ZeroDivisionError" in str(caught.value)
        assert c.state is JobState.CANCELLED


def test_link_and_link_error(app, dsn):
    add, mul, div, on_error = (app.tasks[n] for n in ("add", "mul", "div", "on_error"))
    with running_worker(app):
        r = add.apply_async((2, 2), link=mul.s(10))
        assert r.get(timeout=10) == 4
        assert r.children[0].get(timeout=10) == 40
        bad = div.apply_async((1, 0), link=mul.s(10), link_error=on_error.s(label="x"))
        with pytest.raises(TaskError):
            bad.get(timeout=10)
        deadline_ok = _wait(lambda: count(dsn, "SELECT count(*) FROM information_schema.tables "
                                          "WHERE table_name = 'errbacks'") == 1
                            and count(dsn, "SELECT count(*) FROM public.errbacks") == 1)
        assert deadline_ok
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT job_id, type, label FROM public.errbacks").fetchone()
        assert row == (bad.id, "ZeroDivisionError", "x")
        assert bad.children[0].state is JobState.CANCELLED


def test_nested_workflows(app):
    add, mul, tsum = app.tasks["add"], app.tasks["mul"], app.tasks["tsum"]
    with running_worker(app, concurrency=4):
        # a chord whose header holds chains, then a chain after the chord
        c = (chord([add.s(1, 1) | mul.s(10), add.s(2, 2) | mul.s(10)], tsum.s()) | mul.s(2))
        assert c.delay().get(timeout=20) == 120
        # a group inside a chain: each member gets the previous result
        r = (add.s(1, 2) | group(mul.s(2), mul.s(3)) | tsum.s()).delay()
        assert r.get(timeout=20) == 15
        # a chain ending with a group gives a GroupResult
        g = (add.s(1, 1) | group(mul.s(2), mul.s(5))).delay()
        assert g.get(timeout=20) == [4, 10]
        # immutable steps ignore the previous result
        r = (add.s(1, 1) | add.si(5, 5)).delay()
        assert r.get(timeout=20) == 10


def test_by_name_signature_and_transaction(app, dsn):
    with psycopg.connect(dsn) as conn:
        r = (signature("add", args=(2, 3), app=app) | signature("mul", args=(4,), app=app)
             ).apply_async(connection=conn)
        conn.rollback()
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
    assert count(dsn, "SELECT count(*) FROM pgqueue.workflows") == 0
    with psycopg.connect(dsn) as conn:
        r = (signature("add", args=(2, 3), app=app) | signature("mul", args=(4,), app=app)
             ).apply_async(connection=conn)
    with running_worker(app):
        assert r.get(timeout=10) == 20


def _wait(check, timeout=10.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_replayed_member_completes_its_group_but_not_what_its_failure_cancelled(app, dsn):
    add, tsum = app.tasks["add"], app.tasks["tsum"]
    flaky = app.tasks["fails_first_time"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.first_runs (key text PRIMARY KEY)")
    with running_worker(app):
        c = chord([add.s(1, 1), flaky.s("m")], tsum.s()).delay()
        with pytest.raises(ChordError):
            c.get(timeout=10)
        header = c.parent
        assert header.failed() and header.ready()
        member = header.results[1]
        assert member.retry()
        assert header.get(timeout=10) == [2, "m done"]
        assert header.successful() and header.completed_count() == 2
        assert c.state is JobState.CANCELLED  # its failure cancelled the callback: it stays
        # A step cancelled for another's failure has nothing of its own to replay.
        assert not c.retry()


def test_cancelling_a_waiting_step_stops_the_rest_of_its_chain(app):
    add, mul = app.tasks["add"], app.tasks["mul"]
    r = chain(add.s(1, 1), mul.s(2), mul.s(3)).delay()
    middle = r.parent
    assert middle.state is JobState.WAITING
    assert middle.cancel() is JobState.CANCELLED
    assert r.state is JobState.CANCELLED
    with running_worker(app):
        assert r.parent.parent.get(timeout=10) == 2
        with pytest.raises(Exception, match="cancelled"):
            r.get(timeout=10)


def test_async_twins_and_the_callers_async_transaction(app, dsn):
    import asyncio

    add, mul, tsum = app.tasks["add"], app.tasks["mul"], app.tasks["tsum"]

    async def go():
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            r = await (add.s(2, 3) | mul.s(4)).apply_async_async(connection=conn)
            g = await group(add.s(i, i) for i in range(5)).delay_async()
            await conn.rollback()  # the chain goes with the transaction; the group was
        return r, g                # written through the pool

    r, g = asyncio.run(go())
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", r.id) == 0
    with running_worker(app):
        async def wait():
            return (await g.get_async(timeout=10), await g.ready_async(),
                    await g.completed_count_async())
        assert asyncio.run(wait()) == ([0, 2, 4, 6, 8], True, 5)
        c = asyncio.run(chord([add.s(1, 1)], tsum.s()).apply_async_async())
        assert asyncio.run(c.get_async(timeout=10)) == 2


def test_enqueue_many_takes_plain_signatures_and_canvases(app):
    add, mul = app.tasks["add"], app.tasks["mul"]
    plain = app.enqueue_many([add.s(1, 2), add.s(3, 4)])
    assert [r.workflow_id for r in plain] == [None, None]
    mixed = app.enqueue_many([add.s(1, 2), add.s(1, 1) | mul.s(5), group(add.s(0, 1))])
    with running_worker(app):
        assert [m.get(timeout=10) for m in mixed] == [3, 10, [1]]
    assert len({m.workflow_id for m in mixed}) == 3


def test_pruning_takes_a_workflow_only_whole_and_aged(app, dsn):
    import asyncio
    import datetime as dt

    from pgqueue.link import Link
    from pgqueue.maintenance import Pruner

    add, mul = app.tasks["add"], app.tasks["mul"]
    with running_worker(app):
        done = (add.s(1, 1) | mul.s(2)).delay()
        assert done.get(timeout=10) == 4
    unfinished = (add.s(1, 1) | mul.s(2)).delay()  # no worker: its first step stays queued
    with psycopg.connect(dsn) as conn:  # everything ended long ago, as far as pruning sees
        conn.execute("UPDATE pgqueue.jobs SET finished_at = now() - interval '30 days' "
                     "WHERE finished_at IS NOT NULL")
        conn.execute("UPDATE pgqueue.workflows SET created_at = now() - interval '30 days'")
        conn.execute("UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now() - "
                     "interval '30 days' WHERE id = %s", (unfinished.parent.id,))
        conn.execute("UPDATE pgqueue.jobs SET state = 'queued' WHERE id = %s",
                     (unfinished.id,))

    async def prune() -> dict[str, int]:
        link = Link(dsn, "test")
        try:
            return await Pruner(link, "pgqueue", dt.timedelta(days=7)).run_once()
        finally:
            await link.close()

    pruned = asyncio.run(prune())
    assert pruned["workflow_jobs"] == 2 and pruned["jobs"] == 0
    assert count(dsn, "SELECT count(*) FROM pgqueue.workflows") == 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 2  # the unfinished one's
    assert count(dsn, "SELECT count(*) FROM pgqueue.workflow_steps") == 2
    assert count(dsn, "SELECT count(*) FROM pgqueue.workflow_groups") == 0
