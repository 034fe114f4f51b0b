"""The names these tests use, from Django 6's ``django.tasks`` or the django-tasks backport.

The adapted suite runs on both: on Django 6.1 (Python 3.12, CI's second run) and
on the backport (Python 3.11, the main run). ``PICKLES`` marks the few tests of
what only Django 6 has.
"""

from __future__ import annotations

import pytest

# What the backend itself imports, it takes from _compat; only the names it
# doesn't need are looked up here, on either API.
from pgqueue.contrib.django._compat import (
    DEFAULT_TASK_QUEUE_NAME,
    SOURCE,
    InvalidTask,
    Task,
    TaskContext,
    TaskResultDoesNotExist,
    TaskResultStatus,
)

try:
    from django.tasks import default_task_backend, task, task_backends
    from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY
    from django.tasks.exceptions import InvalidTaskBackend, TaskResultMismatch
except ImportError:
    from django_tasks import default_task_backend, task, task_backends
    from django_tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY
    from django_tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
    from django_tasks.exceptions import TaskResultMismatch

# The logger Django's signal receivers write to.
LOGGER = "django.tasks" if SOURCE == "django.tasks" else "django_tasks"
# Pickling tasks and results (Task.__reduce__) is Django 6's; the backport's don't pickle.
PICKLES = pytest.mark.skipif(SOURCE != "django.tasks",
                             reason="Django 6's tasks pickle; the backport's don't")

__all__ = [
    "DEFAULT_TASK_QUEUE_NAME",
    "LOGGER",
    "PICKLES",
    "TASK_MAX_PRIORITY",
    "TASK_MIN_PRIORITY",
    "InvalidTask",
    "InvalidTaskBackend",
    "Task",
    "TaskContext",
    "TaskResultDoesNotExist",
    "TaskResultMismatch",
    "TaskResultStatus",
    "default_task_backend",
    "task",
    "task_backends",
]
