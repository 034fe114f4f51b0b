"""pgqueue for Django: ``pip install -e '.[django]'``, add ``"pgqueue.contrib.django"``
to ``INSTALLED_APPS``, and optionally configure ``PGQUEUE = {...}`` in settings.

- ``from pgqueue.contrib.django import app`` (or ``get_app()``) is the project's
  pgqueue App; declare ``@app.task`` functions in your apps' ``tasks.py``.
- Enqueues from Django code run on Django's database connection, so inside
  ``transaction.atomic()`` a job commits or rolls back with your rows.
- ``TASKS = {"default": {"BACKEND": "pgqueue.contrib.django.TasksBackend"}}``
  runs Django's own task API (``django.tasks``) on pgqueue.
- ``manage.py pgq_worker`` runs a worker; ``manage.py pgq_migrate`` (or plain
  ``manage.py migrate``) creates pgqueue's schema.

Names are imported on first use, so that importing this package (as Django does
for ``INSTALLED_APPS``) neither reads settings nor needs ``django.tasks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgqueue.contrib.django.application import DjangoApp, django_connection, get_app
    from pgqueue.contrib.django.tasks_backend import TasksBackend

    app: DjangoApp

__all__ = ["DjangoApp", "TasksBackend", "app", "django_connection", "get_app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from pgqueue.contrib.django.application import get_app

        return get_app()
    if name in ("DjangoApp", "django_connection", "get_app"):
        from pgqueue.contrib.django import application

        return getattr(application, name)
    if name == "TasksBackend":
        from pgqueue.contrib.django.tasks_backend import TasksBackend

        return TasksBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
