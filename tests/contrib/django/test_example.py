"""examples/django_signup runs as its README says: migrate, pgq_worker, runserver, curl."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[django]')")
from psycopg.conninfo import make_conninfo

from tests.conftest import ROOT, _janitor, count, wait_for
from tests.contrib.django.djproject.config import tasks_api

EXAMPLE = ROOT / "examples" / "django_signup"

if tasks_api() is None:
    pytest.skip("the example uses Django's task API: Django 6, or the django-tasks backport",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def example_database(pg_server: str) -> Iterator[str]:
    name = f"pgq_django_example_{os.getpid()}"
    janitor = _janitor(pg_server, name)
    janitor.drop()
    janitor.init()
    try:
        yield make_conninfo(pg_server, dbname=name)
    finally:
        janitor.drop()


def manage_py(env: dict[str, str], *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=EXAMPLE, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **kwargs)


def http(method: str, url: str, data: dict[str, str] | None = None) -> tuple[int, Any]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, method=method),
                                    timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_signup_example_end_to_end(pg_server: str, tmp_path: Path) -> None:
    with example_database(pg_server) as dsn:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PGQ_", "DJANGO_SETTINGS_MODULE"))}
        env.update(DATABASE_URL=dsn, SIGNUP_MAIL_DIR=str(tmp_path / "mail"),
                   PYTHONPATH=str(ROOT))
        migrated = manage_py(env, "migrate")
        out, err = migrated.communicate(timeout=120)
        assert migrated.returncode == 0, err
        assert "Applied pgqueue migrations to schema pgqueue: 0001_initial.sql" in out

        port = free_port()
        worker = manage_py(env, "pgq_worker", "--poll-interval", "0.2")
        server = manage_py(env, "runserver", "--noreload", f"127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"
        try:
            assert wait_for(lambda: _listening(port), timeout=30), "runserver did not start"
            status, body = http("POST", f"{base}/signup", {"email": "ada@example.com"})
            assert status == 202, body
            task_id = body["task_id"]

            def task() -> dict[str, Any]:
                return http("GET", f"{base}/tasks/{task_id}")[1]

            assert wait_for(lambda: task()["status"] == "SUCCESSFUL", timeout=20), task()
            assert task()["return_value"] == {"to": "ada@example.com",
                                              "subject": "Welcome aboard!"}
            (mail,) = (tmp_path / "mail").iterdir()
            assert "Subject: Welcome aboard!" in mail.read_text()

            # Failing after the enqueue, or on a duplicate: neither user nor job is kept.
            assert http("POST", f"{base}/signup", {"email": "bob@example.com",
                                                   "fail": "1"})[0] == 500
            assert http("POST", f"{base}/signup", {"email": "ada@example.com"})[0] == 409
            assert count(dsn, "SELECT count(*) FROM auth_user") == 1
            assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1
            assert http("GET", f"{base}/tasks/999")[0] == 404
        finally:
            for process in (server, worker):
                process.send_signal(signal.SIGTERM)
            server.communicate(timeout=30)
            _, worker_err = worker.communicate(timeout=30)
        assert worker.returncode == 0, worker_err
        assert "stopped after 1 jobs" in worker_err


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        time.sleep(0.1)
        return False
    return True
