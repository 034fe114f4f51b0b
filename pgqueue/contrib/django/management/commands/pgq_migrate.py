"""``manage.py pgq_migrate``: ``pgq migrate`` on this project's database."""

from __future__ import annotations

from pgqueue.contrib.django.commands import PgqCommand


class Command(PgqCommand):
    help = (
        "Create or upgrade pgqueue's schema in this project's database (manage.py migrate "
        "does it too). With --status, list applied and pending migrations."
    )
    pgq_command = "migrate"
