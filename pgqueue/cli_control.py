"""Celery's operations commands on pgq: ``inspect``, ``control``, ``purge``, ``call`` and
``result``, answered from Postgres through ``app.control`` (:mod:`pgqueue.celery.control`),
with Celery's output, so scripts written for ``celery -A proj inspect ...`` keep working."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

import click
import psycopg

from pgqueue.cli_context import Ctx, fail
from pgqueue.errors import PgQueueError

EX_UNAVAILABLE = 69  # Celery's exit code when no worker answers an inspect

INSPECT_METHODS = ("active", "scheduled", "reserved", "stats", "registered", "ping",
                   "active_queues", "revoked", "query_task")


def _print_reply(method: str, reply: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(reply, indent=2, default=str))
        return
    for worker, value in reply.items():
        click.echo(f"->  {worker}: OK")
        if isinstance(value, list):
            if not value:
                click.echo("    - empty -")
            for item in value:
                click.echo(f"    * {item}")
        elif method == "ping":
            click.echo(f"        {value.get('ok', value)}")
        else:
            for line in json.dumps(value, indent=4, default=str).splitlines():
                click.echo(f"    {line}")
    n = len(reply)
    click.echo(f"\n{n} node{'s' if n != 1 else ''} online.")


def _celery_app(obj: Ctx) -> Any:
    app = obj.app()
    if not hasattr(app, "control"):  # a pgqueue.celery.Celery app
        raise click.UsageError("inspect and control need a Celery app: pgq -A proj inspect "
                               "active (for a plain App, see pgq workers and pgq jobs list)")
    return app


@click.command("inspect")
@click.argument("method", type=click.Choice(INSPECT_METHODS))
@click.argument("task_ids", nargs=-1)
@click.option("-d", "--destination", metavar="W1,W2", help="Only these workers (by name).")
@click.option("-t", "--timeout", type=float, default=1.0, show_default=True,
              help="Accepted for Celery's sake: the answer is read from Postgres at once.")
@click.option("-j", "--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def inspect(obj: Ctx, method: str, task_ids: tuple[str, ...], destination: str | None,
            timeout: float, as_json: bool) -> None:
    """What the workers are doing, as Celery's inspect shows it (read from Postgres).

    \b
      pgq -A proj inspect active       running jobs, by worker
      pgq -A proj inspect scheduled    jobs waiting for their eta/countdown
      pgq -A proj inspect reserved     due jobs each worker would claim next
      pgq -A proj inspect stats        per worker: jobs done by task, pool, uptime
      pgq -A proj inspect registered   the app's task names
      pgq -A proj inspect query_task ID...   where these tasks are
    Exits with status 69 when no worker is up, as Celery does.
    """
    try:
        app = _celery_app(obj)
        targets = [d.strip() for d in destination.split(",")] if destination else None
        if task_ids and method != "query_task":
            raise click.UsageError(f"inspect {method} takes no task ids")
        reply = getattr(app.control.inspect(destination=targets, timeout=timeout),
                        method)(*task_ids)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    if not reply:
        click.echo("Error: No nodes replied within time constraint", err=True)
        sys.exit(EX_UNAVAILABLE)
    _print_reply(method, reply, as_json)


@click.group("control")
def control() -> None:
    """Celery's remote control: revoke tasks, change a task's rate limit."""


@control.command("revoke")
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--terminate", is_flag=True, help="Also stop it if it is running.")
@click.option("-s", "--signal", "sig", metavar="NAME", help="Accepted; pgqueue stops the job "
              "as its pool allows.")
@click.pass_obj
def control_revoke(obj: Ctx, task_ids: tuple[str, ...], terminate: bool,
                   sig: str | None) -> None:
    """Revoke TASK_IDS (Celery ids or job ids): queued ones never run."""
    try:
        _celery_app(obj).control.revoke(list(task_ids), terminate=terminate, signal=sig)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    click.echo(f"revoked: {', '.join(task_ids)}")


@control.command("rate_limit")
@click.argument("task_name")
@click.argument("rate")
@click.pass_obj
def control_rate_limit(obj: Ctx, task_name: str, rate: str) -> None:
    """Limit TASK_NAME's starts across all workers, e.g. 10/m; 0 lifts the limit."""
    try:
        replies = _celery_app(obj).control.rate_limit(task_name, rate, reply=True) or []
    except (PgQueueError, psycopg.Error, ValueError, TypeError) as exc:
        fail(exc)
    lifted = rate.strip() in ("0", "")
    message = "rate limit disabled successfully" if lifted else "new rate limit set successfully"
    for reply in replies:  # Celery's reply format, one per worker up
        for worker, answer in reply.items():
            click.echo(f"->  {worker}: OK\n        {answer.get('ok', message)}")
    if not replies:
        click.echo(f"{message} (stored in Postgres: workers apply it when they start "
                   "claiming; none is up now)")

@click.command("purge")
@click.option("-f", "--force", is_flag=True, help="Don't ask for confirmation.")
@click.option("-Q", "--queues", metavar="Q1,Q2",
              help="Purge these queues [default: those the app's workers serve].")
@click.option("-X", "--exclude-queues", metavar="Q1,Q2", help="Except these queues.")
@click.pass_obj
def purge(obj: Ctx, force: bool, queues: str | None, exclude_queues: str | None) -> None:
    """Cancel every queued job of the queues, as Celery's purge erases their messages.

    Running jobs, and workflow steps still waiting for an earlier step, are left
    alone. There is no undo (the jobs stay as cancelled rows: pgq jobs retry ID).
    """
    try:
        app = _celery_app(obj)
        names = [q.strip() for q in (queues.split(",") if queues else app.settings.queues)]
        drop = {q.strip() for q in (exclude_queues or "").split(",")}
        names = [q for q in names if q and q not in drop]
        if not names:
            raise click.UsageError("no queue left to purge")
        if not force:
            click.echo(f"WARNING: This will cancel every queued job of: {', '.join(names)}. "
                       "There is no undo for this operation!", err=True)
            click.confirm("Are you sure you want to purge them?", abort=True, err=True)
        n = app.control.purge(names)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    click.echo(f"Purged {n} job{'s' if n != 1 else ''} from {len(names)} known task "
               f"queue{'s' if len(names) != 1 else ''}.")


@click.command("call")
@click.argument("name")
@click.option("-a", "--args", "args_json", default="[]", metavar="JSON",
              help="Positional arguments as a JSON list, e.g. '[2, 2]'.")
@click.option("-k", "--kwargs", "kwargs_json", default="{}", metavar="JSON",
              help="Keyword arguments as a JSON object.")
@click.option("--countdown", type=float, metavar="SECONDS", help="Run no sooner than this.")
@click.option("--eta", metavar="ISO8601", help="Run no sooner than this time (naive: UTC).")
@click.option("--expires", metavar="SECONDS|ISO8601", help="Cancel it if not started by then.")
@click.option("-Q", "--queue", help="The queue [default: as routed].")
@click.pass_obj
def call(obj: Ctx, name: str, args_json: str, kwargs_json: str, countdown: float | None,
         eta: str | None, expires: str | None, queue: str | None) -> None:
    """Send task NAME by name and print its id, as Celery's call does.

    \b
      pgq -A proj call proj.tasks.add --args '[2, 2]'
    """
    try:
        args, kwargs = json.loads(args_json), json.loads(kwargs_json)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise click.BadParameter("--args takes a JSON list and --kwargs a JSON object")
    given: dict[str, Any] = {k: v for k, v in (("countdown", countdown), ("eta", eta),
                                               ("queue", queue)) if v is not None}
    if expires is not None:
        given["expires"] = float(expires) if _is_number(expires) else expires
    try:
        result = _celery_app(obj).send_task(name, args, kwargs, **given)
    except (PgQueueError, psycopg.Error, ValueError, TypeError) as exc:
        fail(exc)
    click.echo(result.id)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@click.command("result")
@click.argument("task_id")
@click.option("--traceback", "show_traceback", is_flag=True, help="Show the traceback instead.")
@click.pass_obj
def result(obj: Ctx, task_id: str, show_traceback: bool) -> None:
    """Print a task's result (or its traceback), as Celery's result command does."""
    try:
        r = _celery_app(obj).AsyncResult(task_id)
        click.echo(r.traceback if show_traceback else r.result)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
