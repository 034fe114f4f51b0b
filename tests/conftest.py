"""Fixtures: a real Postgres for every test that needs one.

The server is ``PGQ_TEST_DSN`` when set; otherwise a private throwaway server is
started for the session from the ``pgserver`` binaries (they also run as root,
where ``initdb`` refuses to). Migrations are applied once to a template
database; each test gets a fresh copy of it (pytest-postgresql's janitor).

With ``PGQ_TEST_PGBOUNCER=1`` every test talks through a real PgBouncer in
transaction mode (tests/pgbouncer/bouncer.py): ``dsn`` is the bouncer's, and
for the test's length PGQ_LISTEN_DSN (the direct DSN) and
PGQ_PREPARED_STATEMENTS=off are set, so apps and ``pgq`` processes use both.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql.janitor import DatabaseJanitor

from pgqueue import App
from pgqueue.migrate import migrate_dsn
from pgqueue.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
_counter = itertools.count()
THROUGH_PGBOUNCER = os.environ.get("PGQ_TEST_PGBOUNCER") == "1"


def _janitor(server_dsn: str, dbname: str, template: str | None = None) -> DatabaseJanitor:
    params = conninfo_to_dict(server_dsn)
    return DatabaseJanitor(
        user=str(params.get("user", "postgres")),
        host=str(params.get("host", "127.0.0.1")),
        port=str(params.get("port", 5432)),
        password=str(params["password"]) if params.get("password") else None,
        dbname=dbname,
        template_dbname=template,
        maintenance_dbname=str(params.get("dbname", "postgres")),
    )


@pytest.fixture(scope="session")
def pg_datadir() -> Path | None:
    """Data directory of the private server (tests may restart it); None with PGQ_TEST_DSN."""
    if os.environ.get("PGQ_TEST_DSN"):
        return None
    # Not under pytest's basetemp: pytest prunes old basetemps, and a second pytest
    # session started meanwhile would delete this one's running server.
    return Path(tempfile.mkdtemp(prefix="pgq-test-server-")) / "data"


@pytest.fixture(scope="session")
def pg_server(pg_datadir: Path | None) -> Iterator[str]:
    """DSN of the server the tests use (any database on it)."""
    if pg_datadir is None:
        yield os.environ["PGQ_TEST_DSN"]
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # type: ignore[import-untyped]

        server = pgserver.get_server(pg_datadir, cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(pg_datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: str) -> Iterator[str]:
    name = f"pgq_template_{os.getpid()}"
    janitor = _janitor(pg_server, name)
    janitor.drop()
    janitor.init()
    migrate_dsn(make_conninfo(pg_server, dbname=name), "pgqueue")
    yield name
    janitor.drop()


@pytest.fixture(scope="session")
def pgbouncer(pg_server: str) -> Iterator[Any]:
    """A PgBouncer (transaction mode) in front of the test server: ``.dsn(dbname)``."""
    from tests.pgbouncer import bouncer

    try:
        with bouncer.running(pg_server) as running:
            yield running
            report = os.environ.get("PGQ_TEST_PGBOUNCER_REPORT")
            if THROUGH_PGBOUNCER and report:  # tests/pgbouncer/test_through_pgbouncer.py
                Path(report).write_text(str(running.log().count("login attempt")))
    except RuntimeError as exc:
        if THROUGH_PGBOUNCER:
            raise
        pytest.skip(f"no PgBouncer here: {exc}")


@pytest.fixture
def dsn(pg_server: str, template_db: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    name = f"pgq_test_{os.getpid()}_{next(_counter)}"
    janitor = _janitor(pg_server, name, template=template_db)
    janitor.init()
    direct = make_conninfo(pg_server, dbname=name)
    if THROUGH_PGBOUNCER:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PGQ_LISTEN_DSN", direct)
            env.setenv("PGQ_PREPARED_STATEMENTS", "off")
            yield request.getfixturevalue("pgbouncer").dsn(name)
    else:
        yield direct
    janitor.drop()


_empty_names = itertools.count()


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    """A database with no schema at all (no template): for migrations from nothing."""
    name = f"pgq_empty_{os.getpid()}_{next(_empty_names)}"
    janitor = _janitor(pg_server, name)
    janitor.init()
    yield make_conninfo(pg_server, dbname=name)
    janitor.drop()


@pytest.fixture
def app(dsn: str) -> Iterator[App]:
    from tests.tasks_app import register, register_atomic, register_canvas, register_flow

    application = App(dsn, heartbeat_interval=0.5, lease_seconds=5)
    register(application)
    register_atomic(application)
    register_canvas(application)
    register_flow(application)
    yield application
    application.close()


def count(dsn: str, query: str, *params: Any) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def running_worker(app: App, app_path: str | None = None, **settings: Any) -> Iterator[Worker]:
    """An in-process worker on its own event loop thread, stopped at the end of the block."""
    worker = Worker(app, app.settings.with_(**settings), app_path=app_path)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)

        async def go() -> None:
            started.set()
            await worker.run()

        try:
            loop.run_until_complete(go())
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=main, name="test-worker", daemon=True)
    thread.start()
    started.wait(10)
    deadline = time.monotonic() + 10
    # Started means listening: a NOTIFY sent before the LISTEN would be lost.
    while thread.is_alive() and time.monotonic() < deadline and not (
            worker.parts is not None and worker.parts.listener.listening.is_set()):
        time.sleep(0.01)
    try:
        yield worker
    finally:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(30)
        loop.close()
        if errors:
            raise errors[0]
        assert not thread.is_alive(), "worker did not stop within 30 s"


def _pgq_env(dsn: str) -> dict[str, str]:
    env = {**os.environ, "PGQ_DSN": dsn, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}"}
    env.pop("PGQ_SCHEMA", None)
    return env


def pgq(dsn: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start a real `pgq` process against this database, with tests/ on its path."""
    return subprocess.Popen([sys.executable, "-m", "pgqueue.cli", *args], env=_pgq_env(dsn),
                            cwd=str(ROOT), text=True, **kwargs)


def pgq_run(dsn: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a `pgq` command to completion; returns its exit code and output."""
    return subprocess.run([sys.executable, "-m", "pgqueue.cli", *args], env=_pgq_env(dsn),
                          cwd=str(ROOT), text=True, capture_output=True, timeout=timeout)


def terminate_backends(dsn: str, application_name: str = "pgqueue%") -> int:
    """End the connections of this database whose application_name is LIKE the pattern
    (pgqueue's own, by default); the caller's survives. Returns how many."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE %s "
            "AND pid <> pg_backend_pid()", (application_name,)).fetchall()
    return len(rows)


def wait_for(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def until(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """``check()``'s first true value, tried every ``interval`` seconds; an
    AssertionError if none comes within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout}s: {check}")


def stop_process(proc: subprocess.Popen[str], timeout: float = 30) -> int:
    """SIGTERM (what docker and systemd send), then wait; kill it if it would not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
