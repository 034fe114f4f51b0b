"""Configuration from ``settings.py``: the ``PGQUEUE`` dict, mapped onto :class:`pgqueue.Settings`.

::

    PGQUEUE = {
        "QUEUES": ["default", "emails"],   # any pgqueue.Settings field, upper-cased
        "CONCURRENCY": 8,
        "SCHEMA": "pgqueue",
        "DATABASE": "default",             # which DATABASES alias pgqueue lives in
        "USE_DJANGO_CONNECTION": True,     # enqueue on that alias's connection
        "DSN": None,                       # only to reach that database another way
    }

Every key is optional. Without ``DSN`` the DSN is built from
``DATABASES[DATABASE]``, when it is first needed rather than at start-up, so that
it follows Django's test runner to its ``test_...`` database. ``PGQ_*``
environment variables fill in what ``PGQUEUE`` leaves out, as they do for
``App(...)`` arguments, except ``PGQ_DSN``: in a Django project the database
is Django's, and a variable meant for ``pgq`` outside Django must not point it
elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import psycopg
from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import make_conninfo

from pgqueue import redact
from pgqueue.errors import ConfigurationError
from pgqueue.settings import Settings

# Keys of PGQUEUE that are the integration's own, not pgqueue.Settings fields.
OWN_KEYS = frozenset({"DATABASE", "USE_DJANGO_CONNECTION"})
SETTINGS_KEYS = frozenset(f.name.upper() for f in fields(Settings))

# OPTIONS that Django's postgresql backend consumes itself; the rest are libpq's.
_DJANGO_ONLY_OPTIONS = frozenset({"assume_role", "context", "cursor_factory", "isolation_level",
                                  "pool", "prepare_threshold", "server_side_binding"})


@dataclass(frozen=True)
class DjangoConfig:
    """What the integration was told: pgqueue's settings plus where Django fits in."""

    settings: Settings  # settings.dsn is None until built from DATABASES on first use
    database: str = "default"
    use_django_connection: bool = True


def read_config(conf: Mapping[str, Any] | None,
                environ: Mapping[str, str] | None = None) -> DjangoConfig:
    """Validate a ``PGQUEUE`` dict; raises ImproperlyConfigured naming the bad key."""
    conf = dict(conf or {})
    unknown = set(conf) - OWN_KEYS - SETTINGS_KEYS
    if unknown:
        raise ImproperlyConfigured(
            f"PGQUEUE has unknown key(s) {', '.join(sorted(unknown))}; the keys are "
            f"{', '.join(sorted(OWN_KEYS | SETTINGS_KEYS))}"
        )
    database = conf.pop("DATABASE", "default")
    use_django = conf.pop("USE_DJANGO_CONNECTION", True)
    if not isinstance(database, str) or not isinstance(use_django, bool):
        raise ImproperlyConfigured("PGQUEUE['DATABASE'] must be an alias of DATABASES "
                                   "and PGQUEUE['USE_DJANGO_CONNECTION'] True or False")
    env = {k: v for k, v in (os.environ if environ is None else environ).items()
           if k != "PGQ_DSN"}
    try:
        settings = Settings.from_env(env, **{k.lower(): v for k, v in conf.items()})
    except (ConfigurationError, TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"PGQUEUE: {exc}") from exc
    return DjangoConfig(settings, database, use_django)


def database_dsn(alias: str, settings_dict: Mapping[str, Any]) -> str:
    """A libpq DSN for one entry of DATABASES (its NAME, USER, ..., and libpq OPTIONS)."""
    options = settings_dict.get("OPTIONS") or {}
    params: dict[str, Any] = {k: v for k, v in options.items()
                              if k not in _DJANGO_ONLY_OPTIONS
                              and isinstance(v, str | int | float)}
    for key, param in (("NAME", "dbname"), ("USER", "user"), ("PASSWORD", "password"),
                       ("HOST", "host"), ("PORT", "port")):
        if settings_dict.get(key):
            params[param] = str(settings_dict[key])
    try:
        return make_conninfo("", **params)
    except psycopg.ProgrammingError as exc:
        raise ImproperlyConfigured(
            f"can't build a DSN for pgqueue from DATABASES[{alias!r}] "
            f"({redact.scrub(str(exc), params.get('password'))}); set "
            "PGQUEUE['DSN'] to a postgresql:// URL for the same database"
        ) from exc


def load() -> DjangoConfig:
    """The project's configuration, from ``django.conf.settings``."""
    from django.conf import settings

    return read_config(getattr(settings, "PGQUEUE", None))


def current_dsn(alias: str) -> str:
    """The DSN of a DATABASES alias as Django sees it now (after any test-database switch)."""
    from django.db import connections

    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise ImproperlyConfigured(
            f"pgqueue needs PostgreSQL, and DATABASES[{alias!r}] is {wrapper.vendor}: point "
            "PGQUEUE['DATABASE'] at a PostgreSQL alias, or set PGQUEUE['DSN'] (and "
            "PGQUEUE['USE_DJANGO_CONNECTION'] = False)"
        )
    return database_dsn(alias, wrapper.settings_dict)
