"""The names these tests use, from Django 6's ``django.tasks`` or the django-tasks backport.

The adapted suite runs on both: on Django 6.1 (Python 3.12, CI's second run) and
on the backport (Python 3.11, the main run). ``PICKLES`` marks the few tests of
what only Django 6 has.
"""

from __future__ import annotations

import pytest

from pgqueue.contrib.django._compat import SOURCE

try:
    from django.tasks import (
        DEFAULT_TASK_QUEUE_NAME,
        TaskContext,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, Task
    from django.tasks.exceptions import (
        InvalidTask,
        InvalidTaskBackend,
        TaskResultDoesNotExist,
        TaskResultMismatch,
    )
except ImportError:
    from django_tasks import (
        DEFAULT_TASK_QUEUE_NAME,
        TaskContext,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django_tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, Task
    from django_tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch

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
