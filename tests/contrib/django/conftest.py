"""Django set up once for these tests, on a database of its own on the test server.

Django can be configured only once per process, so the project (``djproject``)
is configured for the whole session, with ``DATABASES`` pointing at a fresh
database that ``manage.py migrate`` prepares as it would in a real project:
Django's tables, and pgqueue's schema through the post_migrate hook. Each test
then starts from empty tables. Subprocesses (``python -m django pgq_worker``)
get the same settings from ``djproject/settings.py``. Nothing here imports
Django at import time: each test module skips itself when Django is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.conftest import ROOT, _janitor
from tests.contrib.django.djproject.config import (
    DSN_VARIABLE,
    SETTINGS_MODULE,
    project_settings,
)


@pytest.fixture(scope="session")
def django_dsn(pg_server: str) -> Iterator[str]:
    """The DSN of the database Django is set up on, for the whole session."""
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    if settings.configured:
        pytest.skip("Django was already configured in this process by other tests")
    name = f"pgq_django_{os.getpid()}"
    janitor = _janitor(pg_server, name)
    janitor.drop()
    janitor.init()
    dsn = make_conninfo(pg_server, dbname=name)
    settings.configure(**project_settings(dsn))
    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    yield dsn
    from pgqueue.contrib.django import get_app

    get_app().close()
    connections.close_all()
    janitor.drop()


@pytest.fixture
def shop(django_dsn: str) -> ModuleType:
    """The test app's tasks module (it needs Django set up, so it's imported here)."""
    from tests.contrib.django.djproject.shop import tasks

    return tasks


@pytest.fixture
def db(django_dsn: str) -> str:
    """Empty tables (jobs, workers, sign-ups) for this test; returns the DSN."""
    with psycopg.connect(django_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.workers, shop_signup CASCADE")
    return django_dsn


def django_env(dsn: str) -> dict[str, str]:
    env = {**os.environ, DSN_VARIABLE: dsn, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
           "PYTHONPATH": str(ROOT)}
    for name in ("PGQ_DSN", "PGQ_SCHEMA", "PGQ_APP"):
        env.pop(name, None)
    return env


def manage(dsn: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """``manage.py <args>`` for the test project, as a subprocess (``python -m django``)."""
    return subprocess.Popen([sys.executable, "-m", "django", *args], env=django_env(dsn),
                            cwd=str(ROOT), text=True, **kwargs)
