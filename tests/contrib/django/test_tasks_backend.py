"""Django's task API (django.tasks, or the backport) on pgqueue: enqueue, run, read back."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[django]')")
from django.db import transaction
from django.utils import timezone

from pgqueue.contrib.django import get_app
from tests.conftest import count, running_worker, wait_for
from tests.contrib.django.djproject.config import tasks_api

if tasks_api() is None:
    pytest.skip("needs Django 6 (django.tasks) or the django-tasks backport",
                allow_module_level=True)

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def api() -> Any:
    from pgqueue.contrib.django import _compat

    return _compat


@pytest.fixture
def worker(db: str) -> Iterator[None]:
    with running_worker(get_app(), poll_interval=0.2):
        yield


def finished(result: Any, timeout: float = 10) -> Any:
    """Refresh ``result`` (Django's API) until its task has finished."""
    assert wait_for(lambda: (result.refresh(), result.is_finished)[1], timeout), result.status
    return result


def test_a_task_runs_on_a_worker_and_its_result_reads_back(shop: ModuleType, api: Any,
                                                           worker: None) -> None:
    result = shop.add.enqueue(2, 3)
    assert result.status == api.TaskResultStatus.READY and result.id.isdigit()
    finished(result)
    assert result.status == api.TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.errors == [] and result.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert timezone.is_aware(result.finished_at)

    again = shop.add.get_backend().get_result(result.id)
    assert (again.status, again.return_value, again.args) == (result.status, 5, [2, 3])
    assert shop.add.get_result(result.id).return_value == 5
    # The job carries the task's module path as its name: monitoring shows each task.
    assert count(get_app().dsn(), "SELECT count(*) FROM pgqueue.jobs WHERE task = %s",
                 "tests.contrib.django.djproject.shop.tasks.add") == 1


def test_a_failing_task_shows_failed_with_its_error(shop: ModuleType, api: Any,
                                                    worker: None) -> None:
    division = finished(shop.divide.enqueue(1, 0))
    declined = finished(shop.charge.enqueue(500))
    assert division.status == declined.status == api.TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="failed"):
        division.return_value  # noqa: B018 (Django raises here for a failed task)
    (error,) = division.errors
    assert error.exception_class_path == "builtins.ZeroDivisionError"
    assert error.exception_class is ZeroDivisionError
    assert "ZeroDivisionError: division by zero" in error.traceback
    (error,) = declined.errors
    assert error.exception_class is shop.PaymentDeclined
    assert "card declined for 500 cents" in error.traceback


def test_context_async_and_queue_options(shop: ModuleType, api: Any, worker: None) -> None:
    who = finished(shop.whoami.enqueue())
    assert who.return_value == {"id": who.id, "attempt": 1}
    assert finished(shop.shout.enqueue("hi")).return_value == "HI"
    signup = shop.Signup.objects.create(email="ada@example.com")
    mail = finished(shop.welcome_by_django.enqueue(signup.pk))
    assert mail.return_value == "ada@example.com"
    assert (mail.task.queue_name, mail.task.priority) == ("emails", 10)


def test_options_are_stored_with_the_job(shop: ModuleType, db: str) -> None:
    later = timezone.now() + dt.timedelta(hours=1)
    result = shop.add.using(priority=-7, queue_name="emails", run_after=later).enqueue(1, 1)
    assert count(db, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s AND priority = -7 "
                     "AND queue = 'emails' AND run_at = %s", int(result.id), later) == 1
    result.refresh()
    assert (result.task.priority, result.task.queue_name) == (-7, "emails")


def test_invalid_tasks_and_arguments_are_refused_before_anything_is_written(
        shop: ModuleType, api: Any, db: str) -> None:
    refused: list[Callable[[], Any]] = [
        lambda: shop.add.using(queue_name="reports"),  # not in TASKS' QUEUES
        lambda: shop.add.using(priority=101),  # Django's range is -100..100
        lambda: shop.add.using(run_after=dt.datetime(2030, 1, 1)),  # naive, with USE_TZ
    ]
    for make in refused:
        with pytest.raises(api.InvalidTask):
            make()
    with pytest.raises(TypeError):
        shop.add.enqueue({1, 2}, 3)  # not JSON
    assert count(db, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_enqueue_joins_atomic_and_rolls_back_with_it(shop: ModuleType, api: Any,
                                                     db: str) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        result = shop.add.enqueue(1, 2)
        assert shop.add.get_result(result.id).status == api.TaskResultStatus.READY
        raise RuntimeError("rolled back")
    with pytest.raises(api.TaskResultDoesNotExist):
        shop.add.get_result(result.id)


def test_unknown_and_foreign_ids_do_not_exist(shop: ModuleType, api: Any) -> None:
    backend = shop.add.get_backend()
    native = shop.welcome.apply_async(args=(1,), countdown=60)  # a pgqueue task, not Django's
    for result_id in ("nope", "999999", str(native.id)):
        with pytest.raises(api.TaskResultDoesNotExist):
            backend.get_result(result_id)


def test_the_async_api(shop: ModuleType, api: Any) -> None:
    async def go() -> tuple[Any, Any]:
        result = await shop.add.aenqueue(4, 5)
        return result, await shop.add.aget_result(result.id)

    result, again = asyncio.run(go())
    assert again.id == result.id and again.status == api.TaskResultStatus.READY
    assert again.args == [4, 5]


def test_a_cancelled_job_reads_as_failed(shop: ModuleType, api: Any) -> None:
    result = shop.add.using(run_after=timezone.now() + dt.timedelta(hours=1)).enqueue(1, 1)
    get_app().AsyncResult(int(result.id)).cancel()
    result.refresh()
    assert result.status == api.TaskResultStatus.FAILED
    assert result.errors[-1].exception_class_path == "pgqueue.errors.JobCancelled"


def test_the_system_check_names_queues_no_worker_serves(api: Any) -> None:
    from pgqueue.contrib.django import TasksBackend

    backend = TasksBackend("extra", {"QUEUES": ["default", "reports", "bad name"]})
    messages = {m.id: m.msg for m in backend.check()}
    assert "'reports'" in messages["pgqueue.W001"]
    assert "invalid queue name 'bad name'" in messages["pgqueue.E001"]


def test_enqueue_returns_the_result_that_get_result_reads_back(shop: ModuleType,
                                                                db: str) -> None:
    later = timezone.now() + dt.timedelta(hours=1)
    earlier = timezone.now() - dt.timedelta(minutes=5)
    for task in (shop.add, shop.add.using(priority=-7, queue_name="emails", run_after=later),
                 shop.add.using(run_after=earlier)):
        with transaction.atomic():
            result = task.enqueue(1, 2)
            inside = task.get_backend().get_result(result.id)
        again = task.get_backend().get_result(result.id)
        assert again == inside == result
        assert again.task.run_after == task.run_after
        assert result.enqueued_at == _stored(db, "created_at", result.id)


def _stored(dsn: str, column: str, job_id: str) -> object:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT {column} FROM pgqueue.jobs WHERE id = %s",
                           (int(job_id),)).fetchone()
    assert row is not None
    return row[0]


def test_the_async_api_reads_back_what_it_enqueued(shop: ModuleType) -> None:
    later = timezone.now() + dt.timedelta(minutes=30)

    async def go() -> tuple[Any, Any]:
        result = await shop.add.using(run_after=later).aenqueue(4, 5)
        return result, await shop.add.aget_result(result.id)

    result, again = asyncio.run(go())
    assert again == result and again.task.run_after == later
