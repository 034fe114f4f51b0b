"""Transactional enqueue, on the caller's sync and async connections, and bad input."""

import asyncio
import datetime as dt

import psycopg
import pytest

from pgqueue import JobState
from tests.conftest import count


def test_delay_returns_a_queued_job(app, dsn):
    r = app.tasks["add"].delay(2, 3)
    assert isinstance(r.id, int)
    assert r.state is JobState.QUEUED and not r.ready()
    info = r.info()
    assert info.task == "add" and info.queue == "default" and info.attempts == 0


def test_commit_makes_the_job_visible(app, dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE users (name text)")
        conn.execute("INSERT INTO users VALUES ('ada')")
        r = app.tasks["add"].apply_async(args=(1, 2), connection=conn)
        # Not visible to anyone else before COMMIT.
        assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", r.id) == 1
    assert count(dsn, "SELECT count(*) FROM users") == 1


def test_rollback_leaves_no_job(app, dsn):
    with pytest.raises(RuntimeError), psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE users (name text)")
        app.tasks["add"].apply_async(args=(1, 2), connection=conn)
        raise RuntimeError("the request failed")
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_async_commit_and_rollback(app, dsn):
    async def go() -> int:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            r = await app.tasks["add"].apply_async_async(args=(1, 2), connection=conn)
            await conn.commit()
            await app.tasks["add"].apply_async_async(args=(3, 4), connection=conn)
            await conn.rollback()
        r2 = await app.tasks["add"].delay_async(5, 6)
        r3 = await app.send_task_async("add", args=(7, 8))
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await app.tasks["add"].map_async([(1, 1), (2, 2)], connection=conn)
            await conn.rollback()
        mapped = await app.tasks["add"].map_async([(9, 9)])
        assert (await mapped[0].info_async()).state is JobState.QUEUED
        assert (await r2.info_async()).state is JobState.QUEUED
        assert r3.id > r2.id
        return r.id

    job_id = asyncio.run(go())
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 4
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", job_id) == 1


def test_non_json_argument_fails_at_enqueue_and_writes_nothing(app, dsn):
    with pytest.raises(TypeError, match="not JSON serialisable"):
        app.tasks["echo"].delay(object())
    with pytest.raises(TypeError):
        app.tasks["echo"].delay({1, 2})
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_options_are_stored(app, dsn):
    eta = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    a = app.tasks["add"].apply_async(args=(1, 2), queue="math", priority=9, countdown=30)
    b = app.tasks["add"].apply_async(args=(1, 2), eta=eta)
    c = app.tasks["send_email"].delay("x@example.com")
    with psycopg.connect(dsn) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, queue, priority, round(extract(epoch FROM run_at - created_at))::int "
            "FROM pgqueue.jobs")}
    assert rows[a.id] == ("math", 9, 30)
    assert rows[c.id] == ("emails", 5, 0)
    assert app.AsyncResult(b.id).info().run_at == eta


def test_send_task_by_name_without_registering(app, dsn):
    r = app.send_task("somebody.elses.task", args=(1,), kwargs={"x": 2}, queue="other")
    info = r.info()
    assert info.task == "somebody.elses.task" and info.queue == "other"


def test_unknown_id_raises_job_not_found(app):
    from pgqueue import JobNotFound

    with pytest.raises(JobNotFound):
        app.AsyncResult(123456).info()


def test_enqueue_many_in_one_statement_and_transaction(app, dsn):
    add, mail = app.tasks["add"], app.tasks["send_email"]
    results = app.enqueue_many([add.s(1, 2), mail.s("a@b.c"), add.signature((3, 4), priority=2)])
    assert [r.info().task for r in results] == ["add", "send_email", "add"]
    assert results[2].info().priority == 2
    mapped = add.map([(i, i) for i in range(1000)])
    assert len(mapped) == 1000 and len({r.id for r in mapped}) == 1000
    with pytest.raises(RuntimeError), psycopg.connect(dsn) as conn:
        add.map([(1, 1)] * 10, connection=conn)
        raise RuntimeError("rollback")
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1003
    with pytest.raises(TypeError):
        add.map([(1, 1), (object(), 2)])  # one bad row: nothing written
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1003


def test_map_keeps_order_arguments_and_options_of_each_job(app, dsn):
    add = app.tasks["add"]
    mapped = add.map([(i, -i) for i in range(500)] + [[7, 8]])
    ids = [r.id for r in mapped]
    assert ids == sorted(ids)  # results come back in the order given
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT args, kwargs, task, queue, max_attempts, state::text "
                            "FROM pgqueue.jobs ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [[i, -i] for i in range(500)] + [[7, 8]]
    assert {(str(r[1]), r[2], r[3], r[4], r[5]) for r in rows} == {
        ("{}", "add", add.queue, add.policy.max_attempts, "queued")}
    with pytest.raises(TypeError, match="list or tuple"):
        add.map([(1, 2), "12"])
    assert add.map([]) == []


def test_producer_gets_a_clear_error_when_postgres_is_unreachable():
    import socket

    from pgqueue import App, DatabaseUnavailable

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = App(f"postgresql://postgres@127.0.0.1:{port}/nowhere", pool_timeout=0.5)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{port}/nowhere within 0.5s"):
        add.delay(1, 2)
    app.close()


@pytest.mark.parametrize("bad", ["a\x00b", {"name": "\ud800"}, {"k\x00": 1}])
def test_strings_postgres_cant_store_fail_at_enqueue_and_keep_the_transaction(app, dsn, bad):
    from pgqueue.encoding import UnstorableValue

    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE users (name text)")
        with pytest.raises(UnstorableValue, match=r"NUL byte|lone surrogate"):
            app.tasks["add"].apply_async(args=(bad, 1), connection=conn)
        with pytest.raises(UnstorableValue):
            app.tasks["add"].delay(1, bad)
        conn.execute("INSERT INTO users VALUES ('ada')")  # the transaction is still good
    assert count(dsn, "SELECT count(*) FROM users") == 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_arguments_that_look_like_tagged_values_are_stored_as_they_are(app, dsn):
    import uuid
    from decimal import Decimal

    from pgqueue import encoding

    args = ({"$uuid": "x"}, {"$date": "x"}, {"$decimal": "abc"}, {"$dict": 1},
            [uuid.UUID(int=5), Decimal("NaN"), 1e20])
    r = app.tasks["add"].apply_async(args=args, kwargs={"opts": {"$datetime": "soon"}})
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT args::text, kwargs::text FROM pgqueue.jobs WHERE id = %s",
                           (r.id,)).fetchone()
    stored_args, stored_kwargs = encoding.loads(row[0]), encoding.loads(row[1])
    assert stored_args[:4] == list(args[:4]) and stored_kwargs == {"opts": {"$datetime": "soon"}}
    assert stored_args[4][0] == uuid.UUID(int=5) and stored_args[4][1].is_nan()
    assert type(stored_args[4][2]) is float and stored_args[4][2] == 1e20
