"""What the Monitor answers with: frozen rows, and how they become JSON.

Plain data decoded from the monitoring queries (:mod:`pgqueue.monitor_statements`
builds and decodes them, :class:`pgqueue.monitor.Monitor` runs them). A stored
argument or result that can't be decoded comes back as a :class:`RawValue` (its
JSON text as stored) instead of failing the whole page or command.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pgqueue import encoding, limits
from pgqueue.progress import Progress

REDACTED = "•••"
# How much of an undecodable value's JSON text is kept to show.
RAW_CHARS = 100_000
# Deeper values decode, but every renderer after (JSON, templates) recurses once
# per level: past this they are shown raw rather than risk a RecursionError there.
MAX_DEPTH = 200


@dataclass(frozen=True)
class QueueStats:
    queue: str
    queued: int
    scheduled: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    oldest_waiting_seconds: float | None
    throughput_per_min: float
    paused: bool
    # The queue's own limits (pgq queues limit), None where it has none: ``rate_limit``
    # as written ("600/m"), also as ``rate`` starts per ``rate_window_seconds``.
    rate_limit: str | None = None
    rate: int | None = None
    rate_window_seconds: float | None = None
    concurrency_limit: int | None = None
    # Due jobs under a limit (the queue's, or their task's), waiting for room.
    held_back: int = 0


@dataclass(frozen=True)
class XminHolder:
    """Something holding back the xmin horizon: a ``session`` (``pid`` and its
    ``application_name`` as ``name``), a ``prepared`` transaction (its gid), a
    replication ``slot`` or a ``standby`` (its feedback). ``seconds``: how long its
    transaction has been open (None for slots and standbys); ``xids``: how many
    transactions ago its horizon is."""

    kind: str
    pid: int | None
    name: str
    user: str | None
    state: str | None
    client_addr: str | None
    seconds: float | None
    xids: int | None


@dataclass(frozen=True)
class XminHorizon:
    """The oldest holders, oldest first; ``warning``: the oldest has been open longer
    than ``warn_after_seconds`` (PGQ_XMIN_WARN), or is ``warn_after_xids`` or more
    transactions behind."""

    holders: list[XminHolder]
    warn_after_seconds: float
    warn_after_xids: int
    oldest_seconds: float | None
    oldest_xids: int | None
    warning: bool


@dataclass(frozen=True)
class QueueLimits:
    """A queue's limits as now stored, what ``Monitor.set_queue_limits`` answers."""

    queue: str
    rate_limit: str | None
    rate: int | None
    rate_window_seconds: float | None
    concurrency_limit: int | None

    def describe(self) -> str:
        """"at most 600 starts a minute, 20 running at once", or "no limits"."""
        return limits.describe(self.rate, self.rate_window_seconds, self.concurrency_limit)


@dataclass(frozen=True)
class TaskLimit:
    """A task's limits, as a worker's code declared them (``@app.task(rate_limit=...,
    concurrency_limit=...)``) when it started, at ``declared_at``."""

    task: str
    rate_limit: str | None
    rate: int | None
    rate_window_seconds: float | None
    concurrency_limit: int | None
    held_back: int  # its due jobs, waiting for room
    running: int
    declared_at: dt.datetime


@dataclass(frozen=True)
class WorkerInfo:
    id: int
    name: str
    host: str
    pid: int
    queues: list[str]
    pool: str
    concurrency: int
    running: int
    jobs_done: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    heartbeat_age_seconds: float
    uptime_seconds: float
    status: str


@dataclass(frozen=True)
class TaskStats:
    task: str
    succeeded: int
    failed: int
    retried: int
    mean_runtime_ms: float | None
    p95_runtime_ms: float | None


@dataclass(frozen=True)
class Bucket:
    at: dt.datetime
    succeeded: int
    failed: int


@dataclass(frozen=True)
class JobRow:
    id: int
    task: str
    queue: str
    state: str
    priority: int
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    worker: str | None
    # Keyword-only, so the subclass's fields may follow without defaults.
    progress: Progress | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRow]
    next_before_id: int | None


@dataclass(frozen=True)
class Attempt:
    attempt: int
    type: str
    message: str
    traceback: str
    created_at: dt.datetime


@dataclass(frozen=True)
class RawValue:
    """A stored value shown as stored: it can't be decoded (written by SQL, not by
    pgqueue), or isn't the shape its field needs. ``raw`` is its JSON text, cut to
    ``RAW_CHARS`` characters (``truncated`` says so); ``error`` completes the
    sentence "the value ...", e.g. "can't be decoded: ValueError: ..."."""

    raw: str
    error: str
    truncated: bool = False


@dataclass(frozen=True)
class JobDetail(JobRow):
    args: list[Any] | RawValue
    kwargs: dict[str, Any] | RawValue
    result: Any
    run_at: dt.datetime
    rescues: int
    cancel_requested: bool
    lease_expires_at: dt.datetime | None
    worker_host: str | None
    worker_pid: int | None
    max_attempts: int
    attempts_history: list[Attempt]


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    task: str
    rule: str
    tz: str
    queue: str
    paused: bool
    last_fire_at: dt.datetime | None
    next_fire_at: dt.datetime | None  # None while paused, or when the rule is invalid
    # Why the schedule is skipped: what the scheduler stored, or what the monitor
    # found evaluating the rule; None for a healthy schedule.
    error: str | None = None
    error_at: dt.datetime | None = None


# -- workflows ---------------------------------------------------------------
@dataclass(frozen=True)
class WorkflowSummary:
    """A row of the ``workflow_status`` view: a workflow's jobs counted by state."""

    id: int
    kind: str  # the outermost shape: chain, group, chord, or task (a task with links)
    created_at: dt.datetime
    jobs: int
    waiting: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    finished: bool  # every job has ended
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class WorkflowGroup:
    """A group's counters, which a chord's callback waits on."""

    id: int
    size: int
    succeeded: int
    failed: int  # failed or cancelled members
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class WorkflowStep:
    """One job of a workflow, with what it waits for and what it belongs to."""

    id: int
    task: str
    queue: str
    state: str
    attempts: int
    created_at: dt.datetime
    finished_at: dt.datetime | None
    after_job: int | None = None  # runs when this job succeeded
    after_group: int | None = None  # runs when every member of this group succeeded
    group_id: int | None = None  # a member of this group...
    group_index: int | None = None  # ...at this place (0-based)
    errback_of: int | None = None  # a link_error callback of this job
    pass_result: bool = True
    error_type: str | None = None  # its latest error
    error_message: str | None = None
    # For a step cancelled because an earlier one failed: the job that failed.
    error_from_job: int | None = None


@dataclass(frozen=True)
class StepNode:
    """A step in a drawn workflow. ``forks``: what waits for it, side by side, when
    more than one step does (a single one follows it in its branch); ``errbacks``:
    its link_error callbacks that were enqueued."""

    step: WorkflowStep
    forks: list[list[WorkflowNode]] = dataclasses.field(default_factory=list)
    errbacks: list[list[WorkflowNode]] = dataclasses.field(default_factory=list)
    kind: str = "step"


@dataclass(frozen=True)
class GroupNode:
    """A group in a drawn workflow: one branch per member, in member order (a member
    that is a chain is the branch of its steps). What waits for the group follows it
    in its branch, or, when several steps do, is in ``forks``."""

    group: WorkflowGroup
    members: list[list[WorkflowNode]] = dataclasses.field(default_factory=list)
    forks: list[list[WorkflowNode]] = dataclasses.field(default_factory=list)
    kind: str = "group"


WorkflowNode = StepNode | GroupNode
# Nodes that run one after the other (a chain); parallel work is nested in them.
Branch = list[WorkflowNode]


@dataclass(frozen=True)
class WorkflowDetail:
    """A whole workflow: its counts, its groups and its steps drawn as a tree
    (:func:`pgqueue.monitor_tree.build_tree`). ``tree`` is a list of branches: one,
    unless rows written by SQL left steps that nothing leads to; None when the
    workflow was too big to be asked for whole."""

    workflow: WorkflowSummary
    groups: list[WorkflowGroup]
    tree: list[Branch] | None


@dataclass(frozen=True)
class Related:
    """Some steps related to a job, the first ``len(steps)`` of ``total``."""

    steps: list[WorkflowStep]
    total: int

    @property
    def more(self) -> int:
        return max(self.total - len(self.steps), 0)


@dataclass(frozen=True)
class JobWorkflow:
    """A job's place in its workflow, as its dashboard page shows it."""

    workflow_id: int
    workflow: WorkflowSummary | None  # None: the workflow's row is gone (SQL)
    step: WorkflowStep  # the job itself
    parents: Related  # the job it waits for, or every member of the group it waits for
    parent_group: WorkflowGroup | None  # the group it waits for (a chord's callback)
    errback_of: WorkflowStep | None  # the failed job this errback was enqueued for
    group: WorkflowGroup | None  # the group it is a member of
    siblings: Related  # the other members of that group
    callbacks: Related  # steps waiting for it, or for its group
    errbacks: Related  # its link_error callbacks, once it failed
    tree: WorkflowDetail | None = None  # the whole workflow, when it is small


def to_json(value: Any) -> Any:
    """Dataclasses, lists and dicts of them, with datetimes as ISO 8601 strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    return value


def stored(text: str, shape: type | None = None) -> Any:
    """A stored JSON value decoded, or a :class:`RawValue` saying why it can't be."""
    try:
        value = encoding.loads(text)
    # A value only SQL could have written may fail any decoder: a tagged string that
    # isn't a date or number, nesting past the parser's recursion limit, ...
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        return _raw(text, f"can't be decoded: {type(exc).__name__}: {exc}")
    if shape is not None and not isinstance(value, shape):
        return _raw(text, f"is a JSON {type(value).__name__}, not a {shape.__name__}")
    if _deeper_than(value, MAX_DEPTH):
        return _raw(text, f"is nested deeper than {MAX_DEPTH} levels")
    return value


def _raw(text: str, error: str) -> RawValue:
    return RawValue(text[:RAW_CHARS], error, truncated=len(text) > RAW_CHARS)


def _deeper_than(value: Any, limit: int) -> bool:
    # Iterative on purpose: the value may be nearly as deep as the recursion limit.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return False
