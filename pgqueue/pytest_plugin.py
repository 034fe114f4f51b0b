"""The pytest plugin: pgqueue's fixtures, options and ini settings.

Registered as entry point ``pgqueue`` in the ``pytest11`` group, so installing
pgqueue is enough. Fixtures:

- ``pgqueue_dsn``: a fresh database with pgqueue's schema, for this test. The
  server is ``--pgqueue-dsn`` or ``PGQ_TEST_DSN``; without either, a private
  throwaway Postgres (``pip install -e '.[embedded]'``). The schema is
  migrated once into a template database; each test gets a copy of it, which
  is much faster than migrating per test.
- ``pgqueue_app``: your App (``pgqueue_app = "myproj.tasks:app"`` in the pytest
  ini options) pointed at ``pgqueue_dsn`` for the test, and restored after.
  ``pgqueue_settings`` (a dict, empty by default) overrides its settings.
- ``pgqueue_eager``: the same App in eager mode (:mod:`pgqueue.eager`).
- ``pgqueue_worker``: a real worker running ``pgqueue_app``'s tasks in this
  process for the length of the test.

The helpers they use, which need no pytest, are :mod:`pgqueue.testing`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pgqueue.app import App
from pgqueue.loader import load_app
from pgqueue.testing import TemplateDatabases, bind_app, worker_running

if TYPE_CHECKING:
    from pgqueue.worker.loop import Worker


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("pgqueue").addoption(
        "--pgqueue-dsn", default=None,
        help="Postgres server for pgqueue's test databases (default: PGQ_TEST_DSN, else a "
             "private throwaway server from pgserver)")
    parser.addini("pgqueue_app", "module:attribute of the App the pgqueue_app fixture "
                  "configures, e.g. myproj.tasks:app", default="")


@pytest.fixture(scope="session")
def pgqueue_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of the Postgres server test databases are made on."""
    given = request.config.getoption("--pgqueue-dsn") or os.environ.get("PGQ_TEST_DSN")
    if given:
        yield str(given)
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        pytest.fail("pgqueue's test fixtures need a Postgres server: set PGQ_TEST_DSN="
                    "postgresql://user@host/postgres, or pip install -e '.[embedded]' "
                    "in pgqueue's checkout for a private throwaway one", pytrace=False)
    # Not under pytest's basetemp, which a second pytest session may prune.
    datadir = Path(tempfile.mkdtemp(prefix="pgqueue-test-server-")) / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(datadir, cleanup_mode="delete")  # type: ignore[attr-defined]
    yield str(server.get_uri())
    server.cleanup()
    shutil.rmtree(datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pgqueue_databases(pgqueue_server: str) -> Iterator[TemplateDatabases]:
    databases = TemplateDatabases(pgqueue_server)
    yield databases
    databases.close()


def _configured_app(config: pytest.Config) -> App | None:
    path = str(config.getini("pgqueue_app") or "")
    return load_app(path) if path else None


@pytest.fixture
def pgqueue_schema(request: pytest.FixtureRequest) -> str:
    """The schema test databases get: the configured App's, or ``pgqueue``."""
    app = _configured_app(request.config)
    return app.settings.schema if app else "pgqueue"


@pytest.fixture
def pgqueue_dsn(pgqueue_databases: TemplateDatabases, pgqueue_schema: str) -> Iterator[str]:
    """A fresh database with pgqueue's schema, dropped after the test."""
    dsn = pgqueue_databases.create(pgqueue_schema)
    yield dsn
    pgqueue_databases.drop(dsn)


@pytest.fixture
def pgqueue_settings() -> dict[str, Any]:
    """Settings pgqueue_app changes for tests; override this fixture to set some."""
    return {}


@pytest.fixture
def pgqueue_app(request: pytest.FixtureRequest, pgqueue_dsn: str,
                pgqueue_settings: dict[str, Any]) -> Iterator[App]:
    """Your App, on this test's database. Say which in the ini options
    (``pgqueue_app = "myproj.tasks:app"``), or override this fixture."""
    app = _configured_app(request.config)
    if app is None:
        pytest.fail("the pgqueue_app fixture needs your App: add pgqueue_app = "
                    "\"myproj.tasks:app\" to [tool.pytest.ini_options] (or pytest.ini), or "
                    "define a pgqueue_app fixture that yields from "
                    "pgqueue.testing.bind_app(app, pgqueue_dsn)", pytrace=False)
    with bind_app(app, pgqueue_dsn, **pgqueue_settings) as bound:
        yield bound


@pytest.fixture
def pgqueue_eager(pgqueue_app: App) -> Iterator[App]:
    """``pgqueue_app`` in eager mode: tasks run inline when they are enqueued."""
    pgqueue_app.configure(eager=True)
    yield pgqueue_app
    pgqueue_app.configure(eager=False)


@pytest.fixture
def pgqueue_worker(pgqueue_app: App) -> Iterator[Worker]:
    """A real worker running ``pgqueue_app``'s jobs in this process during the test."""
    queues = tuple(dict.fromkeys([*pgqueue_app.settings.queues,
                                  *(t.queue for t in pgqueue_app.tasks.values())]))
    with worker_running(pgqueue_app, queues=queues) as worker:
        yield worker
