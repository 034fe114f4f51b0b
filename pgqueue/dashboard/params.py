"""Reading query strings and forms into typed values; a bad value is a 400 that says why.

Shared by the pages and the API so both accept exactly the same filters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from pgqueue.dashboard import windows
from pgqueue.job import JobState
from pgqueue.limits import KEEP, Keep, concurrency_from_text, rate_from_text
from pgqueue.options import check_queue

STATES = [s.value for s in JobState]
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class BadRequest(ValueError):
    """A parameter could not be read; the message is shown to the user as is."""


@dataclass(frozen=True)
class Window:
    key: str  # as given, e.g. "1h": kept to build links back to the same view
    span: dt.timedelta
    bucket: dt.timedelta

    @property
    def poll_seconds(self) -> int:
        return windows.poll_seconds(self.span)


@dataclass(frozen=True)
class JobFilters:
    state: str | None = None
    queue: str | None = None
    task: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None
    limit: int = PAGE_SIZE

    def query(self, **changes: object) -> str:
        """This filter as a query string (with ``changes``), for links such as "older"."""
        values = {**asdict(self), **changes}
        if values["limit"] == PAGE_SIZE:
            del values["limit"]
        pairs = {k: v.isoformat() if isinstance(v, dt.datetime) else v
                 for k, v in values.items() if v not in (None, "")}
        return urlencode(pairs)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.state, self.queue, self.task, self.since,
                                           self.until))


def window(params: Mapping[str, str]) -> Window:
    key = params.get("window") or windows.DEFAULT
    try:
        span = windows.parse_span(key)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    bucket_text = params.get("bucket")
    try:
        bucket = windows.parse_span(bucket_text) if bucket_text else windows.bucket_for(span)
    except ValueError as exc:
        raise BadRequest(f"bucket: {exc}") from None
    if span / bucket > 1000:  # a chart of more points than pixels only costs the database
        raise BadRequest(f"bucket {bucket_text} is too small for window {key} "
                         "(at most 1000 buckets)")
    return Window(key, span, bucket)


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = (params.get(name) or "").strip()
    return value or None


def _int(params: Mapping[str, str], name: str) -> int | None:
    value = _text(params, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {value!r}") from None


def parse_time(name: str, value: str) -> dt.datetime:
    """ISO 8601; a time without an offset (as ``<input type=datetime-local>`` sends) is UTC,
    the zone every page shows."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be a date and time like 2024-05-01T13:00 (UTC) "
                         f"or with an offset, not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def job_filters(params: Mapping[str, str]) -> JobFilters:
    state = _text(params, "state")
    if state is not None and state not in STATES:
        raise BadRequest(f"unknown state {state!r} (one of: {', '.join(STATES)})")
    since, until = (_text(params, n) for n in ("since", "until"))
    limit = _int(params, "limit")
    limit = PAGE_SIZE if limit is None else limit
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return JobFilters(
        state=state, queue=_text(params, "queue"), task=_text(params, "task"),
        since=parse_time("since", since) if since else None,
        until=parse_time("until", until) if until else None,
        before_id=_int(params, "before_id"), limit=limit,
    )


def bounded(params: Mapping[str, str], name: str, default: int, most: int,
            least: int = 1) -> int:
    """A whole-number parameter within [least, most]; ``default`` when absent."""
    value = _int(params, name)
    if value is None:
        return default
    if not least <= value <= most:
        raise BadRequest(f"{name} must be between {least} and {most}")
    return value


@dataclass(frozen=True)
class LimitChange:
    rate: str | Keep | None = KEEP
    concurrency: int | Keep | None = KEEP


_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def queue_limits(queue: str, fields: Mapping[str, str]) -> LimitChange:
    """What ``POST /api/queues/<name>/limits`` asks for: ``rate`` and ``concurrency`` set
    what is given (empty or ``none`` removes that limit; a field left out keeps it),
    ``clear`` removes both. As ``pgq queues limit`` reads its options."""
    try:
        check_queue(queue)
        rate = rate_from_text(fields["rate"]) if "rate" in fields else KEEP
        concurrency = (concurrency_from_text(fields["concurrency"])
                       if "concurrency" in fields else KEEP)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    clear = (fields.get("clear") or "").strip().lower()
    if clear not in _YES + _NO:
        raise BadRequest(f"clear must be true or false, not {fields['clear']!r}")
    if clear in _YES:
        if rate is not KEEP or concurrency is not KEEP:
            raise BadRequest("clear removes both limits: send it alone, or remove one "
                             "with rate=none or concurrency=none")
        return LimitChange(None, None)
    if rate is KEEP and concurrency is KEEP:
        raise BadRequest("give rate (e.g. 600/m), concurrency (e.g. 20), or both; "
                         "or clear=true")
    return LimitChange(rate, concurrency)
