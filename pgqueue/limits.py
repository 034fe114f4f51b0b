"""Rate and concurrency limits: their spelling, and what a worker knows of them.

``"100/m"`` means at most 100 starts in any 60 seconds, across every worker
(``/s``, ``/m``, ``/h``). Enforcement is the database's (``claim_limited()``,
migration 0012): this module parses and checks what users write, and holds the
set of limited tasks and queues a worker refreshes each heartbeat. Operators
change a queue's limits at run time (``pgq queues limit``, the dashboard, through
``Monitor.set_queue_limits``); :data:`KEEP` and the ``*_from_text`` readers are
theirs.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
MAX_RATE = 1_000_000


def parse_rate(text: object) -> tuple[int, float]:
    """``"100/m"`` -> (100, 60.0): starts allowed, per window of seconds. ``"5/10s"``
    (5 per 10 seconds) works too."""
    if not isinstance(text, str):
        raise TypeError(f"a rate limit is a str like '100/m', not {type(text).__name__}")
    m = _RATE.match(text)
    if m is None:
        raise ValueError(f"invalid rate limit {text!r}: write N/s, N/m or N/h (for example "
                         "'100/m': at most 100 starts in any minute, all workers together)")
    count, multiple, unit = int(m.group(1)), m.group(2), m.group(3)
    if not 1 <= count <= MAX_RATE:
        raise ValueError(f"rate limit {text!r}: the count must be 1 to {MAX_RATE}")
    window = _UNITS[unit] * (int(multiple) if multiple else 1)
    if window <= 0:
        raise ValueError(f"rate limit {text!r}: the window must be longer than 0")
    return count, window


def format_rate(count: int | None, window: float | None) -> str:
    if count is None or window is None:
        return "-"
    for unit, seconds in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if window == seconds:
            return f"{count}/{unit}"
    return f"{count}/{window:g}s"


def check_concurrency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a concurrency limit is an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"a concurrency limit must be 1 or more, not {value}")
    return value


class Keep(enum.Enum):
    """A limit left as it is when others are changed."""

    KEEP = "keep"


KEEP = Keep.KEEP

# What an operator types for "no limit" (pgq queues limit --rate none, the dashboard's form).
_NONE = ("", "none")


def rate_from_text(text: str) -> str | None:
    """A rate as typed: checked, or None for ``none`` (no rate limit)."""
    if text.strip().lower() in _NONE:
        return None
    parse_rate(text)
    return text.strip()


def concurrency_from_text(text: str) -> int | None:
    """A concurrency limit as typed: checked, or None for ``none`` (no limit)."""
    if text.strip().lower() in _NONE:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"invalid concurrency limit {text!r}: give how many jobs may run "
                         "at once (1 or more), or none") from None
    return check_concurrency(value)


_PER = {1.0: "a second", 60.0: "a minute", 3600.0: "an hour"}


def _span(seconds: float) -> str:
    for unit, size in (("hours", 3600.0), ("minutes", 60.0)):
        if seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} seconds"


def describe(rate: int | None, window: float | None, concurrency: int | None) -> str:
    """In words: "at most 600 starts a minute, 20 running at once", or "no limits"."""
    parts = []
    if rate is not None and window is not None:
        per = _PER.get(window) or f"in any {_span(window)}"
        parts.append(f"at most {rate} start{'' if rate == 1 else 's'} {per}")
    if concurrency is not None:
        parts.append(f"{'' if parts else 'at most '}{concurrency} running at once")
    return ", ".join(parts) or "no limits"


@dataclass
class InForce:
    """What this worker must claim through claim_limited: refreshed each heartbeat."""

    tasks: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.tasks or self.queues)
