"""pgqueue.testing used directly: run_until_empty, the assertions, bind_app, databases."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgqueue import App, JobState
from pgqueue.testing import (
    TemplateDatabases,
    assert_enqueued,
    assert_not_enqueued,
    bind_app,
    enqueued_jobs,
    run_until_empty,
)
from tests.conftest import count


@pytest.fixture
def app(dsn: str) -> Iterator[App]:
    application = App(dsn)
    gate = threading.Event()
    application.gate = gate  # type: ignore[attr-defined]

    @application.task
    def add(x: int, y: int) -> int:
        return x + y

    @application.task(queue="emails")
    def send_email(to: str, subject: str = "") -> str:
        return f"sent {subject!r} to {to}"

    @application.task
    def signup(email: str) -> int:
        send_email.delay(email, subject="Welcome")  # a job enqueued by a job, another queue
        return 1

    @application.task
    def wait_for_gate() -> None:
        gate.wait(10)

    yield application
    gate.set()
    application.close()


def t(app: App, name: str) -> Any:
    return app.tasks[name]


def test_run_until_empty_drains_jobs_and_the_jobs_they_enqueue(app: App, dsn: str) -> None:
    results = t(app, "add").map([(1, 2), (3, 4)])
    signup = t(app, "signup").delay("ada@example.com")
    assert run_until_empty(app, timeout=20) == 4
    assert [r.get(timeout=1) for r in results] == [3, 7]
    assert signup.state is JobState.SUCCEEDED
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'succeeded'") == 4
    assert run_until_empty(app) == 0  # nothing left: returns at once


def test_run_until_empty_leaves_later_jobs_unless_asked(app: App) -> None:
    later = t(app, "add").apply_async((1, 1), countdown=0.3)
    assert run_until_empty(app) == 0
    assert later.state is JobState.QUEUED
    assert run_until_empty(app, include_scheduled=True, timeout=10) == 1
    assert later.get(timeout=1) == 2


def test_run_until_empty_times_out_listing_what_is_left(app: App) -> None:
    r = t(app, "wait_for_gate").delay()
    # The worker starts, claims and holds the job well inside the timeout (0.3 s was
    # too tight for a loaded CI machine: the job was sometimes still queued), and the
    # gate opens only after it.
    threading.Timer(3.0, app.gate.set).start()  # type: ignore[attr-defined]
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=rf"#{r.id} wait_for_gate \(default, running\)"):
        run_until_empty(app, queues=["default"], timeout=1.5)
    assert time.monotonic() - started < 8


def test_assert_enqueued_matches_and_explains(app: App, dsn: str) -> None:
    add, send_email = t(app, "add"), t(app, "send_email")
    add.delay(1, 2)
    add.delay(1, 2)
    send_email.delay("ada@example.com", subject="Hi")

    found = assert_enqueued(add, args=(1, 2), count=2)  # a tuple matches the stored list
    assert [j.args for j in found] == [[1, 2], [1, 2]]
    assert_enqueued(send_email, kwargs={"subject": "Hi"}, queue="emails")
    assert_enqueued("send_email", app=app)
    assert_not_enqueued(add, args=[2, 1])
    assert_not_enqueued(t(app, "signup"))

    with pytest.raises(AssertionError) as err:
        assert_enqueued(send_email, args=["bob@example.com"], queue="emails")
    message = str(err.value)
    assert message.startswith("expected at least one job send_email('bob@example.com', ...) "
                              "on queue 'emails', found 0.")
    assert "Enqueued jobs (3):" in message
    assert "send_email('ada@example.com', subject='Hi') queue='emails' state=queued" in message
    with pytest.raises(AssertionError, match=r"expected exactly 0 job add\(...\), found 2"):
        assert_not_enqueued(add)
    with pytest.raises(AssertionError, match="expected exactly 1 job add"):
        assert_enqueued(add, count=1)
    with pytest.raises(TypeError, match="needs app="):
        assert_enqueued("add")


def test_assertions_see_uncommitted_jobs_on_the_callers_connection(app: App, dsn: str) -> None:
    add = t(app, "add")
    with psycopg.connect(dsn) as conn:
        add.apply_async((5, 5), connection=conn)
        assert_enqueued(add, args=[5, 5], connection=conn)
        assert_not_enqueued(add)  # other connections can't see it yet
        conn.rollback()
    assert enqueued_jobs(app) == []


def test_bind_app_points_a_shared_app_at_a_database_and_back(dsn: str) -> None:
    shared = App("postgresql://nobody@127.0.0.1:1/nowhere", pool_size=3)

    @shared.task
    def add(x: int, y: int) -> int:
        return x + y

    with bind_app(shared, dsn, pool_size=2) as bound:
        assert bound is shared and shared.dsn() == dsn and shared.settings.pool_size == 2
        add.delay(1, 2)
        assert_enqueued(add, args=[1, 2])
    assert shared.settings.dsn == "postgresql://nobody@127.0.0.1:1/nowhere"
    assert shared.settings.pool_size == 3
    shared.close()


def test_template_databases_for_another_schema(pg_server: str) -> None:
    databases = TemplateDatabases(pg_server)
    try:
        dsn = databases.create("jobs")
        assert count(dsn, "SELECT count(*) FROM jobs.jobs") == 0
        databases.drop(dsn)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=2).close()
    finally:
        databases.close()
