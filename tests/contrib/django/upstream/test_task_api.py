"""Django's ``tests/tasks/test_tasks.py``, on pgqueue's backend: the Task API it validates.

Adapted from the Django 6.1 sdist (BSD-3-Clause, Copyright (c) Django Software
Foundation and individual contributors). Upstream makes its tasks under
DummyBackend; here every ``@task`` and ``.using()`` goes through pgqueue's
``validate_task`` (Django's checks, then pgqueue's queue-name rule, then
registration with the App). The tests that need a task to run are in
test_worker.py, those of enqueue and get_result in test_enqueue.py; the
inapplicable ones are listed in INAPPLICABLE.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
from collections.abc import Iterator
from types import ModuleType

import pytest

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[django]')")
from tests.contrib.django.djproject.config import tasks_api

if tasks_api() is None:
    pytest.skip("needs Django 6 (django.tasks) or the django-tasks backport",
                allow_module_level=True)
from django.test import override_settings
from django.utils import timezone
from django.utils.module_loading import import_string

from pgqueue.contrib.django import TasksBackend
from tests.contrib.django.upstream.api import (
    DEFAULT_TASK_QUEUE_NAME,
    PICKLES,
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    InvalidTask,
    InvalidTaskBackend,
    Task,
    default_task_backend,
    task,
    task_backends,
)
from tests.contrib.django.upstream.conftest import raises

BACKEND = "pgqueue.contrib.django.TasksBackend"
# Upstream's TASKS, with pgqueue's backend for its Dummy and Immediate ones.
UPSTREAM_TASKS = {
    "default": {"BACKEND": BACKEND, "QUEUES": ["default", "emails"]},
    "open": {"BACKEND": BACKEND, "QUEUES": []},
    "missing": {"BACKEND": "does.not.exist"},
}
PATH = "tests.contrib.django.upstream.tasks"


@pytest.fixture(autouse=True)
def upstream_tasks_setting(django_dsn: str) -> Iterator[None]:
    with override_settings(TASKS=UPSTREAM_TASKS):
        yield


def test_task_decorator(tasks: ModuleType) -> None:
    for made in (tasks.noop_task, tasks.noop_task_async, tasks.noop_task_from_bare_decorator):
        assert isinstance(made, Task)


def test_using_priority(tasks: ModuleType) -> None:
    assert tasks.noop_task.priority == 0
    assert tasks.noop_task.using(priority=1).priority == 1
    assert tasks.noop_task.priority == 0


def test_using_queue_name(tasks: ModuleType) -> None:
    assert tasks.noop_task.queue_name == DEFAULT_TASK_QUEUE_NAME
    assert tasks.noop_task.using(queue_name="emails").queue_name == "emails"
    assert tasks.noop_task.queue_name == DEFAULT_TASK_QUEUE_NAME


def test_using_run_after(tasks: ModuleType) -> None:
    now = timezone.now()
    assert tasks.noop_task.run_after is None
    assert tasks.noop_task.using(run_after=now).run_after == now
    assert tasks.noop_task.run_after is None


def test_using_unknown_backend(tasks: ModuleType) -> None:
    assert tasks.noop_task.backend == "default"
    with raises(InvalidTaskBackend, "The connection 'unknown' doesn't exist."):
        tasks.noop_task.using(backend="unknown")


def test_using_missing_backend(tasks: ModuleType) -> None:
    with raises(InvalidTaskBackend,
                "Could not find backend 'does.not.exist': No module named 'does'"):
        tasks.noop_task.using(backend="missing")


def test_using_creates_new_instance(tasks: ModuleType) -> None:
    new = tasks.noop_task.using()
    assert new == tasks.noop_task and new is not tasks.noop_task


def test_chained_using(tasks: ModuleType) -> None:
    now = timezone.now()
    deferred = tasks.noop_task.using(run_after=now)
    assert deferred.run_after == now
    urgent = deferred.using(priority=10)
    assert (urgent.priority, urgent.run_after) == (10, now)
    assert deferred.priority == 0


def test_naive_datetime(tasks: ModuleType) -> None:
    with raises(InvalidTask, "run_after must be an aware datetime."):
        tasks.noop_task.using(run_after=dt.datetime.now())


@pytest.mark.parametrize("priority", [-101, 101, 3.1])
def test_invalid_priority(tasks: ModuleType, priority: float) -> None:
    message = (f"priority must be a whole number between {TASK_MIN_PRIORITY} and "
               f"{TASK_MAX_PRIORITY}.")
    with raises(InvalidTask, message):
        tasks.noop_task.using(priority=priority)


def test_valid_priorities(tasks: ModuleType) -> None:
    # That pgqueue stores and orders them too: test_worker.py's priority test.
    for priority in (100, -100, 0):
        assert tasks.noop_task.using(priority=priority).priority == priority


def test_unknown_queue_name(tasks: ModuleType) -> None:
    with raises(InvalidTask, "Queue 'queue-2' is not valid for backend."):
        tasks.noop_task.using(queue_name="queue-2")
    # An empty QUEUES lets any queue through Django's check...
    assert tasks.noop_task.using(queue_name="queue-2", backend="open").queue_name == "queue-2"
    # ...but not through pgqueue's own rule for queue names (not upstream: pgqueue's).
    with raises(InvalidTask, "queue"):
        tasks.noop_task.using(queue_name="no spaces; please", backend="open")


def test_call_task(tasks: ModuleType) -> None:
    assert tasks.calculate_meaning_of_life.call() == 42


def test_call_task_async(tasks: ModuleType) -> None:
    assert asyncio.run(tasks.calculate_meaning_of_life.acall()) == 42


def test_call_async_task(tasks: ModuleType) -> None:
    assert asyncio.run(tasks.noop_task_async.acall()) is None


def test_call_async_task_sync(tasks: ModuleType) -> None:
    assert tasks.noop_task_async.call() is None


class Holder:
    def method(self) -> None: ...


@pytest.mark.parametrize("function", [any, Holder().method], ids=["builtin", "method"])
def test_invalid_function(function: object) -> None:
    with raises(InvalidTask, "Task function must be defined at a module level."):
        task()(function)


def test_get_backend(tasks: ModuleType) -> None:
    assert tasks.noop_task.backend == "default"
    assert isinstance(tasks.noop_task.get_backend(), TasksBackend)
    other = tasks.noop_task.using(backend="open")
    assert other.backend == "open"
    assert other.get_backend() is task_backends["open"] is not default_task_backend


def test_name(tasks: ModuleType) -> None:
    assert tasks.noop_task.name == "noop_task"
    assert tasks.noop_task_async.name == "noop_task_async"


def test_module_path(tasks: ModuleType) -> None:
    for made, name in ((tasks.noop_task, "noop_task"),
                       (tasks.noop_task_async, "noop_task_async")):
        assert made.module_path == f"{PATH}.{name}"
        assert import_string(made.module_path) is made


@PICKLES
def test_pickle_task(tasks: ModuleType) -> None:
    assert pickle.loads(pickle.dumps(tasks.noop_task)) == tasks.noop_task


@PICKLES
@pytest.mark.parametrize("path", ["does.not.exist.fake_task", "builtins.any"])
def test_unpickle_what_is_no_task(path: str) -> None:
    with raises(ValueError, f"Expected '{path}' to point to a Task instance."):
        Task._reconstruct({"func": path})


@PICKLES
def test_pickle_task_result(tasks: ModuleType, db: str) -> None:
    result = tasks.noop_task.enqueue()
    assert pickle.loads(pickle.dumps(result)) == result


def test_no_backends(tasks: ModuleType) -> None:
    with override_settings(TASKS={}), pytest.raises(InvalidTaskBackend):
        tasks.noop_task.enqueue()


def test_takes_context_without_taking_context(tasks: ModuleType) -> None:
    with raises(InvalidTask, "Task takes context but does not have a first "
                                          "argument of 'context'."):
        task(takes_context=True)(tasks.calculate_meaning_of_life.func)


def test_run_after_in_decorator(tasks: ModuleType) -> None:
    # Django 6: "run_after cannot be defined statically with the @task decorator."
    with raises(TypeError, "run_after"):
        task(run_after=timezone.now())(tasks.calculate_meaning_of_life.func)
