"""Periodic schedules as data, and the pure rule for which ticks are due.

Cron rules are read by croniter in the schedule's own time zone, on wall-clock
time: "30 2 * * *" in Europe/Paris means 02:30 on the clocks in Paris. On the
night clocks go forward, 02:30 doesn't exist and the tick fires once, at 03:30
(the same instant as 01:30 UTC); on the night they go back, 02:30 happens twice
and the tick fires once, at the first 02:30. Interval rules (``every=``) are
aligned to the Unix epoch, so every scheduler computes the same instants.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CatchUp = Literal["skip", "latest", "all"]
CATCH_UP: tuple[CatchUp, ...] = ("skip", "latest", "all")
UTC = dt.UTC
# How late a tick may be seen and still count as on time under 'skip'.
SKIP_GRACE = dt.timedelta(seconds=30)
DEFAULT_WINDOW = dt.timedelta(days=1)
MAX_TICKS = 1000  # per schedule per run: a huge backlog is caught up in steps



def _croniter() -> type[Any]:
    """croniter, imported when a cron rule is first read: it and dateutil are a tenth
    of a worker's start-up, and most workers read no cron rule."""
    from croniter import croniter

    return croniter

@dataclass(frozen=True)
class Rule:
    """When a schedule fires: a cron expression in a time zone, or a fixed interval."""

    cron: str | None = None
    every: dt.timedelta | None = None
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron='...' or every=timedelta(...)")
        if self.every is not None and self.every.total_seconds() <= 0:
            raise ValueError("every must be a positive timedelta")
        if self.cron is not None and not _croniter().is_valid(self.cron):
            raise ValueError(f"invalid cron expression {self.cron!r} (for example: "
                             "'*/15 * * * *', or six fields with seconds last)")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.tz!r} (for example: 'Europe/Paris')"
                             ) from None

    def after(self, start: dt.datetime) -> Iterator[dt.datetime]:
        """Fire instants strictly after ``start`` (aware), in order, as UTC."""
        if self.every is not None:
            step = self.every.total_seconds()
            n = math.floor(start.timestamp() / step) + 1
            while True:
                yield dt.datetime.fromtimestamp(n * step, UTC)
                n += 1
        assert self.cron is not None
        zone = ZoneInfo(self.tz)
        local = start.astimezone(zone).replace(tzinfo=None)
        it = _croniter()(self.cron, local)
        last = start
        while True:
            wall: dt.datetime = it.get_next(dt.datetime)
            instant = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: first of two
            if instant > last:  # a skipped or repeated wall time maps to one instant
                last = instant
                yield instant


def due_ticks(rule: Rule, since: dt.datetime, now: dt.datetime, catch_up: CatchUp = "latest",
              window: dt.timedelta | None = None) -> list[dt.datetime]:
    """The ticks to enqueue now: those after ``since`` (the last one fired) up to ``now``.

    - ``latest`` (default): of the missed ticks, only the most recent, once.
    - ``skip``: only a tick that is at most ``SKIP_GRACE`` old; a downtime's are dropped.
    - ``all``: every missed tick no older than ``window`` (default one day).
    """
    missed: list[dt.datetime] = []
    for instant in rule.after(since):
        if instant > now or len(missed) >= MAX_TICKS:
            break
        missed.append(instant)
    if not missed:
        return []
    if catch_up == "latest":
        return missed[-1:]
    if catch_up == "skip":
        return [t for t in missed[-1:] if now - t <= SKIP_GRACE]
    oldest = now - (window or DEFAULT_WINDOW)
    return [t for t in missed if t >= oldest]


def next_after(rule: Rule, now: dt.datetime) -> dt.datetime:
    return next(rule.after(now))


@dataclass(frozen=True)
class Schedule:
    """A periodic task as declared in code (``app.periodic`` / ``app.add_periodic``)."""

    name: str
    task: str
    rule: Rule
    args_json: str
    kwargs_json: str
    queue: str
    priority: int = 0
    max_attempts: int = 0
    catch_up: CatchUp = "latest"
    catch_up_window: dt.timedelta | None = None

    def __post_init__(self) -> None:
        if self.catch_up not in CATCH_UP:
            raise ValueError(f"catch_up must be one of {', '.join(CATCH_UP)}, "
                             f"not {self.catch_up!r}")
