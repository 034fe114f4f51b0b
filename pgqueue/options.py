"""The options of a job and of a task, each declared once and validated once.

- :class:`EnqueueOptions`: how one job is enqueued (``apply_async(**options)``,
  ``send_task``, ``signature``, schedules). Every enqueue path builds one, and
  :mod:`pgqueue.statements` writes its fields; a new option is a field here, a
  check in ``_check`` and a column in the SQL, nothing else.
- :class:`TaskOptions`: what ``@app.task(...)`` takes: the task's defaults for
  its jobs, its retry policy, and how it runs.

A field left ``None`` in the per-call options takes the task's default
(:meth:`EnqueueOptions.over`). Every check raises ``TypeError``/``ValueError``
before any SQL runs, so a bad argument never aborts the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pgqueue.limits import check_concurrency, parse_rate
from pgqueue.retry import RetryPolicy

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
QUEUE_RULE = "use letters, digits and . _ : - (at most 100 characters)"
SMALLINT = (-32768, 32767)


def check_queue(name: object) -> str:
    """The one rule for queue names, shared by enqueue and ``pgq worker --queues``."""
    if not isinstance(name, str):
        raise TypeError(f"queue must be a str, not {type(name).__name__}")
    if not QUEUE_NAME.match(name):
        raise ValueError(f"invalid queue name {name!r}: {QUEUE_RULE}")
    return name


def _int(label: str, value: object) -> int:
    # bool is an int to Python, and 1.7 would be silently rounded by Postgres.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{label} must be an int, not {type(value).__name__} ({value!r})")
    return value


def _seconds(label: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{label} must be a number of seconds, not {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{label} must be a finite number of seconds, not {value}")
    return float(value)


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """Per-job options. ``None`` means: the task's default.

    - ``queue``: where the job waits (the task's queue by default).
    - ``priority``: higher runs first, -32768..32767 (the task's priority by default).
    - ``countdown`` (seconds from now, by the database's clock) or ``eta``
      (a timezone-aware datetime): when the job becomes due.
    - ``headers``: string metadata carried with the job (trace context, ...).
    - ``max_attempts``: normally from the task's retry policy; 0 tells the
      worker to apply the policy of the task it has registered.
    - ``unique_key``: at most one waiting-or-running job holds a key; an enqueue
      with a held key returns the holder (``r.deduplicated``). ``unique_for``
      (seconds): the key is also held that long after the job was enqueued,
      finished or not.
    - ``expires`` (seconds from now, or a timezone-aware datetime): a job not
      started by then is cancelled without running (``JobExpired``).
    - ``rate_key`` / ``concurrency_key``: count this job under its own key of its
      task's ``rate_limit`` / ``concurrency_limit`` (each key gets the full limit).
    """

    queue: str | None = None
    priority: int | None = None
    countdown: float | None = None
    eta: dt.datetime | None = None
    # Out of the generated __eq__/__hash__: a dict can't be hashed.
    headers: Mapping[str, str] | None = field(default=None, compare=False)
    max_attempts: int | None = None
    unique_key: str | None = None
    unique_for: float | None = None  # seconds (a timedelta is taken too)
    expires: float | dt.datetime | None = None  # seconds from now, or a datetime
    rate_key: str | None = None
    concurrency_key: str | None = None

    def __post_init__(self) -> None:
        for name in ("unique_for", "expires"):
            value = getattr(self, name)
            if isinstance(value, dt.timedelta):
                object.__setattr__(self, name, value.total_seconds())
        _check(self)

    @classmethod
    def from_kwargs(cls, given: Mapping[str, Any]) -> EnqueueOptions:
        """Options from keyword arguments; an unknown name is a TypeError naming the known."""
        if not given:
            return _EMPTY
        unknown = set(given).difference(_ENQUEUE_FIELDS)
        if unknown:
            raise TypeError(
                f"unknown enqueue option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(sorted(unknown))} (known: {', '.join(sorted(_ENQUEUE_FIELDS))})")
        return cls(**given)

    def over(self, defaults: EnqueueOptions) -> EnqueueOptions:
        """These options, with every field left None taken from ``defaults``."""
        if self is _EMPTY:  # delay() and s(): no options given, the defaults as they are
            return defaults
        changes = {f: d for f in _ENQUEUE_FIELDS
                   if (d := getattr(defaults, f)) is not None and getattr(self, f) is None}
        if "countdown" in changes and self.eta is not None:
            del changes["countdown"]  # a call's eta replaces the default delay
        if "eta" in changes and self.countdown is not None:
            del changes["eta"]
        if not changes:
            return self
        # Both sides were checked when made, and eta/countdown are kept exclusive
        # above: the merge needs no second check (it is on every enqueue's path).
        merged = object.__new__(EnqueueOptions)
        for f in _ENQUEUE_FIELDS:
            object.__setattr__(merged, f, changes[f] if f in changes else getattr(self, f))
        return merged

    def with_headers(self, extra: Mapping[str, str]) -> EnqueueOptions:
        return dataclasses.replace(self, headers={**(self.headers or {}), **extra})


def _check(o: EnqueueOptions) -> None:
    if o.queue is not None:
        check_queue(o.queue)
    if o.priority is not None and not SMALLINT[0] <= _int("priority", o.priority) <= SMALLINT[1]:
        raise ValueError(f"priority must fit in a smallint (-32768..32767), not {o.priority}")
    if o.countdown is not None:
        _seconds("countdown", o.countdown)
    if o.eta is not None:
        if not isinstance(o.eta, dt.datetime):
            raise TypeError(f"eta must be a datetime, not {type(o.eta).__name__}")
        if o.eta.tzinfo is None:
            raise ValueError(
                "eta must be timezone-aware (for example datetime.now(timezone.utc) + delta); "
                "a naive datetime is ambiguous")
        if o.countdown is not None:
            raise ValueError("give either eta or countdown, not both")
    if o.max_attempts is not None and _int("max_attempts", o.max_attempts) < 0:
        raise ValueError("max_attempts must be 0 or more")
    if o.unique_key is not None:
        if not isinstance(o.unique_key, str):
            raise TypeError(f"unique_key must be a str, not {type(o.unique_key).__name__}")
        if not o.unique_key or len(o.unique_key) > 1000:
            raise ValueError("unique_key must be 1 to 1000 characters")
    for label in ("rate_key", "concurrency_key"):
        value = getattr(o, label)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
            raise TypeError(f"{label} must be a str of 1 to 200 characters, not {value!r}")
    if o.unique_for is not None and _seconds("unique_for", o.unique_for) < 0:
        raise ValueError(f"unique_for must be 0 or more seconds, not {o.unique_for}")
    if o.expires is not None:
        if isinstance(o.expires, dt.datetime):
            if o.expires.tzinfo is None:
                raise ValueError("expires must be timezone-aware (a naive datetime is "
                                 "ambiguous), or a number of seconds from now")
        elif _seconds("expires", o.expires) < 0:
            raise ValueError(f"expires must be 0 or more seconds, not {o.expires}")
    if o.headers is not None:
        if not isinstance(o.headers, Mapping):
            raise TypeError(f"headers must be a dict, not {type(o.headers).__name__}")
        for k, v in o.headers.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"headers must map str to str, not {k!r}: {v!r}")


_ENQUEUE_FIELDS = tuple(f.name for f in fields(EnqueueOptions))
_EMPTY = EnqueueOptions()  # what from_kwargs({}) gives: identity marks "nothing given"
NO_OPTIONS = _EMPTY


@dataclass(frozen=True)
class TaskOptions:
    """What ``@app.task(...)`` accepts; every field has its documented default here.

    ``name`` (the function's name if None), ``queue``, ``priority``: the task's
    defaults for its jobs. ``policy``: the retry policy, whose fields
    (``max_retries``, ``autoretry_for``, ``retry_backoff``...: see
    :class:`pgqueue.retry.RetryPolicy`) are given flat to ``@app.task`` and
    gathered by :meth:`from_kwargs`. ``bind``: the function
    gets a :class:`pgqueue.context.JobContext` first. ``time_limit`` (hard) and
    ``soft_time_limit`` in seconds. ``atomic``: the task's writes on
    ``self.connection`` commit with its completion. ``redact``: argument names
    monitoring shows as •••. ``unique``: a job's key is its task and arguments
    (see ``unique_key``), held for ``unique_for`` seconds. ``ignore_result``: no
    result row is stored. ``result_expires``: seconds after which this task's
    finished jobs are pruned (instead of after the retention). ``rate_limit``
    (``"100/m"``) and ``concurrency_limit``: global, across every worker.
    """

    name: str | None = None
    queue: str = "default"
    priority: int = 0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    bind: bool = False
    time_limit: float | None = None
    soft_time_limit: float | None = None
    atomic: bool = False
    redact: Sequence[str] = ()
    unique: bool = False
    unique_for: float | None = None
    ignore_result: bool = False
    result_expires: float | None = None
    rate_limit: str | None = None
    concurrency_limit: int | None = None

    def __post_init__(self) -> None:
        if self.rate_limit is not None:
            parse_rate(self.rate_limit)
        if self.concurrency_limit is not None:
            check_concurrency(self.concurrency_limit)
        for name in ("unique_for", "result_expires"):
            value = getattr(self, name)
            if isinstance(value, dt.timedelta):
                object.__setattr__(self, name, value.total_seconds())
        if self.result_expires is not None and _seconds("result_expires",
                                                        self.result_expires) < 0:
            raise ValueError(f"result_expires must be 0 or more seconds, not "
                             f"{self.result_expires}")
        EnqueueOptions(unique_for=self.unique_for)  # the same check
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise TypeError(f"a task's name must be a non-empty str, not {self.name!r}")
        EnqueueOptions(queue=self.queue, priority=self.priority)  # the same checks
        for label, limit in (("time_limit", self.time_limit),
                             ("soft_time_limit", self.soft_time_limit)):
            if limit is not None and _seconds(label, limit) <= 0:
                raise ValueError(f"{label} must be positive seconds, not {limit}")
        if self.time_limit and self.soft_time_limit and self.soft_time_limit >= self.time_limit:
            raise ValueError("soft_time_limit must be shorter than time_limit")
        object.__setattr__(self, "redact", tuple(self.redact))

    @classmethod
    def from_kwargs(cls, given: Mapping[str, Any]) -> TaskOptions:
        """``@app.task``'s keywords: the retry policy's fields, flat, and this type's."""
        retry = {k: v for k, v in given.items() if k in _RETRY_FIELDS}
        rest = {k: v for k, v in given.items() if k not in _RETRY_FIELDS}
        unknown = set(rest) - _TASK_FIELDS
        if unknown:
            known = sorted((_TASK_FIELDS - {"policy"}) | _RETRY_FIELDS)
            raise TypeError(f"unknown task option{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(sorted(unknown))} (known: {', '.join(known)})")
        return cls(**rest, policy=RetryPolicy(**retry)) if retry else cls(**rest)

    def enqueue_defaults(self) -> EnqueueOptions:
        """The options a job of this task gets where the call doesn't say."""
        return EnqueueOptions(queue=self.queue, priority=self.priority,
                              max_attempts=self.policy.max_attempts, unique_for=self.unique_for)

    def limits(self) -> tuple[int | None, float | None, int | None]:
        """(rate count, rate window seconds, concurrency), None where unlimited."""
        rate, window = parse_rate(self.rate_limit) if self.rate_limit else (None, None)
        return rate, window, self.concurrency_limit


_RETRY_FIELDS = frozenset(f.name for f in fields(RetryPolicy))
_TASK_FIELDS = frozenset(f.name for f in fields(TaskOptions))

# For jobs enqueued by a name no task here has registered (send_task).
UNKNOWN_TASK_DEFAULTS = EnqueueOptions(queue="default", priority=0, max_attempts=0)
