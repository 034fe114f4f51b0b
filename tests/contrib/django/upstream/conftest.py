"""Real ``manage.py pgq_worker`` processes for the adapted Django ``tests/tasks`` suite.

Django's own backends run a task in the caller (ImmediateBackend) or never
(DummyBackend); pgqueue's runs it in another process. So the tests that need a
task to have run enqueue it here and wait, via ``result.refresh()``, for the
worker subprocess started once per module. Its stderr goes to a file, where
the tests read the ``django.tasks`` log lines that Django's signal receivers
write in the worker.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from tests.conftest import count, stop_process, wait_for
from tests.contrib.django.conftest import manage


@dataclass
class WorkerProcess:
    """A ``pgq_worker`` subprocess and the file its log goes to."""

    proc: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def lines_about(self, result_id: str, expected: int, timeout: float = 10) -> list[str]:
        """The worker's log lines naming this task result, once there are ``expected``
        (the worker logs ``task_finished`` just after it records the outcome)."""
        def found() -> list[str]:
            return [line for line in self.log().splitlines()
                    if f"Task id={result_id} " in line]
        wait_for(lambda: len(found()) >= expected, timeout)
        return found()


def start_worker(dsn: str, log_path: Path, *args: str) -> WorkerProcess:
    log = log_path.open("w")
    proc = manage(dsn, "pgq_worker", "--poll-interval", "0.2", *args,
                  stdout=log, stderr=subprocess.STDOUT)
    log.close()
    serving = "SELECT count(*) FROM pgqueue.workers WHERE pid = %s AND stopped_at IS NULL"
    if not wait_for(lambda: proc.poll() is None and count(dsn, serving, proc.pid) == 1, 30):
        stop_process(proc)
        pytest.fail(f"pgq_worker did not start: {log_path.read_text()}")
    return WorkerProcess(proc, log_path)


def stop_worker(worker: WorkerProcess) -> None:
    assert stop_process(worker.proc) == 0, worker.log()


@pytest.fixture(scope="module")
def worker(django_dsn: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[WorkerProcess]:
    """One worker process for the module, serving the default queue, on empty tables."""
    with psycopg.connect(django_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.workers CASCADE")
    started = start_worker(django_dsn, tmp_path_factory.mktemp("worker") / "worker.log",
                           "--queues", "default", "--concurrency", "2")
    yield started
    stop_worker(started)


@pytest.fixture
def tasks(django_dsn: str) -> ModuleType:
    """The adapted upstream tasks module (importing it needs Django set up)."""
    from tests.contrib.django.upstream import tasks

    return tasks


def finished(result: Any, timeout: float = 15) -> Any:
    """Refresh ``result`` until the worker has run its task to an end."""
    assert wait_for(lambda: (result.refresh(), result.is_finished)[1], timeout, 0.05), \
        f"task {result.id} still {result.status} after {timeout} s"
    return result


def raises(kind: type[BaseException], message: str) -> AbstractContextManager[Any]:
    """``pytest.raises`` that looks for ``message`` as it is (Django's assertRaisesMessage)."""
    return pytest.raises(kind, match=re.escape(message))
