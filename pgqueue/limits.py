"""Rate and concurrency limits: their spelling, and what a worker knows of them.

``"100/m"`` means at most 100 starts in any 60 seconds, across every worker
(``/s``, ``/m``, ``/h``). Enforcement is the database's (``claim_limited()``,
migration 0012): this module parses and checks what users write, and holds the
set of limited tasks and queues a worker refreshes each heartbeat.
"""

from __future__ import annotations

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


@dataclass
class InForce:
    """What this worker must claim through claim_limited: refreshed each heartbeat."""

    tasks: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.tasks or self.queues)
