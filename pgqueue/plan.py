"""A canvas turned into rows: the jobs, groups and waits one enqueue writes. Pure: no I/O.

:func:`compile_canvas` walks a canvas (:mod:`pgqueue.canvas`) once and gives a
:class:`Plan`, which ``statements.enqueue_workflow`` writes in one statement,
and a :class:`Shape` per root, from which the caller builds the result handles
(a chain's last result with ``.parent`` links, a group's ``GroupResult``...).

Steps name what they wait for by their place in the plan (1-based, as SQL's
``WITH ORDINALITY`` counts), so the statement can link them before any id
exists. Steps are listed in an order where every step comes after what it
waits for, which is also the order eager mode runs them in.

Rules (Celery's, where Celery has one):

- chain: each step's result is the next step's first argument (unless the next
  is immutable, ``si()``); a group in a chain gets the previous result in each
  member, and a step after a group gets the list of the group's results (the
  group and that step make a chord).
- group: its members are independent jobs; a group inside a group is
  flattened into it. A member must end with one task (its result is the
  member's result): a member that ends with a group is refused.
- chord: the callback gets the header's results in member order, once every
  member succeeded.
- ``link`` runs after a step succeeds, with its result; on a group, after the
  whole group succeeded, with the list of results. ``link_error`` signatures
  run when a job fails: on a chain or group they are attached to each of its
  jobs, on a chord to its callback.
- The call's ``countdown``/``eta`` delay the workflow's first jobs; its other
  options apply to every job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pgqueue.options import NO_OPTIONS, EnqueueOptions
from pgqueue.statements import EnqueueRequest

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.canvas import Canvas


@dataclass(slots=True)
class Step:
    """One job of a workflow."""

    request: EnqueueRequest
    workflow: int  # place in Plan.kinds
    after_job: int | None = None  # place in Plan.steps of the job it waits for
    after_group: int | None = None  # place in Plan.groups of the group it waits for
    pass_result: bool = True  # False: an immutable signature, the result isn't passed
    member_of: int | None = None  # place in Plan.groups
    member_index: int | None = None
    errbacks: tuple[EnqueueRequest, ...] = ()

    @property
    def waiting(self) -> bool:
        return self.after_job is not None or self.after_group is not None


@dataclass
class Plan:
    kinds: list[str] = field(default_factory=list)  # one per workflow
    groups: list[tuple[int, int]] = field(default_factory=list)  # (workflow, size)
    steps: list[Step] = field(default_factory=list)


@dataclass
class JobShape:
    step: int
    parent: Shape | None = None
    children: list[Shape] = field(default_factory=list)


@dataclass
class GroupShape:
    group: int
    members: list[Shape]
    parent: Shape | None = None
    children: list[Shape] = field(default_factory=list)


Shape = JobShape | GroupShape
# What a step waits for: a job's result, a group's results, or a value known now
# (the empty list of an empty group).
Dep = tuple[Literal["job", "group"], int] | tuple[Literal["value"], Any]
# Arguments given when applying, for the canvas's first jobs.
Partial = tuple[tuple[Any, ...], dict[str, Any]] | None


@dataclass(frozen=True)
class Call:
    """What ``apply_async`` was given for the whole canvas."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: EnqueueOptions = NO_OPTIONS
    links: tuple[Canvas, ...] = ()
    errbacks: tuple[Canvas, ...] = ()


class Compiler:
    def __init__(self, app: App) -> None:
        self.app = app
        self.plan = Plan()
        self.shared = self.timing = EnqueueOptions()

    def use(self, o: EnqueueOptions) -> None:
        """A root's call options: its delay is for its first jobs; the rest is for all."""
        self.shared = dataclasses.replace(o, countdown=None, eta=None)
        self.timing = EnqueueOptions(countdown=o.countdown, eta=o.eta)

    def workflow(self, kind: str) -> int:
        self.plan.kinds.append(kind)
        return len(self.plan.kinds)

    def node(self, c: Canvas, after: Dep | None, wf: int,
             partial: Partial,
             errbacks: tuple[Canvas, ...]) -> tuple[Shape, Dep]:
        # Each kind of canvas calls back the method below that compiles it, so this
        # module needs none of their classes.
        compile_with = getattr(c, "compile_with", None)
        if compile_with is None:
            raise TypeError(f"not a signature or canvas: {c!r}")
        result: tuple[Shape, Dep] = compile_with(self, after, wf, partial, errbacks)
        return result

    def links(self, shape: Shape, exit_: Dep, c: Canvas, wf: int,
              errbacks: tuple[Canvas, ...]) -> None:
        for link in c.links:
            child, _ = self.node(link, exit_, wf, None, errbacks)
            shape.children.append(child)

    def signature(self, s: Any, after: Dep | None, wf: int,
                  partial: Partial,
                  errbacks: tuple[Canvas, ...]) -> tuple[Shape, Dep]:
        if partial is not None:
            s = s.clone(partial[0], partial[1])
        pass_result = not s.immutable
        if after is not None and after[0] == "value":
            if pass_result:
                s = s.clone((after[1],))
            after = None
        options = self.shared if after is not None else self.shared_and_timing()
        request = s.request(self.app, options)
        if request.options.unique_key is not None:
            raise ValueError(f"{s!r}: a workflow's jobs can't have unique keys (its steps "
                             "are all written together); enqueue unique jobs on their own")
        step = Step(
            request=request, workflow=wf,
            after_job=after[1] if after is not None and after[0] == "job" else None,
            after_group=after[1] if after is not None and after[0] == "group" else None,
            pass_result=pass_result,
            errbacks=tuple(_errback(self.app, e) for e in (*s.errbacks, *errbacks)))
        self.plan.steps.append(step)
        shape = JobShape(len(self.plan.steps))
        exit_: Dep = ("job", shape.step)
        self.links(shape, exit_, s, wf, ())
        return shape, exit_

    def shared_and_timing(self) -> EnqueueOptions:
        if self.timing.countdown is None and self.timing.eta is None:
            return self.shared
        return dataclasses.replace(self.shared, countdown=self.timing.countdown,
                                   eta=self.timing.eta)

    def chain(self, c: Any, after: Dep | None, wf: int,
              partial: Partial,
              errbacks: tuple[Canvas, ...]) -> tuple[Shape, Dep]:
        if not c.tasks:
            raise ValueError("an empty chain has nothing to run")
        errbacks = (*c.errbacks, *errbacks)
        shape: Shape | None = None
        dep = after
        for i, task in enumerate(c.tasks):
            step_shape, dep = self.node(task, dep, wf, partial if i == 0 else None, errbacks)
            _root(step_shape).parent = shape  # a chord or chain keeps its own parents
            shape = step_shape
        assert shape is not None and dep is not None
        self.links(shape, dep, c, wf, ())
        return shape, dep

    def group(self, g: Any, after: Dep | None, wf: int,
              partial: Partial,
              errbacks: tuple[Canvas, ...]) -> tuple[Shape, Dep]:
        errbacks = (*g.errbacks, *errbacks)
        members = list(_flattened(g))
        self.plan.groups.append((wf, len(members)))
        index = len(self.plan.groups)
        shapes: list[Shape] = []
        for i, member in enumerate(members):
            shape, exit_ = self.node(member, after, wf, partial, errbacks)
            if exit_[0] != "job":
                what = member.kind
                raise ValueError(
                    f"member {i + 1} of a group ({what} {member!r}) ends with a group: a "
                    "group's member must end with one task, whose result is the member's; "
                    "end it with a task that gathers the results (a chord)")
            step = self.plan.steps[exit_[1] - 1]
            step.member_of, step.member_index = index, i
            shapes.append(shape)
        shape = GroupShape(index, shapes)
        done: Dep = ("group", index) if members else ("value", [])
        self.links(shape, done, g, wf, ())
        return shape, done

    def chord(self, c: Any, after: Dep | None, wf: int,
              partial: Partial,
              errbacks: tuple[Canvas, ...]) -> tuple[Shape, Dep]:
        if c.body is None:
            raise ValueError("a chord needs a callback: chord(header, callback) or "
                             "chord(header)(callback)")
        header, header_exit = self.group(c.header, after, wf, partial, ())
        body, exit_ = self.node(c.body, header_exit, wf, None, (*c.errbacks, *errbacks))
        _root(body).parent = header
        self.links(body, exit_, c, wf, ())
        return body, exit_


def _root(shape: Shape) -> Shape:
    """The first result of a chain's shape (the one with no parent)."""
    while shape.parent is not None:
        shape = shape.parent
    return shape


def _flattened(g: Any) -> Sequence[Canvas]:
    out: list[Canvas] = []
    for member in g.tasks:
        # A group in a group is one group (as in Celery), unless it carries callbacks.
        if member.kind == "group" and not member.links and not member.errbacks:
            out.extend(_flattened(member))
        else:
            out.append(member)
    return out


def _errback(app: App, c: Any) -> EnqueueRequest:
    if c.kind != "task" or c.links or c.errbacks:
        raise TypeError(f"link_error takes signatures of single tasks, not {c!r}: the "
                        "callback runs with the failed job's id and its error")
    request: EnqueueRequest = c.request(app, NO_OPTIONS)
    return request


def compile_canvas(app: App, roots: Sequence[tuple[Canvas, Call]]) -> tuple[Plan, list[Shape]]:
    """The plan that writes these canvases (one workflow each) and each one's shape."""
    compiler = Compiler(app)
    shapes: list[Shape] = []
    for c, call in roots:
        compiler.use(call.options)
        wf = compiler.workflow(c.kind)
        partial = (call.args, call.kwargs) if call.args or call.kwargs else None
        shape, exit_ = compiler.node(c, None, wf, partial, call.errbacks)
        for link in call.links:
            child, _ = compiler.node(link, exit_, wf, None, ())
            shape.children.append(child)
        shapes.append(shape)
    return (compiler.plan if compiler else Plan()), shapes
