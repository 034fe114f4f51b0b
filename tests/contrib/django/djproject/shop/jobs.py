"""A django.tasks task outside tasks.py: autodiscovery misses it, a worker finds it by path."""

from __future__ import annotations

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


@task
def ping() -> str:
    return "pong"
