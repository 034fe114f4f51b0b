"""``manage.py pgq_worker``: ``pgq worker`` for this project, configured from its settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pgqueue.contrib.django.commands import PgqCommand


class Command(PgqCommand):
    help = (
        "Run a pgqueue worker for this project until SIGTERM or Ctrl-C: pgq worker with "
        "the database of settings.PGQUEUE (Django's by default) and the tasks of every "
        "installed app's tasks.py. Options not given come from PGQUEUE, then PGQ_* "
        "variables."
    )
    pgq_command = "worker"
    # The module that sets Django up: child processes (--pool processes) import it too.
    fixed: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "app_path": ("--app", "pgqueue.contrib.django.worker:app")}
