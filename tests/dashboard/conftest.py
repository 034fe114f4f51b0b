"""Fixtures for the dashboard tests.

``world`` is one database with real jobs in every state, made by a real in-process
worker that keeps running (so one worker is "up" and one job "running") while the
package's read-only tests look at it. Tests that act on jobs use the fresh
per-test database of the ``app`` fixture instead, so they can't disturb it.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo
from starlette.testclient import TestClient

from pgqueue import App, JobState, statements
from pgqueue.dashboard import create_app
from pgqueue.monitor import Monitor
from tests.conftest import _counter, _janitor, running_worker, wait_for
from tests.tasks_app import register

# The app's redact= option, if this tree has it yet.
HAS_REDACT = True  # @app.task(redact=...) is a TaskOptions field


@dataclass
class World:
    app: App
    dsn: str
    ids: dict[str, int]


def _populate(app: App) -> dict[str, int]:
    add = app.tasks["add"]
    succeeded = [add.delay(i, i) for i in range(3)]
    boom = app.tasks["boom"].delay("disk full")
    always = app.tasks["always_fails"].delay()  # 4 attempts, 1.4 s of backoff, then failed
    flaky = app.tasks["flaky"].delay(1)  # fails once, succeeds on its retry
    running = app.tasks["cancellable"].delay()  # runs until cancelled at teardown
    queued = app.tasks["send_email"].delay("ada@example.com")  # "emails": no worker serves it
    scheduled = add.apply_async(args=(5, 5), countdown=3600)
    cancelled = add.apply_async(args=(0, 0), queue="idle")
    cancelled.cancel()
    in_paused = add.apply_async(args=(7, 7), queue="paused-q")
    Monitor(app).pause_queue("paused-q")
    ids = {"succeeded": succeeded[0].id, "failed": boom.id, "always_fails": always.id,
           "flaky": flaky.id, "running": running.id, "queued": queued.id,
           "scheduled": scheduled.id, "cancelled": cancelled.id, "in_paused": in_paused.id}
    if HAS_REDACT:
        ids["secret"] = app.tasks["login"].delay("ada", password="hunter2").id
    for r in (*succeeded, flaky):
        r.get(timeout=10)
    for r in (boom, always):
        r.get(timeout=15, propagate=False)
    assert wait_for(lambda: running.state == JobState.RUNNING, 10)
    return ids


@pytest.fixture(scope="package")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    name = f"pgq_dash_{os.getpid()}_{next(_counter)}"
    janitor = _janitor(pg_server, name, template=template_db)
    janitor.init()
    dsn = make_conninfo(pg_server, dbname=name)
    app = App(dsn, heartbeat_interval=0.5, lease_seconds=5)
    register(app)
    if HAS_REDACT:
        @app.task(queue="idle", redact=("password",))
        def login(user: str, password: str) -> None:
            """Never runs here (no worker serves "idle"): it only carries a secret."""

    app.add_periodic("nightly-report", "add", cron="0 3 * * *", args=(1, 2))
    app.client.execute(statements.sync_schedule(app.settings.schema,
                                                app.schedules["nightly-report"]))
    try:
        with running_worker(app, shutdown_timeout=1):
            ids = _populate(app)
            yield World(app, dsn, ids)
            app.AsyncResult(ids["running"]).cancel()  # lets its thread end with the worker
    finally:
        app.close()
        janitor.drop()


@pytest.fixture(scope="package")
def client(world: World) -> Iterator[TestClient]:
    """A dashboard without authentication (as on loopback) over the world."""
    with TestClient(create_app(world.app), base_url="http://localhost") as c:
        yield c


def csrf_token(client: TestClient) -> str:
    """What a script does: get a token (and its cookie) to echo in X-CSRF-Token."""
    token: str = client.get("/api/csrf").json()["csrf_token"]
    return token


@contextmanager
def serving(app: App, **options: Any) -> Iterator[str]:
    """The dashboard (``create_app(app, **options)``) under uvicorn, on a free loopback
    port, in a thread: the real server, which decodes paths as browsers send them."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(app, **options), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    assert wait_for(lambda: server.started, 10), "the dashboard did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
