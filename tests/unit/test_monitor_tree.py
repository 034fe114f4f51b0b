"""The workflow tree of `pgq workflows show` and the dashboard, from rows: the shapes the
canvas compiler writes, and rows only SQL could write."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from pgqueue import App
from pgqueue.canvas import chain, chord, group
from pgqueue.monitor_rows import GroupNode, StepNode, WorkflowGroup, WorkflowStep, to_json
from pgqueue.monitor_tree import MAX_NESTING, build_tree, walk
from pgqueue.plan import compile_canvas

NOW = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def step(id_: int, **fields: Any) -> WorkflowStep:
    fields.setdefault("state", "succeeded")
    return WorkflowStep(id_, fields.pop("task", "add"), "default", attempts=1, created_at=NOW,
                        finished_at=None, **fields)


def shape(branches: list) -> list:
    """A tree as nested lists: a step is its id (with ("forks", ...) or ("on error", ...)
    when it has them), a group ("group", id, members...)."""
    out = []
    for branch in branches:
        items: list[Any] = []
        for node in branch:
            if isinstance(node, StepNode):
                extra = ((("forks", shape(node.forks)),) if node.forks else ()) + \
                        ((("on error", shape(node.errbacks)),) if node.errbacks else ())
                items.append((node.step.id, *extra) if extra else node.step.id)
            else:
                extra = (("forks", shape(node.forks)),) if node.forks else ()
                items.append(("group", node.group.id, shape(node.members), *extra))
        out.append(items)
    return out


@pytest.fixture(scope="module")
def app() -> App:
    application = App()
    for name in ("add", "mul", "tsum", "log"):
        application.task(name=name)(lambda *a: None)
    return application


def compiled(app: App, canvas: Any) -> tuple[list[WorkflowStep], list[WorkflowGroup]]:
    """The rows enqueue_workflow writes for a canvas: ids are places in the plan."""
    from pgqueue.plan import Call

    plan, _ = compile_canvas(app, [(canvas, Call())])
    steps = [WorkflowStep(i, s.request.task, "default", "waiting" if s.waiting else "queued",
                          0, NOW, None, after_job=s.after_job, after_group=s.after_group,
                          group_id=s.member_of, group_index=s.member_index)
             for i, s in enumerate(plan.steps, start=1)]
    groups = [WorkflowGroup(i, size, 0, 0, None) for i, (_, size) in enumerate(plan.groups, 1)]
    return steps, groups


def test_chain_is_one_branch(app):
    add, mul = app.tasks["add"], app.tasks["mul"]
    assert shape(build_tree(*compiled(app, chain(add.s(1, 1), mul.s(2), mul.s(3))))) == [
        [1, 2, 3]]


def test_chord_is_its_group_then_the_callback(app):
    add, tsum, mul = app.tasks["add"], app.tasks["tsum"], app.tasks["mul"]
    tree = build_tree(*compiled(app, chord([add.s(1, 1), add.s(2, 2), add.s(3, 3)], tsum.s())
                                | mul.s(2)))
    assert shape(tree) == [[("group", 1, [[1], [2], [3]]), 4, 5]]
    (g, _, _), = [tree[0]]
    assert isinstance(g, GroupNode) and g.group.size == 3


def test_group_inside_a_chain_and_chains_inside_a_group(app):
    add, mul, tsum = app.tasks["add"], app.tasks["mul"], app.tasks["tsum"]
    steps, groups = compiled(app, add.s(1, 2) | group(mul.s(2), mul.s(3)) | tsum.s())
    assert shape(build_tree(steps, groups)) == [[1, ("group", 1, [[2], [3]]), 4]]
    # members that are chains: each member's branch runs from its chain's first step
    steps, groups = compiled(app, chord([add.s(1, 1) | mul.s(10), add.s(2, 2) | mul.s(10)],
                                        tsum.s()))
    assert shape(build_tree(steps, groups)) == [[("group", 1, [[1, 2], [3, 4]]), 5]]
    # a member that is a chain after a shared step
    steps, groups = compiled(app, add.s(0, 0) | group(mul.s(2), mul.s(3) | mul.s(4)))
    assert shape(build_tree(steps, groups)) == [[1, ("group", 1, [[2], [3, 4]])]]


def test_a_chord_as_a_member_of_a_group(app):
    add, tsum = app.tasks["add"], app.tasks["tsum"]
    steps, groups = compiled(app, group(chord([add.s(1, 1), add.s(2, 2)], tsum.s()),
                                        add.s(3, 3)))
    assert shape(build_tree(steps, groups)) == [
        [("group", 1, [[("group", 2, [[1], [2]]), 3], [4]])]]


def test_chain_of_chords_and_long_chains_stay_flat(app):
    add, tsum = app.tasks["add"], app.tasks["tsum"]
    stages = [chord([add.s(i, i), add.s(i, 0)], tsum.s()) for i in range(300)]
    tree = build_tree(*compiled(app, chain(*stages)))
    assert len(tree) == 1 and len(tree[0]) == 600  # group, callback, group, callback...
    assert sum(1 for _ in walk(tree)) == 300 * 4
    long = build_tree([step(1)] + [step(i, after_job=i - 1) for i in range(2, 5001)], [])
    assert [n.step.id for n in long[0]] == list(range(1, 5001))


def test_links_fork_and_errbacks_hang_under_their_job(app):
    add, mul, log = app.tasks["add"], app.tasks["mul"], app.tasks["log"]
    linked = add.s(1, 1) | mul.s(2)
    linked.link(log.s())  # after the chain's last step: it follows in the branch
    assert shape(build_tree(*compiled(app, linked))) == [[1, 2, 3]]
    first = add.s(1, 1)
    first.link(log.s())  # after the first step, beside the next one: a fork
    assert shape(build_tree(*compiled(app, first | mul.s(2)))) == [
        [(1, ("forks", [[2], [3]]))]]
    # Job 2 failed: the step after it was cancelled, and its errback (enqueued by the
    # trigger, errback_of = 2) hangs under it.
    rows = [step(1), step(2, after_job=1, state="failed", error_type="ValueError"),
            step(3, after_job=1, task="log"), step(4, errback_of=2, task="log"),
            step(5, after_job=2, state="cancelled")]
    assert shape(build_tree(rows, [])) == [
        [(1, ("forks", [[(2, ("on error", [[4]])), 5], [3]]))]]


def test_group_with_callback_and_link_forks_after_the_group():
    rows = [step(1, group_id=7, group_index=1), step(2, group_id=7, group_index=0),
            step(3, after_group=7), step(4, after_group=7, task="log")]
    tree = build_tree(rows, [WorkflowGroup(7, 2, 2, 0, NOW)])
    # members in group_index order, not id order
    assert shape(tree) == [[("group", 7, [[2], [1]], ("forks", [[3], [4]]))]]


def test_rows_only_sql_could_write_still_draw_every_step_once():
    rows = [
        step(1),
        step(2, after_job=999),  # waits for a job that isn't there (pruned, or never was)
        step(3, after_job=4), step(4, after_job=3),  # a cycle
        step(5, group_id=50, group_index=None), step(6, group_id=50, group_index=None),
        step(7, group_id=50, group_index=0),  # indexes missing or repeated
        step(8, after_group=51),  # a group with no members
        step(9, errback_of=12345),  # an errback of a job that isn't there
        step(10, after_job=10),  # waits for itself
        step(11, after_job=1, after_group=50, errback_of=None),  # both: the job wins
    ]
    tree = build_tree(rows, [])  # and no group rows at all
    seen = [n.step.id for n in walk(tree) if isinstance(n, StepNode)]
    assert sorted(seen) == list(range(1, 12))
    groups = [n for n in walk(tree) if isinstance(n, GroupNode)]
    assert [(g.group.id, g.group.size, g.group.succeeded) for g in groups] == [(50, 3, 3)]
    # roots first, then each step nothing leads to starts a branch, in id order
    assert shape(tree) == [[1, 11], [("group", 50, [[7], [5], [6]])], [2], [3, 4], [8], [9],
                           [10]]
    json.dumps(to_json(tree))


def test_deep_nesting_continues_at_the_top():
    # Each step forks (the next one and a link): nesting grows with the chain.
    rows = [step(1)]
    for i in range(2, 400, 2):
        rows += [step(i, after_job=i - 2 if i > 2 else 1), step(i + 1, after_job=i - 2
                                                                 if i > 2 else 1)]
    tree = build_tree(rows, [])
    assert len(tree) > 1
    assert sorted(n.step.id for n in walk(tree)) == sorted(r.id for r in rows)

    def depth(branches: list, level: int = 0) -> int:
        return max([level] + [depth(n.forks, level + 1) for b in branches for n in b])

    assert depth(tree) <= MAX_NESTING + 1
    json.dumps(to_json(tree))
