"""``manage.py pgq_migrate`` and ``manage.py pgq_worker``, in-process and as real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
from types import ModuleType

import pytest

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[django]')")
from django.core.management import call_command
from psycopg.conninfo import make_conninfo

from pgqueue.contrib.django import get_app
from tests.conftest import _janitor, count
from tests.contrib.django.conftest import manage
from tests.contrib.django.djproject.config import tasks_api


def test_pgq_migrate_shows_the_status_and_has_nothing_to_do(
        db: str, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("pgq_migrate", "--status")
    status = capsys.readouterr().out
    assert "0001_initial" in status and ", 0 pending" in status
    call_command("pgq_migrate")
    assert "schema pgqueue: up to date" in capsys.readouterr().out


def test_pgq_migrate_creates_the_schema_in_a_new_database(pg_server: str, db: str) -> None:
    name = f"pgq_django_new_{os.getpid()}"
    janitor = _janitor(pg_server, name)
    janitor.init()
    try:
        dsn = make_conninfo(pg_server, dbname=name)
        done = manage(dsn, "pgq_migrate", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = done.communicate(timeout=60)
        assert done.returncode == 0, err
        assert "schema pgqueue: applied 0001_initial.sql" in out
        assert count(dsn, "SELECT count(*) FROM pgqueue.schema_migrations") >= 1
    finally:
        janitor.drop()


def test_pgq_worker_offers_the_options_of_pgq_worker(django_dsn: str) -> None:
    from pgqueue.contrib.django.management.commands.pgq_worker import Command

    text = Command().create_parser("manage.py", "pgq_worker").format_help()
    for option in ("--queues", "--concurrency", "--pool", "--shutdown-timeout", "--beat"):
        assert option in text
    assert "--app" not in text  # the wrapper sets it


def test_pgq_worker_runs_jobs_and_stops_on_sigterm(db: str, shop: ModuleType) -> None:
    signup = shop.Signup.objects.create(email="ada@example.com")
    native = shop.welcome.delay(signup.pk)
    worker = manage(db, "pgq_worker", "--concurrency", "2", "--poll-interval", "0.2",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert native.get(timeout=20) == "ada@example.com"
        if tasks_api() is not None:
            from tests.contrib.django.djproject.shop import jobs

            # jobs.py is no tasks.py: the worker imports it when the job names it.
            pinged = jobs.ping.enqueue()
            assert get_app().AsyncResult(int(pinged.id)).get(timeout=10) == "pong"
            pinged.refresh()
            assert pinged.return_value == "pong"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "serving queues default,emails with 2 threads" in err
    assert "stopped after" in err
