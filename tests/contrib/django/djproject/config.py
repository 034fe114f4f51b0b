"""The test project's settings as a function of the database's DSN.

The conftest configures Django with it in-process; ``djproject/settings.py``
gives the same settings to subprocesses (``python -m django pgq_worker``).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from psycopg.conninfo import conninfo_to_dict

SETTINGS_MODULE = "tests.contrib.django.djproject.settings"
DSN_VARIABLE = "PGQ_DJANGO_TEST_DSN"  # how subprocesses learn the database


def tasks_api() -> str | None:
    """Which Django task API is installed: Django 6's, the backport, or none."""
    for name in ("django.tasks", "django_tasks"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def project_settings(dsn: str) -> dict[str, Any]:
    db = conninfo_to_dict(dsn)
    settings: dict[str, Any] = {
        "SECRET_KEY": "pgqueue-tests",
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "INSTALLED_APPS": ["pgqueue.contrib.django", "tests.contrib.django.djproject.shop"],
        "DATABASES": {"default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": db.get("dbname", ""),
            "USER": db.get("user", ""),
            "PASSWORD": db.get("password", ""),
            "HOST": db.get("host", ""),
            "PORT": db.get("port", ""),
        }},
        # Short intervals, so that workers start, notice and stop quickly.
        "PGQUEUE": {"QUEUES": ["default", "emails"], "HEARTBEAT_INTERVAL": 0.5,
                    "LEASE_SECONDS": 5, "POLL_INTERVAL": 0.5},
    }
    if tasks_api() is not None:
        settings["TASKS"] = {"default": {"BACKEND": "pgqueue.contrib.django.TasksBackend",
                                         "QUEUES": ["default", "emails"]}}
    return settings
