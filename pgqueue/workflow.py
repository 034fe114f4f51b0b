"""Applying a canvas: compile it, write it (or run it, in eager mode), hand back results.

The one path every ``apply_async`` of a signature, chain, group or chord takes.
A plain signature without callbacks is written as a plain job (the fast path of
``delay()``); anything else becomes a workflow (:mod:`pgqueue.plan`), written
by the app's enqueuer in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgqueue.canvas import Canvas, Signature
from pgqueue.group_result import GroupResult
from pgqueue.plan import Call, GroupShape, JobShape, Plan, Shape, compile_canvas
from pgqueue.result import JobResult

if TYPE_CHECKING:
    import psycopg

    from pgqueue.app import App


@dataclass
class Written:
    """What an enqueuer made of a plan: a handle per step, and the ids it gave."""

    jobs: list[JobResult]
    groups: list[int]
    workflows: list[int]
    group_type: type[GroupResult] = GroupResult  # eager mode's reads no table


def plain(c: object) -> bool:
    """A single signature with no callbacks: written as a plain job, no workflow."""
    return type(c) is Signature and not c.links and not c.errbacks


def _prepared(app: App, plan: Plan) -> Plan:
    if app.hooks.any_enqueue_hooks:  # the headers enqueue hooks add, on every job
        prepared = app._prepared([s.request for s in plan.steps])
        for step, request in zip(plan.steps, prepared, strict=True):
            step.request = request
            if step.errbacks:
                step.errbacks = tuple(app._prepared(list(step.errbacks)))
    return plan


def compile_many(app: App, canvases: Sequence[Canvas]) -> tuple[Plan, list[Shape]]:
    plan, shapes = compile_canvas(app, [(c, Call()) for c in canvases])
    return _prepared(app, plan), shapes


def _single(c: Canvas, call: Call) -> Signature | None:
    if plain(c) and not call.links and not call.errbacks:
        assert isinstance(c, Signature)
        return c.clone(call.args, call.kwargs) if call.args or call.kwargs else c
    return None


def apply(app: App, canvas: Canvas, call: Call,
          connection: psycopg.Connection[Any] | None) -> JobResult | GroupResult:
    sig = _single(canvas, call)
    if sig is not None:
        return app.enqueue(sig.request(app, call.options), connection=connection)
    plan, shapes = compile_canvas(app, [(canvas, call)])
    return results(app, shapes[0], app.enqueuer.enqueue_workflow(_prepared(app, plan),
                                                                 connection))


async def apply_async(app: App, canvas: Canvas, call: Call,
                      connection: psycopg.AsyncConnection[Any] | None
                      ) -> JobResult | GroupResult:
    sig = _single(canvas, call)
    if sig is not None:
        return await app.enqueue_async(sig.request(app, call.options), connection=connection)
    plan, shapes = compile_canvas(app, [(canvas, call)])
    written = await app.enqueuer.enqueue_workflow_async(_prepared(app, plan), connection)
    return results(app, shapes[0], written)


def results(app: App, shape: Shape, written: Written, workflow: int = 0
            ) -> JobResult | GroupResult:
    """The handle for a shape: a JobResult or GroupResult, with parents and children."""
    made: JobResult | GroupResult
    if isinstance(shape, JobShape):
        made = written.jobs[shape.step - 1]
    else:
        assert isinstance(shape, GroupShape)
        made = written.group_type(app, written.groups[shape.group - 1],
                                  [_member(app, m, written, workflow) for m in shape.members])
    made.workflow_id = written.workflows[workflow] if written.workflows else None
    if shape.parent is not None:
        made.parent = results(app, shape.parent, written, workflow)
    made.children = [results(app, c, written, workflow) for c in shape.children]
    return made


def _member(app: App, shape: Shape, written: Written, workflow: int) -> JobResult:
    made = results(app, shape, written, workflow)
    assert isinstance(made, JobResult)  # plan.py refuses members that end with a group
    return made
