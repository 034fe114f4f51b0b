"""Celery tasks for a processes-pool worker: the parent registers them on its own app
(``register(app)``), the children import ``tests.celery.runtime_app:app`` (the DSN
from PGQ_DSN, as ``pgq worker`` gives them)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pgqueue.celery import Celery
from pgqueue.celery.task import Task

APP_PATH = "tests.celery.runtime_app:app"


class Declined(Exception):
    pass


class Noting(Task):
    """Writes each handler call to the file named by the task's first argument."""

    def _note(self, path: str, line: str) -> None:
        with open(path, "a") as f:
            f.write(line + "\n")

    def on_success(self, retval: Any, task_id: Any, args: Any, kwargs: Any) -> None:
        self._note(args[0], f"success {task_id} {os.getpid()}")

    def on_failure(self, exc: Any, task_id: Any, args: Any, kwargs: Any, einfo: Any) -> None:
        self._note(args[0], f"failure {task_id} {type(exc).__name__}")

    def on_retry(self, exc: Any, task_id: Any, args: Any, kwargs: Any, einfo: Any) -> None:
        self._note(args[0], f"retry {task_id} {type(exc).__name__}")


def register(app: Celery) -> None:
    @app.task(bind=True, base=Noting, default_retry_delay=0)
    def retry_then_report(self: Any, notes: str, gate: str) -> list[Any]:
        if self.request.retries == 0:
            self.retry(exc=ConnectionError("first attempt"))
        self.update_state(state="PROGRESS", meta={"pid": os.getpid()})
        deadline = time.monotonic() + 30
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return [self.request.id, self.request.retries]

    @app.task(base=Noting)
    def declined(notes: str) -> None:
        raise Declined("card declined", 7)


app = Celery("runtime_app")
register(app)
