"""``pgq status``, ``pgq workers``, ``pgq queues`` and ``pgq jobs list|show``: readable
tables for people, ``--json`` for scripts. All of it comes from :class:`Monitor`, and so
do the few actions (``pgq queues pause|resume|limit``)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import click
import psycopg

from pgqueue.cli_context import Ctx, fail
from pgqueue.errors import PgQueueError
from pgqueue.limits import KEEP, Keep, concurrency_from_text, rate_from_text
from pgqueue.monitor import (
    Monitor,
    QueueStats,
    RawValue,
    ScheduleRow,
    TaskLimit,
    XminHorizon,
    to_json,
)
from pgqueue.options import check_queue
from pgqueue.spans import parse_span


def parse_window(text: str) -> dt.timedelta:
    """``--window`` read by the dashboard's rule (:func:`pgqueue.spans.parse_span`)."""
    try:
        return parse_span(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dt.datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def _emit(data: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(to_json(data), indent=2) if as_json else text)


def _monitor(obj: Ctx, app_path: str | None = None) -> Monitor:
    return Monitor(obj.app(app_path))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
window_option = click.option("--window", default="1h", show_default=True, metavar="5m|1h|7d",
                             help="Period for finished-job counts and run times.")


@click.command()
@window_option
@json_option
@click.pass_obj
def status(obj: Ctx, window: str, as_json: bool) -> None:
    """Queues, workers and tasks at a glance: depth, throughput, failures, run times."""
    try:
        overview = _monitor(obj).overview(parse_window(window))
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    if as_json:
        _emit(overview, True, "")
        return
    queues = table(["queue", "queued", "scheduled", "running", "succeeded", "failed",
                    "per min", "oldest waiting", "paused"],
                   [(q.queue, q.queued, q.scheduled, q.running, q.succeeded, q.failed,
                     q.throughput_per_min, _age(q.oldest_waiting_seconds), q.paused)
                    for q in overview["queues"]]) if overview["queues"] else "no queues yet"
    workers = table(["worker", "status", "queues", "pool", "running", "done", "uptime",
                     "heartbeat"],
                    [(w.name, w.status, w.queues, f"{w.pool}x{w.concurrency}", w.running,
                      w.jobs_done, _age(w.uptime_seconds), _age(w.heartbeat_age_seconds))
                     for w in overview["workers"]]) if overview["workers"] else "no workers"
    tasks = table(["task", "succeeded", "failed", "retried", "mean ms", "p95 ms"],
                  [(t.task, t.succeeded, t.failed, t.retried, t.mean_runtime_ms,
                    t.p95_runtime_ms) for t in overview["tasks"]]
                  ) if overview["tasks"] else f"no finished jobs in the last {window}"
    click.echo(f"QUEUES (finished counts: last {window})\n{queues}\n\n"
               f"WORKERS\n{workers}\n\nTASKS (last {window})\n{tasks}\n\n"
               f"{xmin_text(overview['xmin_horizon'])}")


def xmin_text(horizon: XminHorizon) -> str:
    """The oldest holders of the xmin horizon, under a warning when one is too old."""
    if not horizon.holders:
        return "XMIN HORIZON\nno transaction open longer than a second"
    rows = table(["holder", "pid", "name", "user", "state", "client", "open for", "xids behind"],
                 [(h.kind, h.pid, h.name, h.user, h.state, h.client_addr, _age(h.seconds),
                   h.xids) for h in horizon.holders])
    text = f"XMIN HORIZON (oldest first)\n{rows}"
    if horizon.warning:
        oldest = horizon.holders[0]
        held = (_age(oldest.seconds) if oldest.seconds is not None
                else f"{oldest.xids} transactions")
        text = (f"WARNING: {oldest.kind} {oldest.name!r}"
                f"{f' (pid {oldest.pid})' if oldest.pid else ''} has held the xmin horizon "
                f"for {held}"
                f" (warning after {_age(horizon.warn_after_seconds)}, PGQ_XMIN_WARN): vacuum "
                "can't remove dead job rows meanwhile, so every claim slows down. End it "
                "(pg_terminate_backend, COMMIT PREPARED/ROLLBACK PREPARED, or drop the slot)."
                f"\n{text}")
    return text


@click.command()
@json_option
@click.pass_obj
def workers(obj: Ctx, as_json: bool) -> None:
    """Workers that are up, down (no heartbeat for longer than their lease) or stopped in
    the last hour."""
    try:
        rows = _monitor(obj).workers()
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    _emit(rows, as_json, table(
        ["id", "name", "status", "host", "pid", "queues", "pool", "concurrency", "running",
         "done", "started", "heartbeat"],
        [(w.id, w.name, w.status, w.host, w.pid, w.queues, w.pool, w.concurrency, w.running,
          w.jobs_done, w.started_at, _age(w.heartbeat_age_seconds)) for w in rows])
        if rows else "no workers")


@click.group()
def queues() -> None:
    """List queues, pause or resume them (a paused queue's jobs wait), and limit them."""


@queues.command("list")
@window_option
@json_option
@click.pass_obj
def queues_list(obj: Ctx, window: str, as_json: bool) -> None:
    """Every queue with its depth by state, oldest waiting job, paused flag and limits,
    and the tasks' limits. HELD BACK: due jobs under a limit, waiting for room."""
    try:
        monitor = _monitor(obj)
        rows = monitor.queues(parse_window(window))
        task_limits = monitor.task_limits()
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    # --json keeps its shape (a list of queues, each with its limits); the tasks'
    # limits are `pgq queues task-limits --json`.
    _emit(rows, as_json, queue_table(rows, task_limits))


@queues.command("task-limits")
@json_option
@click.pass_obj
def queues_task_limits(obj: Ctx, as_json: bool) -> None:
    """Every task's rate and concurrency limit (as its workers' code declares them),
    with how many of its due jobs are held back and how many run."""
    try:
        task_limits = _monitor(obj).task_limits()
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    _emit(task_limits, as_json, table(
        ["task", "rate", "concurrency", "held back", "running"],
        [(t.task, t.rate_limit, t.concurrency_limit, t.held_back, t.running)
         for t in task_limits]) if task_limits else "no task limits")


def queue_table(rows: Sequence[QueueStats], task_limits: Sequence[TaskLimit]) -> str:
    if not rows:
        text = "no queues"
    else:
        text = table(
            ["queue", "queued", "scheduled", "running", "succeeded", "failed", "cancelled",
             "oldest waiting", "paused", "rate", "concurrency", "held back"],
            [(q.queue, q.queued, q.scheduled, q.running, q.succeeded, q.failed, q.cancelled,
              _age(q.oldest_waiting_seconds), q.paused, q.rate_limit, q.concurrency_limit,
              q.held_back) for q in rows])
    if task_limits:
        text += "\n\nTASK LIMITS\n" + table(
            ["task", "rate", "concurrency", "held back", "running"],
            [(t.task, t.rate_limit, t.concurrency_limit, t.held_back, t.running)
             for t in task_limits])
    return text


def _queue_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_queue(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _rate(ctx: click.Context, param: click.Parameter, value: str | None) -> str | Keep | None:
    try:
        return KEEP if value is None else rate_from_text(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _concurrency(ctx: click.Context, param: click.Parameter,
                 value: str | None) -> int | Keep | None:
    try:
        return KEEP if value is None else concurrency_from_text(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@queues.command("limit")
@click.argument("name", callback=_queue_name)
@click.option("--rate", metavar="N/s|N/m|N/h", callback=_rate,
              help="At most N starts in any second, minute or hour (5/10s: in any 10 s), "
                   "all workers together; none removes the rate limit.")
@click.option("--concurrency", metavar="N", callback=_concurrency,
              help="At most N of its jobs running at once, all workers together; none "
                   "removes the concurrency limit.")
@click.option("--clear", is_flag=True, help="Remove both limits.")
@click.pass_obj
def queues_limit(obj: Ctx, name: str, rate: str | Keep | None,
                 concurrency: int | Keep | None, clear: bool) -> None:
    """Limit how fast and how many of NAME's jobs start, across every worker.

    Sets what is given and keeps the other limit as it is. Jobs held back stay queued
    and keep their place and attempts; running jobs are never stopped."""
    if clear and (rate is not KEEP or concurrency is not KEEP):
        raise click.UsageError("--clear removes both limits: give it alone, or remove one "
                               "with --rate none or --concurrency none")
    if not clear and rate is KEEP and concurrency is KEEP:
        raise click.UsageError("give --rate, --concurrency or both (or --clear), e.g. "
                               f"pgq queues limit {name} --rate 600/m --concurrency 20")
    if clear:
        rate = concurrency = None
    try:
        now = _monitor(obj).set_queue_limits(name, rate=rate, concurrency=concurrency)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    click.echo(f"queue {name}: {now.describe()}; workers apply it within a heartbeat")


@queues.command("pause")
@click.argument("name")
@click.pass_obj
def queues_pause(obj: Ctx, name: str) -> None:
    """Stop workers from claiming NAME's jobs (running ones finish)."""
    try:
        _monitor(obj).pause_queue(name)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    click.echo(f"queue {name} paused: its jobs wait until `pgq queues resume {name}`")


@queues.command("resume")
@click.argument("name")
@click.pass_obj
def queues_resume(obj: Ctx, name: str) -> None:
    """Let workers claim NAME's jobs again (idle workers are woken at once)."""
    try:
        _monitor(obj).resume_queue(name)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    click.echo(f"queue {name} resumed")


@click.command("list")
@click.option("--state", type=click.Choice(["waiting", "queued", "running", "succeeded",
                                            "failed", "cancelled"]),
              help="waiting: workflow steps whose predecessor hasn't succeeded yet.")
@click.option("--queue")
@click.option("--task")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--before", "before_id", type=int, metavar="ID",
              help="Older than this id: the next page (its id is printed at the end).")
@json_option
@click.pass_obj
def jobs_list(obj: Ctx, state: str | None, queue: str | None, task: str | None, limit: int,
              before_id: int | None, as_json: bool) -> None:
    """Jobs, newest first, filtered by state, queue and task."""
    try:
        page = _monitor(obj).jobs(state=state, queue=queue, task=task, limit=limit,
                                  before_id=before_id)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    text = table(["id", "task", "queue", "state", "attempts", "created", "finished", "worker"],
                 [(j.id, j.task, j.queue, j.state, j.attempts, j.created_at, j.finished_at,
                   j.worker) for j in page.jobs]) if page.jobs else "no jobs match"
    if page.next_before_id:
        text += f"\n(more: pgq jobs list --before {page.next_before_id} ...)"
    _emit(page, as_json, text)


@click.command("show")
@click.argument("job_id", type=int)
@json_option
@click.pass_obj
def jobs_show(obj: Ctx, job_id: int, as_json: bool) -> None:
    """One job: arguments, result, timings, worker and every attempt's error."""
    try:
        job = _monitor(obj).job(job_id)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    if job is None:
        raise click.ClickException(f"no job with id {job_id} (never created, or pruned)")
    if as_json:
        _emit(job, True, "")
        return
    lines = [
        f"job {job.id}: {job.task} on queue {job.queue}: {job.state.upper()}",
        f"  args      {_stored(job.args)}",
        f"  kwargs    {_stored(job.kwargs)}",
        f"  result    {_stored(job.result)}",
        f"  attempts  {job.attempts} of {job.max_attempts or 'worker policy'}"
        + (f", rescued {job.rescues}x" if job.rescues else ""),
        f"  created   {_cell(job.created_at)}   run at {_cell(job.run_at)}",
        f"  started   {_cell(job.started_at)}   finished {_cell(job.finished_at)}",
        f"  worker    {job.worker or '-'}" + (f" ({job.worker_host} pid {job.worker_pid})"
                                              if job.worker_host else ""),
    ]
    for a in job.attempts_history:
        lines += [f"\nattempt {a.attempt} failed at {_cell(a.created_at)}: {a.type}: "
                  f"{a.message}", a.traceback.rstrip()]
    click.echo("\n".join(lines))


def _stored(value: Any) -> str:
    """An argument or result as JSON; one that can't be decoded as it is stored."""
    if isinstance(value, RawValue):
        cut = " ..." if value.truncated else ""
        return f"{value.raw}{cut}\n            (shown as stored: this value {value.error})"
    return json.dumps(to_json(value))


def schedule_lines(rows: Sequence[ScheduleRow]) -> list[str]:
    """``pgq schedules list``: one line per schedule, and one more saying why a bad one
    doesn't fire."""
    lines = [f"{'NAME':<24} {'TASK':<24} {'RULE':<22} {'STATE':<7} {'LAST FIRE':<26} "
             "NEXT FIRE"]
    for s in rows:
        text = s.rule if s.rule.startswith("every ") else f"{s.rule} {s.tz}"
        state = "paused" if s.paused else "invalid" if s.error else "active"
        upcoming = (s.next_fire_at.isoformat(" ", "seconds") if s.next_fire_at
                    else "invalid" if s.error else "-")
        last = s.last_fire_at.isoformat(" ", "seconds") if s.last_fire_at else "-"
        lines.append(f"{s.name:<24} {s.task:<24} {text:<22} {state:<7} {last:<26} "
                     f"{'-' if s.paused else upcoming}")
        if s.error:  # on a line of its own: a long message would break the table
            since = f" since {_cell(s.error_at)}" if s.error_at else ""
            lines.append(f"  ! skipped{since}: {s.error}")
    return lines


def register(main: click.Group, jobs: click.Group) -> None:
    for command in (status, workers, queues):
        main.add_command(command)
    jobs.add_command(jobs_list)
    jobs.add_command(jobs_show)
