"""Celery's broker and result-backend URLs, as the Postgres DSN pgqueue uses.

Kept apart from the app so that the command line (``pgq -b URL``) reads them the
same way without importing the app.
"""

from __future__ import annotations

import logging

from pgqueue.celery.exceptions import ImproperlyConfigured
from pgqueue.redact import redact_dsn

log = logging.getLogger("pgqueue.celery")

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_BACKEND_PREFIXES = ("sqla+", "db+")


def postgres_dsn(url: object) -> str | None:
    """The DSN in a Celery URL if it names Postgres (``sqla+``/``db+``/driver forms too)."""
    if not isinstance(url, str):
        return None
    if "://" not in url and "=" in url:
        return url  # a libpq key=value DSN ("host=db dbname=app"): Postgres already
    bare = url
    for prefix in _BACKEND_PREFIXES:
        if bare.startswith(prefix):
            bare = bare[len(prefix):]
            break
    if bare.startswith(("postgresql+", "postgres+")) and "://" in bare:
        bare = "postgresql://" + bare.split("://", 1)[1]  # SQLAlchemy's postgresql+psycopg://
    return bare if bare.startswith(_POSTGRES_SCHEMES) else None


def broker_dsn(url: object) -> str | None:
    """A broker URL's DSN; anything but Postgres is an error (pgqueue is the broker)."""
    if url is None or url == "":
        return None
    dsn = postgres_dsn(url)
    if dsn is None:
        scheme = str(url).split("://", 1)[0] if "://" in str(url) else redact_dsn(str(url))
        raise ImproperlyConfigured(
            f"broker {scheme}:// is not supported: pgqueue keeps its queue in PostgreSQL, "
            "so the broker URL must be postgresql://user@host/db (the database pgqueue "
            "uses), or leave it out and set PGQ_DSN")
    return dsn


def backend_dsn(url: object) -> str | None:
    """A result backend URL's DSN; another backend is ignored (results live with the jobs)."""
    if url is None or url == "":
        return None
    dsn = postgres_dsn(url)
    if dsn is None:
        log.warning("result backend %r ignored: pgqueue keeps results in PostgreSQL, with "
                    "the jobs", str(url).split("://", 1)[0])
    return dsn
