"""Eager mode (pgqueue.eager): tasks run inline at enqueue, with the real serialisation."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from pgqueue import App, JobContext, JobState, TaskError
from pgqueue.eager import EagerResult
from pgqueue.testing import assert_enqueued, assert_not_enqueued
from tests.conftest import count


@pytest.fixture
def eager_app(dsn: str) -> Iterator[App]:
    app = App(dsn)
    app.configure(eager=True)
    calls: list[Any] = []
    app.calls = calls  # type: ignore[attr-defined]

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def echo(value: Any) -> Any:
        calls.append(value)
        return value

    @app.task
    def boom(message: str) -> None:
        raise ValueError(message)

    @app.task
    def returns_set() -> object:
        return {1, 2}

    @app.task(bind=True, max_retries=3)
    def flaky(self: JobContext, failures: int) -> int:
        if self.attempt <= failures:
            raise self.retry(exc=ConnectionError(f"attempt {self.attempt}"), countdown=60)
        return self.attempt

    @app.task
    async def async_double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    @app.task
    def chain(x: int) -> int:
        return add.delay(x, 1).get() * 10

    @app.task(bind=True, atomic=True)
    def credit(self: JobContext, amount: int, fail: bool = False) -> int:
        assert self.connection is not None
        self.connection.execute("INSERT INTO ledger (amount) VALUES (%s)", (amount,))
        if fail:
            raise RuntimeError("declined")
        return amount

    yield app
    app.close()


def task(app: App, name: str) -> Any:
    return app.tasks[name]


def test_runs_inline_and_round_trips_through_json(eager_app: App, dsn: str) -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    r = task(eager_app, "echo").delay({"at": when, "amount": Decimal("1.50"), "pair": (1, 2)})
    assert isinstance(r, EagerResult)
    # The task got decoded values (a tuple arrives as a list), and so does the caller.
    assert eager_app.calls == [{"at": when, "amount": Decimal("1.50"), "pair": [1, 2]}]  # type: ignore[attr-defined]
    assert r.get() == {"at": when, "amount": Decimal("1.50"), "pair": [1, 2]}
    assert r.state is JobState.SUCCEEDED and r.ready() and r.successful()
    assert r.result == r.get(timeout=1)
    info = r.info()
    assert (info.task, info.queue, info.attempts, info.error) == ("echo", "default", 1, None)
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0  # nothing was written


def test_bad_arguments_fail_at_enqueue(eager_app: App) -> None:
    with pytest.raises(TypeError, match="set is not JSON serialisable"):
        task(eager_app, "echo").delay({1, 2})
    with pytest.raises(TypeError, match="NaN"):
        task(eager_app, "echo").apply_async((float("nan"),))
    assert eager_app.calls == []  # type: ignore[attr-defined]


def test_failure_is_recorded_and_raised_by_get(eager_app: App) -> None:
    r = task(eager_app, "boom").delay("no luck")
    assert r.state is JobState.FAILED and r.failed() and r.ready()
    assert r.result is None
    with pytest.raises(TaskError) as err:
        r.get()
    assert (err.value.type, err.value.message) == ("ValueError", "no luck")
    assert "raise ValueError(message)" in err.value.traceback
    assert r.get(propagate=False) is None


def test_a_result_json_cant_hold_fails_the_job(eager_app: App) -> None:
    r = task(eager_app, "returns_set").delay()
    with pytest.raises(TaskError, match="returned a value pgqueue can't store"):
        r.get()


def test_retries_follow_the_policy_without_waiting(eager_app: App) -> None:
    r = task(eager_app, "flaky").delay(2)
    assert r.get() == 3 and r.info().attempts == 3
    r = task(eager_app, "flaky").delay(10)
    assert r.state is JobState.FAILED and r.info().attempts == 4
    with pytest.raises(TaskError, match="ConnectionError: attempt 4"):
        r.get()


def test_async_tasks_sync_and_async_callers(eager_app: App) -> None:
    double = task(eager_app, "async_double")
    assert double.delay(4).get() == 8

    async def main() -> list[Any]:
        r1 = await double.delay_async(5)
        r2 = await task(eager_app, "add").apply_async_async((1, 2))
        # A sync enqueue from inside a running loop still works (the task gets a thread).
        r3 = double.delay(6)
        return [await r1.get_async(), (await r2.info_async()).result, r3.get()]

    assert asyncio.run(main()) == [10, 3, 12]


def test_many_nested_and_by_name(eager_app: App) -> None:
    add = task(eager_app, "add")
    assert [r.get() for r in add.map([(1, 2), (3, 4)])] == [3, 7]
    assert task(eager_app, "chain").delay(4).get() == 50
    assert eager_app.send_task("add", (5, 5)).get() == 10
    missing = eager_app.send_task("nope", (1,))
    with pytest.raises(TaskError, match="UnknownTask: unknown task 'nope'"):
        missing.get()


def test_async_result_and_assertions_see_eager_jobs(eager_app: App) -> None:
    r = task(eager_app, "add").delay(2, 3)
    assert eager_app.AsyncResult(r.id) is r
    assert_enqueued(task(eager_app, "add"), args=[2, 3])
    assert_not_enqueued(task(eager_app, "boom"))


def test_atomic_task_writes_in_the_callers_transaction(eager_app: App, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE ledger (amount int)")
    credit = task(eager_app, "credit")
    with psycopg.connect(dsn) as conn:
        assert credit.apply_async((5,), connection=conn).get() == 5
        failed = credit.apply_async((7, True), connection=conn)
        assert failed.state is JobState.FAILED  # ...and its insert was rolled back
        conn.rollback()  # the caller's rollback takes the successful one's write too
    assert count(dsn, "SELECT count(*) FROM ledger") == 0
    assert credit.delay(9).get() == 9  # on a pooled connection: committed by itself
    assert count(dsn, "SELECT sum(amount) FROM ledger") == 9


def test_hooks_run_around_eager_tasks(eager_app: App) -> None:
    seen: list[tuple[str, Any]] = []
    eager_app.hooks.before_task(lambda ctx: seen.append(("before", ctx.task)))
    eager_app.hooks.after_task(lambda ctx, outcome, value: seen.append((outcome, value)))
    task(eager_app, "add").delay(1, 1)
    asyncio.run(task(eager_app, "async_double").delay_async(2))
    assert seen == [("before", "add"), ("succeeded", 2),
                    ("before", "async_double"), ("succeeded", 4)]
