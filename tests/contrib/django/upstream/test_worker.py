"""Django's ``tests/tasks`` backend tests, with the task run by a real pgqueue worker.

Adapted from ``test_immediate_backend.py`` (and the run-dependent parts of
``test_dummy_backend.py`` and ``test_tasks.py``) in the Django 6.1 sdist
(BSD-3-Clause, Copyright (c) Django Software Foundation and individual
contributors). Where ImmediateBackend has run a task by the time ``enqueue``
returns, here the result is READY and the test waits (``refresh()``) for the
worker subprocess; the log lines ImmediateBackend writes in the caller come
from the worker. Upstream tests that do not apply, and why: INAPPLICABLE.md.
"""

from __future__ import annotations

import asyncio
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
from django.db import transaction
from django.utils import timezone

from pgqueue.contrib.django import TasksBackend
from tests.conftest import count
from tests.contrib.django.upstream.api import (
    LOGGER,
    TaskResultStatus,
    default_task_backend,
    task_backends,
)
from tests.contrib.django.upstream.conftest import (
    WorkerProcess,
    finished,
    raises,
    start_worker,
    stop_worker,
)

Status = TaskResultStatus


def ran_in_order(result: Any) -> None:
    """What every upstream test checks of a finished result's timestamps."""
    assert result.is_finished is True
    assert None not in (result.started_at, result.last_attempted_at, result.finished_at)
    assert result.enqueued_at <= result.started_at <= result.finished_at


def test_using_correct_backend(django_dsn: str) -> None:
    assert default_task_backend == task_backends["default"]
    assert isinstance(task_backends["default"], TasksBackend)
    assert default_task_backend.alias == "default"
    assert default_task_backend.options == {}


@pytest.mark.parametrize("name", ["noop_task", "noop_task_async"])
def test_enqueue_task(tasks: ModuleType, worker: WorkerProcess, name: str) -> None:
    task = getattr(tasks, name)
    result = task.enqueue(1, two=3)
    assert result.status == Status.READY
    finished(result)
    assert result.status == Status.SUCCESSFUL
    ran_in_order(result)
    assert result.return_value is None
    assert (result.task, result.args, result.kwargs) == (task, [1], {"two": 3})
    assert result.attempts == 1
    assert task.get_result(result.id).task == task


@pytest.mark.parametrize("name", ["noop_task", "noop_task_async"])
def test_enqueue_task_async(tasks: ModuleType, worker: WorkerProcess, name: str) -> None:
    task = getattr(tasks, name)

    async def go() -> Any:
        result = await task.aenqueue()
        while not result.is_finished:
            await asyncio.sleep(0.05)
            await result.arefresh()
        return result

    result = asyncio.run(asyncio.wait_for(go(), 15))
    assert result.status == Status.SUCCESSFUL
    ran_in_order(result)
    assert result.return_value is None
    assert (result.task, result.args, result.kwargs) == (task, [], {})
    assert result.attempts == 1


@pytest.mark.parametrize(("name", "exception", "message"), [
    ("failing_task_value_error", ValueError, "This Task failed due to ValueError"),
    # The worker records a SystemExit as the task's failure, and lives on.
    ("failing_task_system_exit", SystemExit, "This Task failed due to SystemExit"),
])
def test_catches_exception(tasks: ModuleType, worker: WorkerProcess, name: str,
                           exception: type[BaseException], message: str) -> None:
    task = getattr(tasks, name)
    result = finished(task.enqueue())
    assert result.status == Status.FAILED
    with raises(ValueError, "Task failed"):
        result.return_value  # noqa: B018 (Django raises for a failed task)
    ran_in_order(result)
    assert result.errors[0].exception_class is exception
    assert result.errors[0].traceback.endswith(f"{exception.__name__}: {message}\n")
    assert (result.task, result.args, result.kwargs) == (task, [], {})
    # Django's receiver logs the failure at ERROR, with the traceback, in the worker.
    (_, failed) = worker.lines_about(result.id, 2)
    assert f" ERROR {LOGGER}: " in failed and "state=FAILED" in failed
    log = worker.log()
    assert message in log[log.index(failed):]


def test_keyboard_interrupt_fails_the_task_not_the_worker(
        tasks: ModuleType, worker: WorkerProcess) -> None:
    # Upstream: ImmediateBackend lets KeyboardInterrupt through to the caller.
    # A worker has no caller to interrupt: the task fails, and the worker serves on.
    result = finished(tasks.failing_task_keyboard_interrupt.enqueue())
    assert result.status == Status.FAILED
    assert result.errors[0].exception_class is KeyboardInterrupt
    assert finished(tasks.calculate_meaning_of_life.enqueue()).return_value == 42
    assert worker.proc.poll() is None


def test_complex_exception(tasks: ModuleType, worker: WorkerProcess) -> None:
    result = finished(tasks.complex_exception.enqueue())
    assert result.status == Status.FAILED
    with raises(ValueError, "Task failed"):
        result.return_value  # noqa: B018
    ran_in_order(result)
    assert result._return_value is None
    assert result.errors[0].exception_class is ValueError
    assert 'ValueError(ValueError("This task failed"))' in result.errors[0].traceback
    assert (result.task, result.args, result.kwargs) == (tasks.complex_exception, [], {})


def test_complex_return_value(tasks: ModuleType, worker: WorkerProcess) -> None:
    result = finished(tasks.complex_return_value.enqueue())
    assert result.status == Status.FAILED
    ran_in_order(result)
    assert result._return_value is None
    assert result.errors[0].exception_class is TypeError
    assert "Unsupported type" in result.errors[0].traceback


def test_result(tasks: ModuleType, worker: WorkerProcess) -> None:
    result = default_task_backend.enqueue(tasks.calculate_meaning_of_life, [], {})
    assert finished(result).status == Status.SUCCESSFUL
    assert result.return_value == 42


def test_result_async(tasks: ModuleType, worker: WorkerProcess) -> None:
    result = asyncio.run(default_task_backend.aenqueue(tasks.calculate_meaning_of_life,
                                                       [], {}))
    assert finished(result).status == Status.SUCCESSFUL
    assert result.return_value == 42


def test_get_and_refresh_result_from_another_process(tasks: ModuleType,
                                                     worker: WorkerProcess) -> None:
    # Upstream (test_cannot_get_result, test_cannot_refresh_result): ImmediateBackend
    # raises NotImplementedError. pgqueue supports_get_result: the worker process
    # wrote this result, and this process reads it, sync and async.
    assert default_task_backend.supports_get_result is True
    result = asyncio.run(default_task_backend.aenqueue(tasks.calculate_meaning_of_life,
                                                       (), {}))
    finished(result)
    again = default_task_backend.get_result(result.id)
    assert again == result and again.return_value == 42
    assert asyncio.run(default_task_backend.aget_result(int(result.id))) == result


def test_run_after_is_honoured(tasks: ModuleType, worker: WorkerProcess) -> None:
    # Upstream (test_cannot_pass_run_after): ImmediateBackend refuses run_after.
    # pgqueue supports_defer: the job waits for it, by the database's clock.
    assert default_task_backend.supports_defer is True
    due = timezone.now() + dt.timedelta(seconds=1.5)
    deferred = tasks.calculate_meaning_of_life.using(run_after=due)
    default_task_backend.validate_task(deferred)
    result = deferred.enqueue()
    assert result.task.run_after == due
    finished(result)
    assert result.started_at >= due
    assert tasks.calculate_meaning_of_life.get_result(result.id).task.run_after == due


def test_enqueue_logs(tasks: ModuleType, worker: WorkerProcess,
                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        result = tasks.noop_task.enqueue()
    (enqueued,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "enqueued" in enqueued and result.id in enqueued
    finished(result)
    running, done = worker.lines_about(result.id, 2)
    assert "state=RUNNING" in running and "state=SUCCESSFUL" in done


def test_failed_logs(tasks: ModuleType, worker: WorkerProcess) -> None:
    result = finished(tasks.failing_task_value_error.enqueue())
    running, failed = worker.lines_about(result.id, 2)
    assert "state=RUNNING" in running and "state=FAILED" in failed


def test_successful_task_no_none_in_logs(tasks: ModuleType, worker: WorkerProcess,
                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        result = finished(tasks.noop_task.enqueue())
    assert result.status == Status.SUCCESSFUL
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    lines += worker.lines_about(result.id, 2)
    assert len(lines) == 3
    for line in lines:
        assert "None" not in line


def test_takes_context(tasks: ModuleType, worker: WorkerProcess) -> None:
    result = finished(tasks.get_task_id.enqueue())
    assert result.return_value == result.id


def test_context(tasks: ModuleType, worker: WorkerProcess) -> None:
    assert finished(tasks.check_context.enqueue(1)).status == Status.SUCCESSFUL


def test_task_error_invalid_exception_and_unknown_module(tasks: ModuleType,
                                                          worker: WorkerProcess) -> None:
    # Upstream ran the failing task on ImmediateBackend; here a worker recorded it.
    result = finished(tasks.failing_task_value_error.enqueue())
    (error,) = result.errors
    object.__setattr__(error, "exception_class_path", "subprocess.run")
    with raises(ValueError, "'subprocess.run' does not reference a valid"):
        error.exception_class  # noqa: B018
    object.__setattr__(error, "exception_class_path", "does.not.exist")
    with pytest.raises(ImportError):
        error.exception_class  # noqa: B018


def test_enqueue_waits_for_the_transaction_to_commit(tasks: ModuleType, django_dsn: str,
                                                     worker: WorkerProcess) -> None:
    # Upstream (test_doesnt_wait_until_transaction_commit_by_default): Django's
    # backends run or store the task at once, inside the transaction or not.
    # pgqueue writes the job on Django's connection: it commits with the
    # transaction, so no worker can start it before, and a rollback drops it.
    with transaction.atomic():
        result = tasks.calculate_meaning_of_life.enqueue()
        assert result.enqueued_at is not None
        # Another connection (any worker's) sees no job yet.
        assert count(django_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s",
                     int(result.id)) == 0
        assert default_task_backend.get_result(result.id).status == Status.READY
    assert finished(result).return_value == 42
    with transaction.atomic():
        dropped = tasks.calculate_meaning_of_life.enqueue()
        transaction.set_rollback(True)
    assert count(django_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s",
                 int(dropped.id)) == 0


def test_priorities_order_the_queue(tasks: ModuleType, django_dsn: str,
                                    tmp_path: Any) -> None:
    # Upstream (test_backend_does_not_support_priority) checks that a backend
    # without supports_priority refuses priority=. pgqueue supports it, over
    # Django's whole range: a lone worker starts the higher priority first.
    queued = [tasks.noop_task.using(queue_name="emails", priority=p).enqueue(p)
              for p in (-100, 0, 100, 7)]
    lone = start_worker(django_dsn, tmp_path / "lone.log", "--queues", "emails",
                        "--concurrency", "1")
    try:
        done = [finished(result) for result in queued]
    finally:
        stop_worker(lone)
    by_start = sorted(done, key=lambda result: result.started_at)
    assert [result.args[0] for result in by_start] == [100, 7, 0, -100]
    assert [result.task.priority for result in done] == [-100, 0, 100, 7]
