"""Job progress: the ``Progress`` a caller reads, the checks of what a task reports, and
the worker-side store that keeps each running job's latest report until it is written.

A bound task calls ``self.update_progress(done, total=None, meta=None)``
(:class:`pgqueue.context.JobContext`). The call is checked here, in the task,
so a bad value raises where it was passed; then the context hands the checked
value to its *sink*. In a worker the sink is :meth:`ProgressStore.put`: it only
replaces the job's previous unwritten value, so a task may report as often as
it likes and the worker writes each job's latest value at most every
``FLUSH_INTERVAL`` seconds (:mod:`pgqueue.worker.progress`). Progress is
advisory: what can't be written is logged and dropped, never a job's failure.

Stored in the job's row (``jobs.progress``, jsonb) as
``{"done": .., "total": .., "meta": .., "updated_at": ..}``; ``meta`` is encoded
like arguments (:mod:`pgqueue.encoding`), ``updated_at`` is the database's clock.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard

from pgqueue import encoding

Number = int | float
# A checked report: (done, total, meta as encoded JSON text or None).
Reported = tuple[Number, Number | None, str | None]
Sink = Callable[[Number, Number | None, str | None], None]

FLUSH_INTERVAL = 0.5  # seconds between a worker's progress writes, at most
# A report's meta is written again every flush while its job runs: keep it small.
MAX_META_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running job says it is (``JobResult.progress``).

    ``done`` and ``total`` are what the task reported (``total`` may be None:
    a count without a known end); ``meta`` is its JSON extra, decoded;
    ``updated_at`` the database's time of the write (the process's own clock in
    eager mode; None for a value written by SQL without one).
    """

    done: Number
    total: Number | None = None
    meta: Any = None
    updated_at: dt.datetime | None = None

    @property
    def fraction(self) -> float | None:
        """``done / total``, or None without a total. Not capped: a task that passes
        its estimate reports more than 1."""
        return self.done / self.total if self.total else None


# -- checking what a task reports ---------------------------------------------------
def _number(value: object, name: str) -> Number:
    kind = type(value)
    if kind is int:
        return value  # type: ignore[return-value]
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ValueError(f"update_progress(): {name} must be a finite number, "
                             f"not {value!r}")
        return value  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"update_progress(): {name} must be an int or a float, not "
                        f"{kind.__name__} ({value!r:.60})")
    # A subclass (an IntEnum, numpy's float64): stored as the plain number it is.
    return _number(int(value) if isinstance(value, int) else float(value), name)


def check(done: object, total: object = None, meta: object = None) -> Reported:
    """A report checked and its meta encoded, or a TypeError/ValueError that says what
    is wrong: ``done`` an int or float of at least 0, ``total`` None or above 0,
    ``meta`` what pgqueue can store as JSON, at most ``MAX_META_BYTES`` encoded."""
    d = _number(done, "done")
    if d < 0:
        raise ValueError(f"update_progress(): done must be 0 or more, not {d!r}")
    t = None if total is None else _number(total, "total")
    if t is not None and t <= 0:
        raise ValueError(f"update_progress(): total must be above 0 (or None), not {t!r}")
    if meta is None:
        return d, t, None
    text = encoding.dumps(meta, "update_progress() meta")
    encoding.check_size(text, MAX_META_BYTES, "update_progress() meta")
    return d, t, text


def to_json(report: Reported) -> str:
    """The stored object without ``updated_at``, which the database adds."""
    done, total, meta = report
    return (f'{{"done":{encoding.dumps(done)},'
            f'"total":{"null" if total is None else encoding.dumps(total)},'
            f'"meta":{"null" if meta is None else meta}}}')


def from_json(text: str | None) -> Progress | None:
    """A stored value read back; None for none, or for one only SQL could have written
    that isn't a progress object (it is advisory: no reader fails on it)."""
    if text is None:
        return None
    try:
        data = encoding.loads(text)
    except (ValueError, TypeError, ArithmeticError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    done, total = data.get("done"), data.get("total")
    if not _is_number(done) or not (total is None or _is_number(total)):
        return None
    return Progress(done, total, data.get("meta"), _time(data.get("updated_at")))


def _is_number(value: object) -> TypeGuard[Number]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _time(value: object) -> dt.datetime | None:
    """The stored time, in UTC (jsonb prints it in the writer's session time zone)."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.astimezone(dt.UTC) if when.tzinfo is not None else when


# -- the worker's store ---------------------------------------------------------------
Key = tuple[int, uuid.UUID]  # (job id, the attempt's lease)


class ProgressStore:
    """The latest unwritten report of each attempt, shared by the job threads (which
    put) and the event loop (which takes). One lock: a put is a dict assignment."""

    def __init__(self) -> None:
        self._latest: dict[Key, Reported] = {}
        self._lock = threading.Lock()

    def sink(self, job_id: int, lease: uuid.UUID) -> Sink:
        """What a job's context reports to: its (id, lease) bound in."""
        def put(done: Number, total: Number | None, meta: str | None) -> None:
            with self._lock:
                self._latest[key] = (done, total, meta)

        key = (job_id, lease)
        return put

    def put(self, job_id: int, lease: uuid.UUID, report: Reported) -> None:
        with self._lock:
            self._latest[(job_id, lease)] = report

    def put_back(self, reports: dict[Key, Reported]) -> None:
        """Reports that could not be written yet, unless a newer one came meanwhile."""
        with self._lock:
            for key, report in reports.items():
                self._latest.setdefault(key, report)

    def take(self, keys: Iterable[Key] | None = None) -> dict[Key, Reported]:
        """Remove and return the reports of these attempts (all of them by default)."""
        with self._lock:
            if keys is None:
                taken, self._latest = self._latest, {}
                return taken
            if not self._latest:
                return {}
            return {k: r for k in keys if (r := self._latest.pop(k, None)) is not None}

    def __len__(self) -> int:
        return len(self._latest)
