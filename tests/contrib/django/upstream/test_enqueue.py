"""Django's ``tests/tasks`` backend tests of what ``enqueue`` stores, on pgqueue's backend.

Adapted from ``test_dummy_backend.py`` (and the enqueue / get_result tests of
``test_tasks.py``) in the Django 6.1 sdist (BSD-3-Clause, Copyright (c) Django
Software Foundation and individual contributors). DummyBackend keeps results
in a list in the process; pgqueue's backend writes a job row, and reads results
back from Postgres. No worker runs in this module, so every job stays READY, as
DummyBackend's results do. Upstream tests that do not apply: INAPPLICABLE.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[django]')")
from tests.contrib.django.djproject.config import tasks_api

if tasks_api() is None:
    pytest.skip("needs Django 6 (django.tasks) or the django-tasks backport",
                allow_module_level=True)
from django.test import override_settings

from tests.conftest import count
from tests.contrib.django.upstream.api import (
    LOGGER,
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    default_task_backend,
)
from tests.contrib.django.upstream.conftest import raises

Status = TaskResultStatus
BACKEND = "pgqueue.contrib.django.TasksBackend"


def jobs(dsn: str, result: Any | None = None) -> int:
    """How many jobs are stored (or whether this result's job is)."""
    if result is None:
        return count(dsn, "SELECT count(*) FROM pgqueue.jobs")
    return count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", int(result.id))


def is_ready(result: Any, task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    assert result.status == Status.READY
    assert result.is_finished is False
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None,) * 3
    assert result.enqueued_at is not None
    with raises(ValueError, "Task has not finished yet"):
        result.return_value  # noqa: B018 (Django raises until the task has finished)
    assert (result.task, result.args, result.kwargs) == (task, args, kwargs)
    assert result.attempts == 0 and result.errors == []


@pytest.mark.parametrize("name", ["noop_task", "noop_task_async"])
def test_enqueue_task(tasks: ModuleType, db: str, name: str) -> None:
    task = getattr(tasks, name)
    result = task.enqueue(1, two=3)
    is_ready(result, task, [1], {"two": 3})
    # Upstream: the result is in DummyBackend.results. Here: the job is in Postgres.
    assert jobs(db, result) == 1


@pytest.mark.parametrize("name", ["noop_task", "noop_task_async"])
def test_enqueue_task_async(tasks: ModuleType, db: str, name: str) -> None:
    task = getattr(tasks, name)
    result = asyncio.run(task.aenqueue())
    is_ready(result, task, [], {})
    assert jobs(db, result) == 1


def test_get_result(tasks: ModuleType, db: str) -> None:
    result = default_task_backend.enqueue(tasks.noop_task, (), {})
    assert default_task_backend.get_result(result.id) == result
    assert tasks.noop_task.get_result(result.id) == result


def test_get_result_async(tasks: ModuleType, db: str) -> None:
    async def go() -> tuple[Any, Any, Any]:
        result = await default_task_backend.aenqueue(tasks.noop_task, (), {})
        return (result, await default_task_backend.aget_result(result.id),
                await tasks.noop_task.aget_result(result.id))

    result, from_backend, from_task = asyncio.run(go())
    assert result == from_backend == from_task


def test_refresh_result_changes_nothing_while_queued(tasks: ModuleType, db: str) -> None:
    # test_tasks.py's test_refresh_result. (test_dummy_backend.py's version edits the
    # stored result in memory first; refreshing a result a worker changed is in
    # test_worker.py, which every test there does.)
    result = asyncio.run(tasks.noop_task.aenqueue())
    original = dataclasses.asdict(result)
    result.refresh()
    assert dataclasses.asdict(result) == original
    asyncio.run(result.arefresh())
    assert dataclasses.asdict(result) == original


@pytest.mark.parametrize("result_id", [
    "123abc", "0", "-1", str(2**63 - 1),
    "99999999999999999999",  # beyond bigint: no job, not a database error
])
def test_get_missing_result(tasks: ModuleType, db: str, result_id: str) -> None:
    # Upstream asks for "123"; here that could be a real job's id, so: ids no job has.
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        tasks.noop_task.get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        asyncio.run(default_task_backend.aget_result(result_id))


def test_get_incorrect_result(tasks: ModuleType, db: str) -> None:
    result = default_task_backend.enqueue(tasks.noop_task_async, (), {})
    with raises(TaskResultMismatch, "Task does not match"):
        tasks.noop_task.get_result(result.id)
    with raises(TaskResultMismatch, "Task does not match"):
        asyncio.run(tasks.noop_task.aget_result(result.id))


def test_enqueue_logs(tasks: ModuleType, db: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        result = tasks.noop_task.enqueue()
    (line,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "enqueued" in line and result.id in line


def test_errors(tasks: ModuleType, db: str) -> None:
    assert tasks.noop_task.enqueue().errors == []


def test_takes_context(tasks: ModuleType, db: str) -> None:
    assert tasks.get_task_id.enqueue().status == Status.READY


def test_validate_disallowed_async_task(tasks: ModuleType, db: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default_task_backend, "supports_async_task", False)
    with raises(InvalidTask, "Backend does not support async"):
        default_task_backend.validate_task(tasks.noop_task_async)


def test_check(db: str) -> None:
    assert list(default_task_backend.check()) == []


def test_validate_on_enqueue(tasks: ModuleType, db: str) -> None:
    # Made where any queue is allowed (upstream's QUEUES: []), enqueued where it isn't.
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, "QUEUES": []}}):
        elsewhere = tasks.noop_task.using(queue_name="unknown_queue")
    before = jobs(db)
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, "QUEUES": ["queue-1"]}}):
        with raises(InvalidTask, "Queue 'unknown_queue' is not valid for backend"):
            elsewhere.enqueue()
        with raises(InvalidTask, "Queue 'unknown_queue' is not valid for backend"):
            asyncio.run(elsewhere.aenqueue())
    assert jobs(db) == before


@pytest.mark.parametrize("aio", [False, True], ids=["enqueue", "aenqueue"])
def test_enqueue_with_invalid_argument(tasks: ModuleType, db: str, aio: bool) -> None:
    before = jobs(db)
    with raises(TypeError, "Unsupported type"):
        if aio:
            asyncio.run(tasks.noop_task.aenqueue(dt.datetime.now()))
        else:
            tasks.noop_task.enqueue(dt.datetime.now())
    assert jobs(db) == before  # refused before anything was written
