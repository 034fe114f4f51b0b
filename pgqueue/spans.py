"""Time spans for monitoring: reading ``"5m"``, and the chart bucket a window gets.

Pure functions, no I/O, shared by ``pgq status``/``pgq queues list``, the
dashboard and :meth:`pgqueue.monitor.Monitor.overview`, so that "1h" and the
size of a chart's buckets mean the same everywhere.
"""

from __future__ import annotations

import datetime as dt
import re

SHORTEST = dt.timedelta(seconds=10)
# Statistics over a longer span cost a scan of that many finished jobs, for a
# number nobody reads off a live screen.
LONGEST = dt.timedelta(days=31)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SPAN = re.compile(r"(\d{1,7})([smhd])")


def parse_span(text: str) -> dt.timedelta:
    """``"90s"``, ``"5m"``, ``"24h"``, ``"7d"`` -> timedelta; ValueError names what is accepted."""
    match = _SPAN.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"bad time span {text!r}: use a whole number and a unit s, m, h "
                         "or d (for example 5m, 1h, 7d)")
    span = dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if not SHORTEST <= span <= LONGEST:
        raise ValueError(f"time span {text!r} is out of range (10s to 31d)")
    return span


def bucket_for(window: dt.timedelta) -> dt.timedelta:
    """About sixty points per chart, never finer than 10 s."""
    # Whole seconds, so our bucket starts and the database's date_bin agree exactly.
    return dt.timedelta(seconds=max(10, round(window.total_seconds() / 60)))
