"""``celery.schedules`` for pgqueue: ``crontab`` and ``schedule`` as pgqueue rules.

A ``crontab(...)`` becomes a cron string read in the app's ``timezone`` (UTC
unless set), a ``schedule(run_every)`` an interval: both turn into
:class:`pgqueue.schedule.Rule` (:meth:`rule`), which the scheduler fires once
per tick across all beats. Two differences from Celery, checked here rather than
left to surprise:

- Celery fires a crontab whose day of month and day of week are both restricted
  only on days matching both; cron (and pgqueue) on days matching either. That
  combination raises instead of firing on the wrong days.
- Interval ticks are aligned to the Unix epoch (every beat computes the same
  instants), not counted from when beat started; ``relative`` is accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from croniter import croniter

from pgqueue.schedule import Rule

__all__ = ["crontab", "schedule", "solar"]

_DAY_NAMES = {"sunday": "sun", "monday": "mon", "tuesday": "tue", "wednesday": "wed",
              "thursday": "thu", "friday": "fri", "saturday": "sat"}
_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def _field(label: str, value: object) -> str:
    """One crontab field as cron text: ``"*/15"``, ``5``, ``{0, 30}``, ``range(1, 6)``."""
    if isinstance(value, bool):
        raise TypeError(f"crontab {label} must be a str, an int or a set of ints, not bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip().lower() if label == "day_of_week" else value.strip()
        if label == "day_of_week":
            for full, short in _DAY_NAMES.items():
                text = text.replace(full, short)
        if not text:
            raise ValueError(f"crontab {label} is empty")
        return text
    if isinstance(value, Iterable):
        items = sorted(value)
        if not items or not all(isinstance(i, int) and not isinstance(i, bool)
                                for i in items):
            raise TypeError(f"crontab {label} as a collection must hold ints, not {value!r}")
        return ",".join(str(i) for i in items)
    raise TypeError(f"crontab {label} must be a str, an int or a set of ints, "
                    f"not {type(value).__name__}")


class crontab:  # Celery's name
    """``crontab(minute=0, hour="*/3", day_of_week="mon-fri")``, as in Celery.

    Fields default to ``"*"``; each takes cron text, an int, or a set/list/range
    of ints. Day names (``"mon"``, ``"monday"``) are accepted for
    ``day_of_week``, where 0 and 7 are Sunday, as in cron and Celery.
    """

    def __init__(self, minute: Any = "*", hour: Any = "*", day_of_week: Any = "*",
                 day_of_month: Any = "*", month_of_year: Any = "*", *,
                 tz: str | dt.tzinfo | None = None, app: Any = None, nowfun: Any = None
                 ) -> None:
        values = {"minute": minute, "hour": hour, "day_of_week": day_of_week,
                  "day_of_month": day_of_month, "month_of_year": month_of_year}
        self._fields = {k: _field(k, v) for k, v in values.items()}
        for k, v in values.items():
            setattr(self, f"_orig_{k}", v)
        if self._fields["day_of_month"] != "*" and self._fields["day_of_week"] != "*":
            raise NotImplementedError(
                "crontab with both day_of_month and day_of_week restricted: Celery fires "
                "on days matching both, cron (which pgqueue's scheduler runs) on days "
                "matching either. Restrict one and check the other in the task.")
        self.cron = " ".join(self._fields[k] for k in _FIELDS)
        if not croniter.is_valid(self.cron):
            raise ValueError(f"invalid crontab {self!r}: each field must be cron text "
                             "(e.g. minute='*/15', hour='0-6', day_of_week='mon-fri')")
        self.tz = tz if tz is None or isinstance(tz, str) else str(tz)
        self.app = app
        self.nowfun = nowfun

    def rule(self, default_tz: str = "UTC") -> Rule:
        """The pgqueue rule: this cron text in ``tz`` (else the app's timezone)."""
        return Rule(cron=self.cron, tz=self.tz or default_tz)

    def __repr__(self) -> str:
        f = self._fields
        return (f"<crontab: {f['minute']} {f['hour']} {f['day_of_week']} "
                f"{f['day_of_month']} {f['month_of_year']} (m/h/dM/MY/d)>")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, crontab):
            return NotImplemented
        return (self.cron, self.tz) == (other.cron, other.tz)

    def __hash__(self) -> int:
        return hash((self.cron, self.tz))


class schedule:  # Celery's name
    """``schedule(run_every=timedelta(seconds=30))`` (or a number of seconds)."""

    def __init__(self, run_every: float | dt.timedelta | None = None,
                 relative: bool = False, nowfun: Any = None, app: Any = None) -> None:
        self.run_every = as_timedelta(run_every, "schedule(run_every)")
        self.relative = relative
        self.nowfun = nowfun
        self.app = app

    @property
    def seconds(self) -> float:
        return self.run_every.total_seconds()

    def rule(self, default_tz: str = "UTC") -> Rule:
        return Rule(every=self.run_every, tz=default_tz)

    def __repr__(self) -> str:
        return f"<freq: {self.run_every}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, schedule):
            return NotImplemented
        return self.run_every == other.run_every

    def __hash__(self) -> int:
        return hash(self.run_every)


class solar:  # Celery's name
    """Celery's sunrise/sunset schedule: not available with pgqueue."""

    def __init__(self, event: str, lat: float, lon: float, **kwargs: Any) -> None:
        raise NotImplementedError(
            f"solar({event!r}, ...) schedules are not supported by pgqueue's scheduler, "
            "which fires cron and interval rules only; use a crontab at the usual hour "
            "for the place, or a frequent crontab whose task checks the sun's position")


def as_timedelta(value: object, label: str) -> dt.timedelta:
    """Seconds (int/float) or a timedelta, positive."""
    if isinstance(value, dt.timedelta):
        delta = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        delta = dt.timedelta(seconds=value)
    else:
        raise TypeError(f"{label} must be seconds or a timedelta, not {type(value).__name__}")
    if delta.total_seconds() <= 0:
        raise ValueError(f"{label} must be positive, not {delta}")
    return delta


def to_rule(value: object, default_tz: str) -> Rule:
    """What a beat entry's ``schedule`` holds, as a pgqueue rule."""
    if isinstance(value, (crontab, schedule)):
        return value.rule(default_tz)
    rule = getattr(value, "rule", None)
    if callable(rule):
        result = rule(default_tz)
        if isinstance(result, Rule):
            return result
    return Rule(every=as_timedelta(value, "schedule"), tz=default_tz)
