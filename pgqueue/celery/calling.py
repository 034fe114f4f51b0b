"""Celery's ``apply_async`` options as pgqueue's, and the task ids producers choose.

:func:`pgqueue.celery.task.send` (what ``Task.apply_async``, ``delay`` and
``Celery.send_task`` all call) uses these. What each Celery option becomes:

- ``countdown``, ``queue`` (a name, or anything with ``.name``), ``headers``
  (values that aren't strings are sent as their JSON text), ``link``,
  ``link_error``: as in pgqueue.
- ``eta`` and ``expires`` (a datetime or an ISO string; ``expires`` also
  seconds): a naive datetime is UTC, as in Celery with ``enable_utc``.
- ``priority``: Celery's scale, mapped by ``app.celery_priority``.
- ``task_id``: a producer-chosen id, kept in ``celery_task_ids`` in the
  enqueue's transaction; ``AsyncResult(that id)`` finds the job, and the
  task's ``self.request.id`` is that id (it travels in a header).
- ``serializer``: ``"json"`` only (pgqueue never pickles).
- ``routing_key``, ``exchange``, ``exchange_type``, ``retry``, ``retry_policy``,
  ``producer``, ``compression``, ``shadow``, ``add_to_parent``, ``reply_to``,
  ``time_limit``/``soft_time_limit`` (per call), ``ignore_result`` (per call),
  ``mandatory``, ``immediate``, ``group_id``, ``root_id``, ``parent_id``...:
  broker details that have no meaning for a Postgres queue; accepted, ignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pgqueue import encoding, statements
from pgqueue.options import EnqueueOptions
from pgqueue.sql import queries

if TYPE_CHECKING:
    import psycopg

    from pgqueue.app import App

log = logging.getLogger("pgqueue.celery")

TASK_ID_HEADER = "celery-task-id"
CUSTOM_STATE = "celery_state"  # keys of the progress meta Task.update_state() writes
CUSTOM_META = "celery_meta"
_NATIVE = frozenset(f for f in EnqueueOptions.__dataclass_fields__ if f != "headers")
_TRANSLATED = frozenset({"queue", "priority", "countdown", "eta", "expires", "headers"})


def utc(value: dt.datetime | str, what: str) -> dt.datetime:
    """A datetime for pgqueue: a naive one (or ISO text) is UTC, as Celery reads it."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an ISO 8601 datetime") from None
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def check_serializer(value: object, what: str = "serializer") -> None:
    if value not in (None, "json", "application/json"):
        raise ValueError(f"{what}={value!r}: pgqueue stores arguments and results as JSON "
                         "only (never pickle); use serializer='json' and JSON-friendly "
                         "values")


def _headers(given: object) -> dict[str, str]:
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise TypeError(f"headers must be a dict, not {type(given).__name__}")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in given.items()}


def check_task_id(task_id: object) -> str:
    if not isinstance(task_id, str) or not 0 < len(task_id) <= 255:
        raise TypeError(f"task_id must be a str of 1 to 255 characters, not {task_id!r}")
    return task_id


def enqueue_options(app: App, options: Mapping[str, Any],
                    task_id: str | None = None) -> dict[str, Any]:
    """Celery's ``apply_async`` options (routing already applied) as pgqueue's
    :class:`EnqueueOptions` keywords; every value checked before any SQL runs."""
    check_serializer(options.get("serializer"))
    out: dict[str, Any] = {k: v for k, v in options.items() if k in _NATIVE - _TRANSLATED
                           and v is not None}
    queue = options.get("queue")
    if queue is not None:
        out["queue"] = queue if isinstance(queue, str) else getattr(queue, "name", queue)
    priority = options.get("priority")
    if priority is not None:
        mapper = getattr(app, "celery_priority", None)
        out["priority"] = mapper(priority) if mapper is not None else priority
    if options.get("countdown") is not None:
        out["countdown"] = options["countdown"]
    if options.get("eta") is not None:
        out["eta"] = utc(options["eta"], "eta")
    expires = options.get("expires")
    if expires is not None:
        out["expires"] = expires if isinstance(expires, (int, float, dt.timedelta)) else \
            utc(expires, "expires")
    headers = _headers(options.get("headers"))
    if task_id is not None:
        headers[TASK_ID_HEADER] = check_task_id(task_id)
    if headers:
        out["headers"] = headers
    ignored = sorted(k for k in options if k not in _NATIVE and k not in (
        "serializer", "headers"))
    if ignored:
        log.debug("apply_async options with no meaning for pgqueue, ignored: %s",
                  ", ".join(ignored))
    EnqueueOptions.from_kwargs(out)  # the checks, now
    return out


@contextlib.contextmanager
def _transaction(app: App, connection: psycopg.Connection[Any] | None
                 ) -> Iterator[psycopg.Connection[Any]]:
    if connection is not None:
        if not connection.autocommit:  # the caller's transaction holds both writes
            yield connection
            return
        with connection.transaction():  # in autocommit, a transaction of their own
            yield connection
        return
    with app.client.connection() as conn, conn.transaction():
        yield conn


def remember(app: App, task_id: str, job_id: int,
             connection: psycopg.Connection[Any]) -> None:
    schema = app.settings.schema
    app.client.execute(statements.Statement(
        queries(schema)["celery_remember_task_id"], {"task_id": task_id, "job_id": job_id},
        lambda rows: None), connection)


def job_of_task_id(app: App, task_id: str) -> int | None:
    schema = app.settings.schema
    found: int | None = app.client.execute(statements.Statement(
        queries(schema)["celery_job_of_task_id"], {"task_id": task_id},
        lambda rows: rows[0][0] if rows else None))
    return found


def forget(app: App, job_id: int) -> bool:
    schema = app.settings.schema
    return bool(app.client.execute(statements.Statement(
        queries(schema)["celery_forget"], {"id": job_id},
        lambda rows: rows[0][0] if rows else 0)))


def group_of_job(app: App, job_id: int) -> int | None:
    schema = app.settings.schema
    found: int | None = app.client.execute(statements.Statement(
        queries(schema)["celery_group_of_job"], {"id": job_id},
        lambda rows: rows[0][0] if rows else None))
    return found


def job_arguments(app: App, job_id: int) -> tuple[Any, Any] | None:
    """(args, kwargs) of a job, decoded; None when it is gone."""
    schema = app.settings.schema
    found: tuple[Any, Any] | None = app.client.execute(statements.Statement(
        queries(schema)["celery_job_arguments"], {"id": job_id},
        lambda rows: (encoding.loads(rows[0][0]), encoding.loads(rows[0][1])) if rows
        else None))
    return found
