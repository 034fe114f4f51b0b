"""Statements for the scheduler that read schedule rows defensively, one row at a time.

A schedule row can be edited by hand (``UPDATE schedules SET tz = 'Mars/Olympus'``),
so what the leader reads is decoded row by row: a row whose rule, time zone or
values can't be used becomes a :class:`BadSchedule` carrying the reason, and every
other row still decodes to a :class:`ScheduleState`. Pure, like
:mod:`pgqueue.statements`: each function builds a ``Statement``, nothing runs here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgqueue.schedule import CatchUp, Rule
from pgqueue.sql import queries
from pgqueue.statements import Row, Statement


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A stored schedule as the leader sees it, with the database's time."""

    name: str
    rule: Rule
    catch_up: CatchUp
    window: dt.timedelta | None
    paused: bool
    since: dt.datetime
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class BadSchedule:
    """A stored schedule the scheduler skips, and why."""

    name: str
    error: str


@dataclass(frozen=True, slots=True)
class ScheduleStates:
    """Every stored schedule as the leader sees it: usable ones and bad ones."""

    now: dt.datetime | None  # the database's clock; None when there are no schedules
    good: list[ScheduleState] = field(default_factory=list)
    bad: list[BadSchedule] = field(default_factory=list)


def problem(exc: Exception) -> str:
    """How an error reads in a log line and in ``schedules.error``."""
    text = str(exc).strip() or repr(exc)
    return text if type(exc) is ValueError else f"{type(exc).__name__}: {text}"


def _state(row: Row) -> ScheduleState:
    name, cron, every, tz, catch_up, window, paused, since, now, _ = row
    rule = Rule(cron=cron, every=dt.timedelta(seconds=every) if every else None, tz=tz)
    return ScheduleState(name, rule, catch_up,
                         dt.timedelta(seconds=window) if window else None,
                         paused, since, now)


def _states(rows: list[Row]) -> ScheduleStates:
    out = ScheduleStates(rows[0][8] if rows else None)
    for row in rows:
        name, sql_problem = row[0], row[9]
        if sql_problem is not None:
            out.bad.append(BadSchedule(name, sql_problem))
            continue
        try:
            out.good.append(_state(row))
        except Exception as exc:  # a hand-edited row must not hide every other one
            out.bad.append(BadSchedule(name, problem(exc)))
    return out


def schedule_states(schema: str) -> Statement[ScheduleStates]:
    return Statement(queries(schema)["schedule_states"], {}, _states)


def record_schedule_checks(schema: str, nexts: Mapping[str, dt.datetime],
                           errors: Mapping[str, str]) -> Statement[None]:
    """Store each good schedule's next fire time (clearing its error) and each bad one's
    error (its next fire time is left as it was)."""
    names = [*nexts, *errors]
    return Statement(queries(schema)["record_schedule_checks"],
                     {"names": names,
                      "next_fire_ats": [*nexts.values(), *[None] * len(errors)],
                      "errors": [*[None] * len(nexts), *errors.values()]},
                     lambda rows: None)


def prune_schedules(schema: str, keep: Sequence[str]) -> Statement[list[str]]:
    """Delete every stored schedule not named in ``keep``; decodes to the deleted names."""
    return Statement(queries(schema)["prune_schedules"], {"keep": list(keep)},
                     lambda rows: [r[0] for r in rows])


def delete_schedule(schema: str, name: str) -> Statement[Any]:
    """Delete one schedule; decodes to its name, or None if there was none."""
    return Statement(queries(schema)["delete_schedule"], {"name": name},
                     lambda rows: rows[0][0] if rows else None)
