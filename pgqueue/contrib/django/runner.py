"""Runs django.tasks tasks in pgqueue workers, found by their module path.

The backend enqueues a django.tasks task as a pgqueue job named after the
function's module path (``shop.tasks.send_welcome_email``), so monitoring
(``pgq status``, the dashboard) shows each task under its own name. In the
worker that name resolves to a pgqueue task whose function is one of the two
runners here: it imports the django.tasks task by that path, and calls it the
way Django's own backends do (a ``TaskContext`` first if it ``takes_context``,
the ``task_started`` / ``task_finished`` signals around it, the return value
normalised to JSON). Tasks are registered when they are defined (the backend
validates every new ``Task``) or, in a worker that has not imported their
module, on first lookup (:class:`pgqueue.contrib.django.application.TaskRegistry`).
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Sequence
from inspect import iscoroutinefunction
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.module_loading import import_string

from pgqueue.contrib.django._compat import (
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)
from pgqueue.task import Task as PgTask

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.context import JobContext


def worker_name() -> str:
    """The name pgqueue gives a worker by default (``host:pid``), for ``worker_ids``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def register(app: App, task: Any) -> PgTask[Any, Any]:
    """The pgqueue task that runs ``task`` (a django.tasks Task), registering it if new."""
    name: str = task.module_path
    # dict.get, not app.tasks.get: a miss must not start a lookup by path (that is us).
    existing = dict.get(app.tasks, name)
    if existing is not None:
        return existing
    runner = run_coroutine if iscoroutinefunction(task.func) else run_function
    # Queue and priority come with each job (from the django Task); these are never used.
    registered = PgTask(app, runner, name=name, queue="default", priority=0, bind=True)
    app.tasks[name] = registered
    return registered


def resolve(app: App, name: str) -> PgTask[Any, Any] | None:
    """The runner for the django.tasks task at module path ``name``; None if there is none."""
    task = django_task(name)
    return None if task is None else register(app, task)


def django_task(path: str) -> Any | None:
    """The django.tasks Task at ``path`` (``module.function``), or None."""
    try:
        found = import_string(path)
    except ImportError:
        return None
    return found if isinstance(found, Task) else None


def error_of(exc: BaseException) -> Any:
    """Django's record of an exception: its class's import path, and the traceback."""
    kind = type(exc)
    return TaskError(exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
                     traceback="".join(traceback.format_exception(exc)))


def _start(job: JobContext, args: Sequence[Any], kwargs: dict[str, Any]
           ) -> tuple[Any, Any, Any]:
    """The task, its backend, and the TaskResult of this attempt, as Django's backends make it."""
    task = django_task(job.task)
    if task is None:
        raise LookupError(f"{job.task!r} is not a django.tasks task (a function decorated "
                          "with @task) that this worker can import")
    backend = task.get_backend()
    now = timezone.now()
    result = TaskResult(
        task=task, id=str(job.job_id), status=TaskResultStatus.RUNNING, enqueued_at=None,
        started_at=now, finished_at=None, last_attempted_at=now, args=list(args),
        kwargs=dict(kwargs), backend=backend.alias, errors=[],
        # Django counts attempts as len(worker_ids); pgqueue knows only this one's worker.
        worker_ids=[worker_name()] * max(job.attempt, 1),
    )
    task_started.send(type(backend), task_result=result)
    return task, backend, result


def _arguments(task: Any, result: Any, args: Sequence[Any]) -> list[Any]:
    return [TaskContext(task_result=result), *args] if task.takes_context else list(args)


def _failed(backend: Any, result: Any, exc: BaseException) -> None:
    object.__setattr__(result, "finished_at", timezone.now())
    object.__setattr__(result, "status", TaskResultStatus.FAILED)
    result.errors.append(error_of(exc))
    # Sent while the exception is being handled: Django's logging receiver reads exc_info.
    task_finished.send(type(backend), task_result=result)


def _succeeded(backend: Any, result: Any, value: Any) -> Any:
    object.__setattr__(result, "finished_at", timezone.now())
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "_return_value", value)
    task_finished.send(type(backend), task_result=result)
    return value


def run_function(job: JobContext, *args: Any, **kwargs: Any) -> Any:
    """The pgqueue task function behind every plain django.tasks task.

    Django's connections are refreshed around it by the App's around_task hook.
    """
    task, backend, result = _start(job, args, kwargs)
    try:
        # normalize_json: return what Django's own backends would (and fail alike).
        value = normalize_json(task.call(*_arguments(task, result, args), **kwargs))
    except BaseException as exc:
        _failed(backend, result, exc)
        raise
    return _succeeded(backend, result, value)


async def run_coroutine(job: JobContext, *args: Any, **kwargs: Any) -> Any:
    """The pgqueue task function behind every ``async def`` django.tasks task."""
    task, backend, result = _start(job, args, kwargs)
    try:
        value = normalize_json(await task.acall(*_arguments(task, result, args), **kwargs))
    except BaseException as exc:
        _failed(backend, result, exc)
        raise
    return _succeeded(backend, result, value)
