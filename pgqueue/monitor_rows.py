"""What the Monitor answers with: frozen rows, and how they become JSON.

Plain data decoded from the monitoring queries (:mod:`pgqueue.monitor_statements`
builds and decodes them, :class:`pgqueue.monitor.Monitor` runs them). A stored
argument or result that can't be decoded comes back as a :class:`RawValue` (its
JSON text as stored) instead of failing the whole page or command.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pgqueue import encoding
from pgqueue.progress import Progress

REDACTED = "•••"
# How much of an undecodable value's JSON text is kept to show.
RAW_CHARS = 100_000
# Deeper values decode, but every renderer after (JSON, templates) recurses once
# per level: past this they are shown raw rather than risk a RecursionError there.
MAX_DEPTH = 200


@dataclass(frozen=True)
class QueueStats:
    queue: str
    queued: int
    scheduled: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    oldest_waiting_seconds: float | None
    throughput_per_min: float
    paused: bool


@dataclass(frozen=True)
class WorkerInfo:
    id: int
    name: str
    host: str
    pid: int
    queues: list[str]
    pool: str
    concurrency: int
    running: int
    jobs_done: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    heartbeat_age_seconds: float
    uptime_seconds: float
    status: str


@dataclass(frozen=True)
class TaskStats:
    task: str
    succeeded: int
    failed: int
    retried: int
    mean_runtime_ms: float | None
    p95_runtime_ms: float | None


@dataclass(frozen=True)
class Bucket:
    at: dt.datetime
    succeeded: int
    failed: int


@dataclass(frozen=True)
class JobRow:
    id: int
    task: str
    queue: str
    state: str
    priority: int
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    worker: str | None
    # Keyword-only, so the subclass's fields may follow without defaults.
    progress: Progress | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRow]
    next_before_id: int | None


@dataclass(frozen=True)
class Attempt:
    attempt: int
    type: str
    message: str
    traceback: str
    created_at: dt.datetime


@dataclass(frozen=True)
class RawValue:
    """A stored value shown as stored: it can't be decoded (written by SQL, not by
    pgqueue), or isn't the shape its field needs. ``raw`` is its JSON text, cut to
    ``RAW_CHARS`` characters (``truncated`` says so); ``error`` completes the
    sentence "the value ...", e.g. "can't be decoded: ValueError: ..."."""

    raw: str
    error: str
    truncated: bool = False


@dataclass(frozen=True)
class JobDetail(JobRow):
    args: list[Any] | RawValue
    kwargs: dict[str, Any] | RawValue
    result: Any
    run_at: dt.datetime
    rescues: int
    cancel_requested: bool
    lease_expires_at: dt.datetime | None
    worker_host: str | None
    worker_pid: int | None
    max_attempts: int
    attempts_history: list[Attempt]


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    task: str
    rule: str
    tz: str
    queue: str
    paused: bool
    last_fire_at: dt.datetime | None
    next_fire_at: dt.datetime | None  # None while paused, or when the rule is invalid
    # Why the schedule is skipped: what the scheduler stored, or what the monitor
    # found evaluating the rule; None for a healthy schedule.
    error: str | None = None
    error_at: dt.datetime | None = None


def to_json(value: Any) -> Any:
    """Dataclasses, lists and dicts of them, with datetimes as ISO 8601 strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    return value


def stored(text: str, shape: type | None = None) -> Any:
    """A stored JSON value decoded, or a :class:`RawValue` saying why it can't be."""
    try:
        value = encoding.loads(text)
    # A value only SQL could have written may fail any decoder: a tagged string that
    # isn't a date or number, nesting past the parser's recursion limit, ...
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        return _raw(text, f"can't be decoded: {type(exc).__name__}: {exc}")
    if shape is not None and not isinstance(value, shape):
        return _raw(text, f"is a JSON {type(value).__name__}, not a {shape.__name__}")
    if _deeper_than(value, MAX_DEPTH):
        return _raw(text, f"is nested deeper than {MAX_DEPTH} levels")
    return value


def _raw(text: str, error: str) -> RawValue:
    return RawValue(text[:RAW_CHARS], error, truncated=len(text) > RAW_CHARS)


def _deeper_than(value: Any, limit: int) -> bool:
    # Iterative on purpose: the value may be nearly as deep as the recursion limit.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return False
