"""Reading query strings and forms into typed values; a bad value is a 400 that says why.

Shared by the pages and the API so both accept exactly the same filters. Every
value is checked here, before any SQL: a NUL (which Postgres text can't hold), a
number beyond ``bigint``, a value longer than :data:`MAX_VALUE` characters, a time
that falls off the calendar in UTC. Each answers 400 saying which parameter and why,
never a 500 from the database.
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
BIGINT_MAX = 2**63 - 1  # job and workflow ids are bigint
MAX_VALUE = 1000  # characters: longer than any name, time or number we take


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
    key = text(params, "window") or windows.DEFAULT
    try:
        span = windows.parse_span(key)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    bucket_text = text(params, "bucket")
    try:
        bucket = windows.parse_span(bucket_text) if bucket_text else windows.bucket_for(span)
    except ValueError as exc:
        raise BadRequest(f"bucket: {exc}") from None
    if span / bucket > 1000:  # a chart of more points than pixels only costs the database
        raise BadRequest(f"bucket {bucket_text} is too small for window {key} "
                         "(at most 1000 buckets)")
    return Window(key, span, bucket)


def _shown(value: str) -> str:
    """A bad value, quoted in a message: cut, so a megabyte sent is not a megabyte echoed."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def text(params: Mapping[str, str], name: str) -> str | None:
    """A text parameter, stripped; None when absent or blank."""
    value = (params.get(name) or "").strip()
    if len(value) > MAX_VALUE:
        raise BadRequest(f"{name} is too long ({len(value)} characters; at most {MAX_VALUE})")
    if "\x00" in value:
        raise BadRequest(f"{name} contains a NUL character, which no name can hold")
    return value or None


def _int(params: Mapping[str, str], name: str) -> int | None:
    value = text(params, name)
    if value is None:
        return None
    if not (value.isascii() and value.lstrip("+-").isdigit()):
        raise BadRequest(f"{name} must be a whole number, not {_shown(value)}")
    number = int(value)
    if abs(number) > BIGINT_MAX:
        raise BadRequest(f"{name} is out of range (at most {BIGINT_MAX})")
    return number


def check_id(name: str, value: int) -> int:
    """An id from the path (``/jobs/<id>``): a positive bigint."""
    if not 1 <= value <= BIGINT_MAX:
        raise BadRequest(f"{name} must be between 1 and {BIGINT_MAX}, not {value}")
    return value


def parse_time(name: str, value: str) -> dt.datetime:
    """ISO 8601; a time without an offset (as ``<input type=datetime-local>`` sends) is UTC,
    the zone every page shows."""
    try:
        parsed = dt.datetime.fromisoformat(value)
        # In UTC now, so that a time near year 1 or 9999 with an offset fails here and
        # not when a page formats it.
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise BadRequest(f"{name} must be a date and time like 2024-05-01T13:00 (UTC) "
                         f"or with an offset, not {_shown(value)}") from None


def job_filters(params: Mapping[str, str]) -> JobFilters:
    state = text(params, "state")
    if state is not None and state not in STATES:
        raise BadRequest(f"unknown state {_shown(state)} (one of: {', '.join(STATES)})")
    since, until = (text(params, n) for n in ("since", "until"))
    limit = _int(params, "limit")
    limit = PAGE_SIZE if limit is None else limit
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    before_id = _int(params, "before_id")
    if before_id is not None and before_id < 1:
        raise BadRequest(f"before_id must be a job id (1 or more), not {before_id}")
    return JobFilters(
        state=state, queue=text(params, "queue"), task=text(params, "task"),
        since=parse_time("since", since) if since else None,
        until=parse_time("until", until) if until else None,
        before_id=before_id, limit=limit,
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
