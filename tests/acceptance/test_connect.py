"""A worker that can't connect: a DSN that can never work exits at once, saying so; a
server that is down is waited for, and SIGTERM still stops the worker at once."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from psycopg.conninfo import make_conninfo

from tests.conftest import pgq


@pytest.mark.parametrize("change", [{"dbname": "no_such_database"},
                                    {"user": "no_such_role"},
                                    {"sslmode": "bogus"}])
def test_a_dsn_that_can_never_work_exits_with_a_message(dsn: str,
                                                        change: dict[str, str]) -> None:
    bad = make_conninfo(dsn, **change)
    worker = pgq(bad, "worker", "--app", "tasks_app:app", stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT)
    out, _ = worker.communicate(timeout=30)
    assert worker.returncode != 0
    assert "Retrying won't help" in out or "invalid sslmode" in out, out
    assert "Traceback" not in out, out


def test_sigterm_stops_a_worker_waiting_for_postgres(dsn: str) -> None:
    down = make_conninfo(dsn, host="127.0.0.1", port="1")  # nothing listens there
    worker = pgq(down, "worker", "--app", "tasks_app:app", stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT)
    time.sleep(2)  # retrying its connection by now
    assert worker.poll() is None
    began = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=10)
    assert time.monotonic() - began < 5, out
    assert "connection failed" in out and "Traceback" not in out, out
