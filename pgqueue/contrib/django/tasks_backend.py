"""``TasksBackend``: Django's task API (``django.tasks``, Django 6+) on pgqueue.

::

    TASKS = {"default": {"BACKEND": "pgqueue.contrib.django.TasksBackend",
                         "QUEUES": ["default", "emails"]}}

Code written against Django's standard API (``@task``, ``f.enqueue(...)``,
``result.refresh()``, ``backend.get_result(id)``) then runs on pgqueue workers
(``manage.py pgq_worker``). Each ``enqueue`` writes one job, on Django's
connection, so inside ``transaction.atomic()`` it commits or rolls back with
your rows. A result's id is the job's id (as a string), and results are read
back from pgqueue's tables, on Django's connection too. How a job's state maps
onto Django's statuses: queued is READY, running is RUNNING, succeeded is
SUCCESSFUL, and failed or cancelled is FAILED. The worker's side is in
:mod:`pgqueue.contrib.django.runner`.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import functools
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils import timezone

import pgqueue.errors
from pgqueue.contrib.django._compat import (
    BaseTaskBackend,
    InvalidTask,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
)
from pgqueue.contrib.django.application import get_app
from pgqueue.contrib.django.runner import django_task, register
from pgqueue.errors import ConfigurationError
from pgqueue.monitor import JobDetail, Monitor
from pgqueue.settings import Settings

STATUS = {
    "queued": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    # Django has no "cancelled": the task was unable to run to an end.
    "cancelled": TaskResultStatus.FAILED,
}

# The line a traceback ends with: "shop.errors.PaymentError: card declined".
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


@functools.lru_cache(maxsize=256)
def queue_problem(name: str) -> str | None:
    """Why pgqueue would refuse this queue name, or None (pgqueue's own rule, via Settings)."""
    try:
        Settings(queues=(name,))
    except ConfigurationError as exc:
        return str(exc)
    return None


def exception_path(type_name: str, text: str) -> str:
    """The import path of a recorded error's class, for ``TaskError.exception_class_path``.

    pgqueue records the class's qualified name; its module is on the traceback's
    last line (Python prints it there for all but builtins), and pgqueue's own
    errors (``TimeLimitExceeded``, ...) live in :mod:`pgqueue.errors`.
    """
    path = type_name
    for line in reversed(text.splitlines()):
        match = _EXCEPTION_LINE.match(line)
        if match and (match[1] == type_name or match[1].endswith("." + type_name)):
            path = match[1]
            break
    if "." in path:
        return path
    for module in (builtins, pgqueue.errors):
        if isinstance(getattr(module, path, None), type):
            return f"{module.__name__}.{path}"
    return path


def _local(value: dt.datetime | None) -> dt.datetime | None:
    """A datetime as Django code expects it: aware with USE_TZ, naive local time without."""
    if value is None or settings.USE_TZ or timezone.is_naive(value):
        return value
    naive: dt.datetime = timezone.make_naive(value)
    return naive


def _run_after(detail: JobDetail) -> dt.datetime | None:
    """The ``run_after`` a job was enqueued with: its stored run_at, unless that is its
    enqueue time (no run_after given). A retried or replayed job's run_at has moved on,
    and is what this returns then."""
    return None if detail.run_at == detail.created_at else _local(detail.run_at)


class TasksBackend(BaseTaskBackend):
    """django.tasks backend on pgqueue: results persist, and any process can read them.

    ``aenqueue`` and ``aget_result`` are Django's defaults: the sync methods in a
    thread (``sync_to_async``), on that thread's Django connection, as Django's
    async ORM does.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True  # -100..100 in Django; higher runs first in both

    def validate_task(self, task: Any) -> None:
        """Django's checks, pgqueue's queue-name rule; then make the task known to pgqueue."""
        super().validate_task(task)
        problem = queue_problem(task.queue_name)
        if problem is not None:
            raise InvalidTask(problem)
        # Every Task is validated when it is made (@task, .using()): register it then,
        # so the worker that imported it knows it by name.
        register(get_app(), task)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Write the job (on Django's connection) and return its READY TaskResult."""
        self.validate_task(task)
        # Django's contract: arguments are JSON. Check before anything is written.
        args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        eta = task.run_after
        if eta is not None and timezone.is_naive(eta):  # possible only without USE_TZ
            eta = timezone.make_aware(eta)
        job = get_app().send_task(task.module_path, args, kwargs, queue=task.queue_name,
                                  priority=task.priority, eta=eta)
        result = TaskResult(
            task=task, id=str(job.id), status=TaskResultStatus.READY,
            # The time the database stored (the INSERT returns it), so that
            # get_result(id) reads back this very result.
            enqueued_at=_local(job.enqueued_at), started_at=None, finished_at=None,
            last_attempted_at=None, args=args, kwargs=kwargs, backend=self.alias, errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        """The TaskResult of job ``result_id``, as stored now; TaskResultDoesNotExist if none."""
        try:
            job_id = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        detail = Monitor(get_app()).job(job_id)
        if detail is None:
            raise TaskResultDoesNotExist(result_id)
        task = django_task(detail.task)
        if task is None:
            raise TaskResultDoesNotExist(
                f"job {job_id} runs {detail.task!r}, which is not a django.tasks task; read "
                "it with pgqueue's API: get_app().AsyncResult(job_id)"
            )
        return self._result(task, detail)

    def _result(self, task: Any, detail: JobDetail) -> Any:
        status = STATUS[detail.state]
        # The task as it was enqueued (.using(queue_name=..., priority=..., run_after=...)),
        # unless this process's TASKS no longer allows that queue: then its defaults.
        with contextlib.suppress(InvalidTask):
            task = task.using(queue_name=detail.queue, priority=detail.priority,
                              run_after=_run_after(detail))
        result = TaskResult(
            task=task, id=str(detail.id), status=status,
            enqueued_at=_local(detail.created_at), started_at=_local(detail.started_at),
            finished_at=_local(detail.finished_at), last_attempted_at=_local(detail.started_at),
            args=detail.args, kwargs=detail.kwargs, backend=self.alias,
            errors=list(self._errors(detail)),
            # Django counts attempts as len(worker_ids); pgqueue keeps the last worker only.
            worker_ids=[detail.worker or "unknown"] * detail.attempts,
        )
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(result, "_return_value", detail.result)
        return result

    @staticmethod
    def _errors(detail: JobDetail) -> Iterable[Any]:
        for attempt in detail.attempts_history:
            yield TaskError(
                exception_class_path=exception_path(attempt.type, attempt.traceback),
                # pgqueue's own errors (a time limit, a lost worker) carry no traceback.
                traceback=attempt.traceback or f"{attempt.type}: {attempt.message}",
            )
        if detail.state == "cancelled" and not detail.attempts_history:
            yield TaskError(exception_class_path="pgqueue.errors.JobCancelled",
                            traceback=f"JobCancelled: job {detail.id} was cancelled")

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Bad queue names, and queues that no worker serves unless told to."""
        messages = list(super().check(**kwargs))
        served = set(get_app().settings.queues)
        for queue in sorted(self.queues):
            problem = queue_problem(queue)
            if problem is not None:
                messages.append(checks.Error(
                    f"TASKS[{self.alias!r}]['QUEUES']: {problem}", id="pgqueue.E001"))
            elif queue not in served:
                messages.append(checks.Warning(
                    f"TASKS[{self.alias!r}]['QUEUES'] has {queue!r}, which pgq_worker does "
                    f"not serve unless told to (PGQUEUE['QUEUES'] is {sorted(served)})",
                    hint=f"add {queue!r} to PGQUEUE['QUEUES'], or start a worker with "
                         f"manage.py pgq_worker --queues {queue}",
                    id="pgqueue.W001"))
        return messages
