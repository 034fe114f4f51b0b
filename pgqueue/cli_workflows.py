"""``pgq workflows list|show``: chains, groups and chords as people read them (a tree of
steps) and as scripts do (``--json``). All of it comes from :class:`Monitor`."""

from __future__ import annotations

from collections.abc import Sequence

import click
import psycopg

from pgqueue.cli_context import Ctx, fail
from pgqueue.cli_monitor import _cell, _emit, json_option, table
from pgqueue.errors import PgQueueError
from pgqueue.monitor import Monitor, WorkflowDetail, WorkflowSummary
from pgqueue.monitor_rows import Branch, GroupNode, StepNode, WorkflowGroup, WorkflowStep

# How much of an error message a line shows (its first line, cut).
MESSAGE_CHARS = 160


@click.group()
def workflows() -> None:
    """List workflows (chains, groups, chords), or show one as a tree of its steps."""


@workflows.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True,
              help="How many to list, newest first.")
@json_option
@click.pass_obj
def workflows_list(obj: Ctx, limit: int, as_json: bool) -> None:
    """The newest workflows, with their jobs counted by state (the workflow_status view)."""
    try:
        rows = Monitor(obj.app()).workflows(limit)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    _emit(rows, as_json, table(
        ["id", "kind", "created", "jobs", "waiting", "queued", "running", "succeeded",
         "failed", "cancelled", "finished"],
        [(w.id, w.kind, w.created_at, w.jobs, w.waiting, w.queued, w.running, w.succeeded,
          w.failed, w.cancelled, w.finished_at if w.finished else "no") for w in rows])
        if rows else "no workflows (yet, or all pruned)")


@workflows.command("show")
@click.argument("id_", metavar="ID", type=int)
@click.option("--job", "by_job", is_flag=True,
              help="ID is a job's id: show the workflow it belongs to (its line is marked).")
@json_option
@click.pass_obj
def workflows_show(obj: Ctx, id_: int, by_job: bool, as_json: bool) -> None:
    """Show workflow ID as a tree of its steps, each with its state.

    \b
    Each line is a job: its id, task and state, and for a failed or cancelled one
    its error (a step cancelled because an earlier one failed names that job).
    Lines one under another run one after the other; lines that branch off with
    ├─ and └─ run side by side: the members of a group, or the steps that wait
    for the same job (a link next to the chain's next step). A group's line
    counts its members; what follows it waited for all of them (a chord's
    callback). Errbacks (link_error) hang under the job that failed.
    \b
      pgq workflows show 12
      pgq workflows show --job 81234     the workflow of job 81234
    \b
      workflow 12 (chord), created 2026-05-01 13:00:03: 4 jobs, 2 succeeded, ...
      group 4: 2/3 succeeded, 1 failed
      ├─ 31  add  succeeded
      ├─ 32  div  failed  ZeroDivisionError: division by zero
      └─ 33  add  succeeded
      34  tsum  cancelled  ChordError: member 2 of group 4 (job 32, div) failed: ...
    """
    try:
        monitor = Monitor(obj.app())
        workflow_id = monitor.workflow_id_of_job(id_) if by_job else id_
        if workflow_id is None:
            raise click.ClickException(
                f"job {id_} is not part of a workflow" if monitor.job(id_) is not None
                else f"no job with id {id_} (never created, or pruned)")
        detail = monitor.workflow(workflow_id)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    if detail is None:
        raise click.ClickException(
            f"no workflow with id {workflow_id} (never created, or pruned); "
            "see pgq workflows list" + (f" (job {id_} names it)" if by_job else ""))
    _emit(detail, as_json, "" if as_json else "\n".join(
        tree_lines(detail, mark=id_ if by_job else None)))


def tree_lines(detail: WorkflowDetail, mark: int | None = None) -> list[str]:
    """The workflow's summary line, then its tree; ``mark``: the job to point at."""
    lines = [summary_line(detail.workflow)]
    for i, branch in enumerate(detail.tree or []):
        if i:  # only rows written by SQL leave steps outside the first branch
            lines.append("")
        lines += _branch(branch, "", "", mark, top=True)
    return lines


def summary_line(w: WorkflowSummary) -> str:
    counts = [f"{n} {state}" for n, state in (
        (w.waiting, "waiting"), (w.queued, "queued"), (w.running, "running"),
        (w.succeeded, "succeeded"), (w.failed, "failed"), (w.cancelled, "cancelled")) if n]
    end = f"finished {_cell(w.finished_at)}" if w.finished else "not finished"
    return (f"workflow {w.id} ({w.kind}), created {_cell(w.created_at)}: "
            f"{', '.join([f'{w.jobs} jobs', *counts])}; {end}")


def group_text(g: WorkflowGroup) -> str:
    return f"group {g.id}: {g.succeeded}/{g.size} succeeded" + (
        f", {g.failed} failed" if g.failed else "")


def step_text(s: WorkflowStep) -> str:
    text = f"{s.id}  {s.task}  {s.state}"
    if s.state in ("failed", "cancelled") and s.error_type:
        message = (s.error_message or "").strip().splitlines()
        first = message[0] if message else ""
        if len(first) > MESSAGE_CHARS or len(message) > 1:
            first = first[:MESSAGE_CHARS] + " ..."
        text += f"  {s.error_type}: {first}" if first else f"  {s.error_type}"
        if s.error_from_job is not None and s.error_from_job != s.id:
            text += f" (from job {s.error_from_job})"
    return text


def _waits_for(s: WorkflowStep) -> str:
    """For a step that starts a branch of its own: what it waits for (a missing job)."""
    if s.errback_of is not None:
        return f"  (errback of job {s.errback_of})"
    if s.after_job is not None:
        return f"  (after job {s.after_job})"
    if s.after_group is not None:
        return f"  (after group {s.after_group})"
    return ""


def _branch(branch: Branch, first: str, pad: str, mark: int | None,
            top: bool = False) -> list[str]:
    lines: list[str] = []
    for i, node in enumerate(branch):
        prefix = first if i == 0 else pad
        if isinstance(node, StepNode):
            text = step_text(node.step) + (_waits_for(node.step) if top and i == 0 else "")
            if node.step.id == mark:
                text += "   <- this job"
            nested = [("", b) for b in node.forks] + [("on error: ", b) for b in node.errbacks]
        else:
            assert isinstance(node, GroupNode)
            text = group_text(node.group)
            nested = [("", b) for b in node.members] + [("then: ", b) for b in node.forks]
        lines.append(prefix + text)
        lines += _nested(nested, pad, mark)
    return lines


def _nested(nested: Sequence[tuple[str, Branch]], pad: str, mark: int | None) -> list[str]:
    lines: list[str] = []
    for k, (label, branch) in enumerate(nested):
        last = k == len(nested) - 1
        lines += _branch(branch, pad + ("└─ " if last else "├─ ") + label,
                         pad + ("   " if last else "│  "), mark)
    return lines
