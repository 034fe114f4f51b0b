"""A workflow's steps drawn as a tree, for ``pgq workflows show`` and the dashboard. Pure.

:func:`build_tree` takes the rows ``workflow_steps`` and ``workflow_groups`` read
and gives branches of :class:`~pgqueue.monitor_rows.StepNode` and
:class:`~pgqueue.monitor_rows.GroupNode`:

- a branch is what runs one after the other: a step, then the one step waiting
  for it, and so on (a chain of 500 steps is one branch, not 500 levels);
- a step that several steps wait for (``after_job``: the next step and its
  links) forks into one branch per waiting step;
- a group holds one branch per member, in ``group_index`` order; the steps
  waiting for the group (``after_group``: a chord's callback) follow it;
- a member that is a chain is the branch from its first step: the group is
  drawn where its members' first steps start (after the step they all wait
  for, or at the top);
- errbacks (``errback_of``) hang under the job they were enqueued for.

Rows are whatever the tables hold, so none is trusted to be well formed: every
step is drawn exactly once, a step whose parent is missing or that sits in a
cycle starts a branch of its own at the end, and nesting deeper than
:data:`MAX_NESTING` continues in a new top-level branch, so that whatever
renders the tree (JSON, templates) never recurses without bound.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Literal

from pgqueue.monitor_rows import (
    Branch,
    GroupNode,
    StepNode,
    WorkflowGroup,
    WorkflowNode,
    WorkflowStep,
)

MAX_NESTING = 40

# A job or a group, by id.
Thing = tuple[Literal["job", "group"], int]


def build_tree(steps: Sequence[WorkflowStep], groups: Sequence[WorkflowGroup]) -> list[Branch]:
    return _Builder(steps, groups).build()


def walk(branches: Sequence[Branch]) -> Iterator[WorkflowNode]:
    """Every node of a tree, depth first (iteratively: for templates and tests)."""
    stack: list[WorkflowNode] = [n for b in reversed(branches) for n in reversed(b)]
    while stack:
        node = stack.pop()
        yield node
        nested = ([*node.forks, *node.errbacks] if isinstance(node, StepNode)
                  else [*node.members, *node.forks])
        stack.extend(n for b in reversed(nested) for n in reversed(b))


class _Builder:
    def __init__(self, steps: Sequence[WorkflowStep], groups: Sequence[WorkflowGroup]) -> None:
        self.steps = {s.id: s for s in sorted(steps, key=lambda s: s.id)}
        self.groups = {g.id: g for g in groups}
        # What each step waits for decides where it hangs: one place per step.
        self.after_job: dict[int, list[int]] = defaultdict(list)
        self.after_group: dict[int, list[int]] = defaultdict(list)
        self.errbacks: dict[int, list[int]] = defaultdict(list)
        members: dict[int, list[WorkflowStep]] = defaultdict(list)
        for s in self.steps.values():
            if s.errback_of is not None:
                self.errbacks[s.errback_of].append(s.id)
            elif s.after_job is not None:
                self.after_job[s.after_job].append(s.id)
            elif s.after_group is not None:
                self.after_group[s.after_group].append(s.id)
            if s.group_id is not None:
                members[s.group_id].append(s)
        self.members = {
            g: [s.id for s in sorted(ms, key=lambda s: (s.group_index is None,
                                                        s.group_index or 0, s.id))]
            for g, ms in members.items()}
        self.layouts: dict[int, tuple[Thing | None, list[Thing]]] = {}
        self.laying_out: set[int] = set()
        self.entry_of: dict[Thing, int] = {}
        # In id order: along a chain of chords each group's layout needs the one
        # before it, already known then (recursion only as deep as groups nest).
        for g in sorted(self.members):
            for entry in self.layout(g)[1]:
                self.entry_of.setdefault(entry, g)
        self.placed: set[Thing] = set()
        self.deferred: list[Thing] = []

    # -- where groups go -----------------------------------------------------
    def parent(self, thing: Thing) -> Thing | None:
        kind, key = thing
        if kind == "group":
            return self.layout(key)[0]
        s = self.steps[key]
        if s.errback_of is not None:
            return None
        if s.after_job is not None:
            return ("job", s.after_job) if s.after_job in self.steps else None
        if s.after_group is not None and s.after_group in self.members:
            return ("group", s.after_group)
        return None

    def climb(self, thing: Thing, until: dict[Thing, int] | None = None
              ) -> tuple[list[Thing], int | None]:
        """``thing``, what it waits for, what that waits for... up to the first one in
        ``until`` (excluded; its place there is returned), the top, or a cycle."""
        chain: list[Thing] = []
        seen: set[Thing] = set()
        current: Thing | None = thing
        while current is not None and current not in seen:
            if until is not None and current in until:
                return chain, until[current]
            seen.add(current)
            chain.append(current)
            current = self.parent(current)
        return chain, None

    def layout(self, group: int) -> tuple[Thing | None, list[Thing]]:
        """What the group's members all wait for, and where each member's branch starts
        (its first step after that): the member itself, unless it ends a chain."""
        if group in self.layouts:
            return self.layouts[group]
        if group in self.laying_out:  # a cycle through groups (only SQL can write one)
            return None, []
        self.laying_out.add(group)
        members: list[Thing] = [("job", m) for m in self.members[group]]
        parents = {self.parent(m) for m in members}
        if len(members) > 1 and len(parents) == 1:  # the usual case: each member is a step
            self.laying_out.discard(group)
            self.layouts[group] = (parents.pop(), members)
            return self.layouts[group]
        # The first member's line up, then where each other member's line joins it
        # (each thing waits for one other at most): linear in the lines' lengths.
        first, _ = self.climb(members[0])
        places = {t: i for i, t in enumerate(first)}
        joins = [self.climb(m, places) for m in members[1:]]
        common: Thing | None
        if not joins:  # one member: the group starts at it
            common, entries = (first[1] if len(first) > 1 else None), [members[0]]
        elif any(at is None for _, at in joins):  # no shared step: each from its top
            common = None
            entries = [first[-1], *(own[-1] if at is None else first[-1]
                                    for own, at in joins)]
        else:
            top = max(at for _, at in joins if at is not None)
            common = first[top]
            before = first[top - 1] if top > 0 else first[0]
            entries = [before, *(own[-1] if at == top and own else
                                 m if at == top else before
                                 for m, (own, at) in zip(members[1:], joins, strict=True))]
        self.laying_out.discard(group)
        self.layouts[group] = (common, list(dict.fromkeys(entries)))
        return self.layouts[group]

    def lift(self, thing: Thing) -> Thing:
        """The group to draw where ``thing`` would go, if its branch starts one."""
        seen = {thing}
        while thing in self.entry_of:
            group: Thing = ("group", self.entry_of[thing])
            if group in self.placed or group in seen:
                break
            seen.add(group)
            thing = group
        return thing

    # -- drawing ----------------------------------------------------------------
    def build(self) -> list[Branch]:
        tree: list[Branch] = []
        roots: list[Thing] = [("job", s.id) for s in self.steps.values()
                              if s.after_job is None and s.after_group is None
                              and s.errback_of is None]
        leftovers: list[Thing] = [("job", key) for key in self.steps]
        for start in itertools.chain(roots, self._later(leftovers)):
            thing = self.lift(start)
            if thing not in self.placed:
                tree.append(self.branch(thing, 0))
        return tree

    def _later(self, leftovers: list[Thing]) -> Iterator[Thing]:
        # Nesting cut at MAX_NESTING, then steps nothing led to (orphans, cycles).
        while self.deferred:
            yield self.deferred.pop(0)
        for thing in leftovers:
            while self.deferred:
                yield self.deferred.pop(0)
            yield thing

    def branch(self, thing: Thing, depth: int) -> Branch:
        out: Branch = []
        current: Thing | None = thing
        while current is not None and current not in self.placed:
            node = self.node(current, depth)
            out.append(node)
            after = self.waiting_for(current)
            current = None
            if len(after) == 1:
                current = after[0]
            elif after:
                node.forks.extend(self.nested_all(after, depth))
        return out

    def nested(self, thing: Thing, depth: int) -> Branch:
        if depth + 1 > MAX_NESTING:
            self.deferred.append(thing)
            return []
        return self.branch(thing, depth + 1)

    def node(self, thing: Thing, depth: int) -> WorkflowNode:
        self.placed.add(thing)
        kind, key = thing
        if kind == "job":
            step = StepNode(self.steps[key])
            step.errbacks.extend(self.nested_all(
                [("job", e) for e in self.errbacks.get(key, ())], depth))
            return step
        group = GroupNode(self.groups.get(key) or self._counted(key))
        group.members.extend(self.nested_all(self.layout(key)[1], depth))
        return group

    def nested_all(self, things: list[Thing], depth: int) -> Iterator[Branch]:
        # Lazily: a branch drawn may already hold the next thing (rows written by SQL).
        for thing in things:
            if thing not in self.placed:
                branch = self.nested(thing, depth)
                if branch:
                    yield branch

    def waiting_for(self, thing: Thing) -> list[Thing]:
        kind, key = thing
        ids = self.after_job.get(key, []) if kind == "job" else self.after_group.get(key, [])
        out: list[Thing] = []
        for step in ids:
            lifted = self.lift(("job", step))
            if lifted not in self.placed and lifted not in out:
                out.append(lifted)
        return out

    def _counted(self, group: int) -> WorkflowGroup:
        """A group whose row is missing, counted from its members' states."""
        states = [self.steps[m].state for m in self.members.get(group, [])]
        return WorkflowGroup(group, len(states), states.count("succeeded"),
                             sum(s in ("failed", "cancelled") for s in states), None)
