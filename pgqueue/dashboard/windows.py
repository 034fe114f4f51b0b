"""Time windows and chart buckets: which spans the dashboard offers and how they are binned.

Pure functions, no I/O. Kept apart so the page, the API and the charts agree on
what "1h" means and on a bucket size that gives charts about sixty points; the
parsing and the bucket rule themselves are :mod:`pgqueue.spans`, shared with ``pgq``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pgqueue.monitor import Bucket
from pgqueue.spans import LONGEST, SHORTEST, bucket_for, parse_span

# The spans the window selector offers; the API accepts any "<n><s|m|h|d>" in range.
CHOICES: dict[str, dt.timedelta] = {
    "5m": dt.timedelta(minutes=5),
    "1h": dt.timedelta(hours=1),
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
}
DEFAULT = "1h"
# Parsing and bucketing are shared with the command line: one rule for both.
__all__ = ["CHOICES", "DEFAULT", "LONGEST", "SHORTEST", "bucket_for", "dense", "parse_span",
           "poll_seconds"]


def poll_seconds(window: dt.timedelta) -> int:
    """How often the overview refreshes statistics over ``window``.

    Statistics over a day or a week move slowly but cost a scan of that many
    finished jobs (measured with 1,000,000 jobs over 7 days: about 0.8 s for 24 h
    and 2 s for 7 d), so re-reading them every 2 s would keep a core of the
    database busy for nothing. Live counts (workers) still refresh every 2 s.
    """
    if window <= dt.timedelta(hours=1):
        return 2
    return 10 if window <= dt.timedelta(days=1) else 30


def dense(buckets: Sequence[Bucket], window: dt.timedelta, bucket: dt.timedelta,
          now: dt.datetime) -> list[Bucket]:
    """One bucket per step over the window, zeros included.

    The database returns only buckets that saw a finished job; a chart drawn from
    those alone would join distant points with a line as if work went on between them.
    Bucket starts are aligned like the database's ``date_bin`` (to 2000-01-01 UTC),
    so the two sets of instants match.
    """
    step = bucket.total_seconds()
    origin = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

    def align(t: dt.datetime) -> dt.datetime:
        return origin + dt.timedelta(seconds=(t - origin).total_seconds() // step * step)

    by_start = {align(b.at): b for b in buckets}
    out: list[Bucket] = []
    at = align(now - window)
    last = align(now)
    while at <= last:
        found = by_start.get(at)
        out.append(Bucket(at, found.succeeded, found.failed) if found else Bucket(at, 0, 0))
        at += bucket
    return out
