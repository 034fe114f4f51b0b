"""Workflows in eager mode: a compiled plan's steps decided one by one, as the database would.

In production a workflow moves through its trigger (migration 0009): when a
job ends, the steps that wait on it are released, with its value first in
their arguments, or cancelled carrying its error; a group's first failed member
cancels the group's dependents with a ``ChordError``; a job that failed (or a
chord's callback its header cancelled) has its ``link_error`` callbacks
enqueued. :class:`Walk` makes the same decisions over results in memory.

It runs nothing itself: it says what is due next (:class:`Todo`: run this
request, or record it cancelled with this error), and ``eager.py`` runs each
through its one job runner, sync or async, so the rules are written once. The
plan's steps are in an order where every step comes after what it waits for,
so one pass in that order ends them all.

Also here: :class:`EagerGroupResult`, a ``GroupResult`` counted from its
members in memory, and the eager groups ``app.GroupResult(id)`` finds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgqueue import encoding
from pgqueue.group_result import GroupResult
from pgqueue.job import JobError, JobInfo, JobState
from pgqueue.workflow import Written

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.plan import Plan, Step
    from pgqueue.result import JobResult
    from pgqueue.statements import EnqueueRequest

# Each app's eager groups (member results in member order), for app.GroupResult(id);
# bounded like eager.py's results.
_KEEP = 10_000
_groups: dict[App, dict[int, list[JobResult]]] = {}


@dataclass(frozen=True, slots=True)
class Todo:
    """A job due now: run ``request`` under ``job_id``, or, if ``cancelled`` is set,
    record it cancelled with that error without running it."""

    job_id: int
    request: EnqueueRequest
    cancelled: JobError | None = None
    place: int | None = None  # its step's place in the plan (1-based); None for an errback
    workflow: int | None = None  # place in Plan.kinds


class Walk:
    """One plan, run in eager mode: iterate for what is due, in order, and report each
    one's result with :meth:`ended` before asking for the next; then :meth:`written`."""

    def __init__(self, app: App, plan: Plan, next_id: Callable[[], int]) -> None:
        self.app = app
        self.plan = plan
        self.next_id = next_id
        # Ids in the order the database gives them: workflows, groups, then steps.
        self.workflows = [next_id() for _ in plan.kinds]
        self.groups = [next_id() for _ in plan.groups]
        self.ids = [next_id() for _ in plan.steps]
        self.jobs: dict[int, JobResult] = {}  # by place
        self.members: list[dict[int, JobResult]] = [{} for _ in plan.groups]

    def __iter__(self) -> Iterator[Todo]:
        for place, step in enumerate(self.plan.steps, 1):
            yield self._todo(place, step)
            info = self.jobs[place].info()
            if info.state is not JobState.SUCCEEDED:
                yield from self._errbacks(step, info)

    def ended(self, todo: Todo, result: JobResult) -> None:
        if todo.workflow is not None:
            result.workflow_id = self.workflows[todo.workflow - 1]
        if todo.place is None:
            return
        self.jobs[todo.place] = result
        step = self.plan.steps[todo.place - 1]
        if step.member_of is not None and step.member_index is not None:
            self.members[step.member_of - 1][step.member_index] = result

    def written(self) -> Written:
        """What the plan made: a result per step, the group and workflow ids."""
        kept = _groups.setdefault(self.app, {})
        for group_id, members in zip(self.groups, self.members, strict=True):
            kept[group_id] = [members[i] for i in sorted(members)]
            if len(kept) > _KEEP:
                del kept[next(iter(kept))]  # the oldest
        return Written([self.jobs[place] for place in range(1, len(self.plan.steps) + 1)],
                       list(self.groups), list(self.workflows), EagerGroupResult)

    # -- the trigger's rules --------------------------------------------------
    def _todo(self, place: int, step: Step) -> Todo:
        """The step run with what it waited for, or cancelled by what failed there."""
        due = Todo(self.ids[place - 1], step.request, place=place, workflow=step.workflow)
        value: Any
        if step.after_job is not None:
            upstream = self.jobs[step.after_job].info()
            if upstream.state is not JobState.SUCCEEDED:
                return dataclasses.replace(due, cancelled=_carried(upstream))
            value = upstream.result
        elif step.after_group is not None:
            members = self._members(step.after_group)
            failed = next(((i, m) for i, m in enumerate(members)
                           if m.state is not JobState.SUCCEEDED), None)
            if failed is not None:
                return dataclasses.replace(due, cancelled=self._chord_error(
                    step.after_group, *failed))
            value = [m.result for m in members]
        else:
            return due
        if not step.pass_result:  # immutable (si): runs with its own arguments only
            return due
        return dataclasses.replace(due, request=_prepended(step.request, value))

    def _members(self, group: int) -> list[JobInfo]:
        members = self.members[group - 1]
        return [members[i].info() for i in sorted(members)]

    def _chord_error(self, group: int, index: int, member: JobInfo) -> JobError:
        """A group's dependents' error when its member ``index`` failed (or was cancelled)."""
        err = _error_of(member)
        what = f"{err.type}: {err.message}" if err.message else err.type
        return JobError("ChordError",
                        f"member {index + 1} of group {self.groups[group - 1]} "
                        f"(job {member.id}, {member.task}) failed: {what}", "",
                        cause_job=err.cause_job if err.cause_job is not None else member.id)

    def _errbacks(self, step: Step, info: JobInfo) -> Iterator[Todo]:
        """A failed job's link_error callbacks: for the job that failed, and for a chord's
        callback its header cancelled; not for each step a failure cancelled down a chain."""
        err = _error_of(info)
        if err.cause_job is not None and step.after_group is None:
            return
        told = {"type": err.type, "message": err.message, "traceback": err.traceback}
        for request in step.errbacks:
            yield Todo(self.next_id(), _prepended(request, info.id, told),
                       workflow=step.workflow)


def _error_of(info: JobInfo) -> JobError:
    """The job's error, or the one the trigger makes up for a job that ended without one."""
    if info.error is not None:
        return info.error
    kind = "JobCancelled" if info.state is JobState.CANCELLED else "UnknownError"
    return JobError(kind, f"job {info.id} ({info.task}) was {info.state}", "")


def _carried(upstream: JobInfo) -> JobError:
    """The error a step cancelled down a chain carries: the upstream's, naming the job
    that failed first."""
    err = _error_of(upstream)
    return dataclasses.replace(
        err, cause_job=err.cause_job if err.cause_job is not None else upstream.id)


def _prepended(request: EnqueueRequest, *values: Any) -> EnqueueRequest:
    """The request with ``values`` before its own arguments, encoded as a worker gets them."""
    args = [*values, *encoding.loads(request.args_json)]
    return dataclasses.replace(request, args_json=encoding.dumps(args, "args"))


# -- groups ---------------------------------------------------------------------------
class EagerGroupResult(GroupResult):
    """A group whose members ran in eager mode: counted from their results in memory,
    never from the database; ``get()`` never waits."""

    def __repr__(self) -> str:
        return f"<EagerGroupResult {self.id}>"

    def _infos(self) -> list[JobInfo]:
        return [r.info() for r in self._results or []]

    async def _infos_async(self) -> list[JobInfo]:
        return self._infos()

    def _counts(self) -> tuple[int, int, int]:
        infos = self._infos()
        ok = sum(i.state is JobState.SUCCEEDED for i in infos)
        ended = sum(i.state.finished for i in infos)
        return len(infos), ok, ended - ok

    async def _counts_async(self) -> tuple[int, int, int]:
        return self._counts()

    # The base class waits on the database's notifications; every eager member has ended.
    def get(self, timeout: float | None = None, *, propagate: bool = True) -> list[Any]:
        """The members' results in member order, or the first failed member's error."""
        return self._values(self._infos(), propagate)

    async def get_async(self, timeout: float | None = None, *,
                        propagate: bool = True) -> list[Any]:
        return self.get(timeout, propagate=propagate)

    join = get
    join_async = get_async


def lookup_group(app: App, group_id: int) -> EagerGroupResult | None:
    """The eager group with this id, for ``app.GroupResult(id)`` in eager mode."""
    members = _groups.get(app, {}).get(group_id)
    return None if members is None else EagerGroupResult(app, group_id, members)


def clear(app: App) -> None:
    """Forget the app's eager groups (between tests)."""
    _groups.pop(app, None)
