"""Celery's flags on ``pgq worker`` / ``pgq beat``; ``pgq inspect`` and ``pgq control``.

So that ``celery -A proj worker -l INFO -Q a,b -c 4`` keeps working as
``pgq -A proj worker -l INFO -Q a,b -c 4``. Flags that change something here do
it (``-l``, ``-f``, ``-X``, ``-I``, ``--autoscale``, ``--pidfile``, Celery's pool
names); flags about things pgqueue doesn't have (gossip, mingle, events, a
state db, prefetching) are accepted and a note on stderr says why they don't
matter. ``-D/--detach`` is refused: run pgq under a process manager.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

import click
import psycopg

from pgqueue.cli_context import Ctx, fail
from pgqueue.errors import PgQueueError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")
POOL_NAMES = ("threads", "processes", "asyncio", "prefork", "solo", "eventlet", "gevent")
EX_UNAVAILABLE = 69  # Celery's exit code when no worker answers an inspect

# Accepted Celery flags that change nothing here, and why.
_NO_EFFECT = {
    "task_events": "-E/--task-events: pgqueue records every job's progress in Postgres "
                   "already (pgq jobs, the dashboard)",
    "without_gossip": "--without-gossip: workers don't gossip; they coordinate through "
                      "Postgres",
    "without_mingle": "--without-mingle: workers don't mingle; state lives in Postgres",
    "without_heartbeat": "--without-heartbeat: pgqueue's heartbeat is its job lease, always on",
    "optimization": "-O: pgqueue claims only as many jobs as it can run (fair by design)",
    "prefetch_multiplier": "--prefetch-multiplier: pgqueue workers don't prefetch",
    "statedb": "-S/--statedb: revoked ids and results are rows in Postgres",
    "max_memory_per_child": "--max-memory-per-child is not supported; use "
                            "--max-tasks-per-child with --pool processes",
    "uid": "--uid: start pgq as the user you want", "gid": "--gid: start pgq as the group",
    "umask": "--umask: set it in the process manager", "executable": "--executable: unused",
    "time_limit": "--time-limit: set task_time_limit in the config or time_limit= on tasks",
    "soft_time_limit": "--soft-time-limit: set task_soft_time_limit in the config or "
                       "soft_time_limit= on tasks",
    "schedule_filename": "-s/--schedule: beat keeps its state in Postgres, not in a file",
    "scheduler": "--scheduler: schedules come from beat_schedule (and pgq schedules); "
                 "database schedulers such as django_celery_beat's are not read",
    "max_interval": "--max-interval: pgqueue's scheduler wakes for each tick itself",
    "purge": "--purge: not done at start; cancel queued jobs with pgq jobs cancel",
}


def _note(text: str) -> None:
    click.echo(f"note: {text}", err=True)


def loglevel_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-l", "--loglevel", type=click.Choice(LOG_LEVELS, case_sensitive=False),
                        help="Logging level, as Celery's -l [default: INFO; -v: DEBUG].")(f)


def _flag(name: str, *decls: str, help: str) -> Callable[..., Any]:
    return click.option(*decls, name, is_flag=True, default=False, hidden=False, help=help)


def celery_worker_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Celery's ``celery worker`` flags (those ``pgq worker`` lacks)."""
    options = [
        loglevel_option,
        click.option("-f", "--logfile", metavar="FILE", help="Also log to FILE."),
        click.option("--pidfile", metavar="FILE", help="Write the worker's pid to FILE."),
        click.option("-X", "--exclude-queues", metavar="Q1,Q2",
                     help="Serve the default queues except these."),
        click.option("-I", "--include", "include_modules", metavar="MODULES",
                     help="Also import these modules (comma-separated), e.g. their tasks."),
        click.option("--autoscale", metavar="MAX,MIN",
                     help="pgqueue doesn't resize its pool: runs MAX at once (-c)."),
        click.option("-D", "--detach", is_flag=True, default=False,
                     help="Refused: run pgq under systemd, docker or supervisord instead."),
        _flag("task_events", "-E", "--task-events", help="Accepted; no effect (see note)."),
        _flag("without_gossip", "--without-gossip", help="Accepted; no effect."),
        _flag("without_mingle", "--without-mingle", help="Accepted; no effect."),
        _flag("without_heartbeat", "--without-heartbeat", help="Accepted; no effect."),
        _flag("purge", "--purge", "--discard", help="Accepted; no effect (see note)."),
        click.option("-O", "optimization", metavar="default|fair", help="Accepted; no effect."),
        click.option("--prefetch-multiplier", type=int, metavar="N",
                     help="Accepted; no effect."),
        click.option("-S", "--statedb", metavar="FILE", help="Accepted; no effect."),
        click.option("--max-memory-per-child", type=int, metavar="KIB",
                     help="Accepted; no effect (see --max-tasks-per-child)."),
        click.option("--time-limit", type=float, metavar="SECONDS",
                     help="Accepted; set task_time_limit in the config instead."),
        click.option("--soft-time-limit", type=float, metavar="SECONDS",
                     help="Accepted; set task_soft_time_limit in the config instead."),
        click.option("-s", "--schedule-filename", "--schedule", "schedule_filename",
                     metavar="FILE", help="With -B: accepted; beat's state is in Postgres."),
        click.option("--scheduler", metavar="CLASS", help="With -B: accepted; no effect."),
        click.option("--uid", help="Accepted; no effect."),
        click.option("--gid", help="Accepted; no effect."),
        click.option("--umask", help="Accepted; no effect."),
        click.option("--executable", help="Accepted; no effect."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def celery_beat_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Celery's ``celery beat`` flags."""
    options = [
        loglevel_option,
        click.option("-f", "--logfile", metavar="FILE", help="Also log to FILE."),
        click.option("--pidfile", metavar="FILE", help="Write beat's pid to FILE."),
        click.option("-D", "--detach", is_flag=True, default=False,
                     help="Refused: run pgq under a process manager instead."),
        click.option("-s", "--schedule", "schedule_filename", metavar="FILE",
                     help="Accepted; beat's state is in Postgres, not in a file."),
        click.option("-S", "--scheduler", metavar="CLASS",
                     help="Accepted; schedules come from beat_schedule and pgq schedules."),
        click.option("--max-interval", type=float, metavar="SECONDS",
                     help="Accepted; no effect."),
        click.option("--uid", help="Accepted; no effect."),
        click.option("--gid", help="Accepted; no effect."),
        click.option("--umask", help="Accepted; no effect."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def apply_logging(loglevel: str | None, logfile: str | None, pidfile: str | None) -> None:
    if loglevel:
        level = "CRITICAL" if loglevel.upper() == "FATAL" else loglevel.upper()
        logging.getLogger().setLevel(level)
    if logfile:
        handler = logging.FileHandler(logfile)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
    if pidfile:
        with open(pidfile, "w") as fh:
            fh.write(f"{os.getpid()}\n")


def expand_hostname(name: str | None) -> str | None:
    """Celery's ``-n worker1@%h``: %h is the host name, %n its first part, %d the domain."""
    if name is None or "%" not in name:
        return name
    host = socket.getfqdn() or socket.gethostname()
    short, _, domain = host.partition(".")
    return name.replace("%h", host).replace("%n", short).replace("%d", domain)


def pool_choice(pool: str | None, concurrency: int | None) -> tuple[str | None, int | None]:
    """Celery's pool names as pgqueue's: prefork is processes, solo one thread."""
    if pool == "prefork":
        return "processes", concurrency
    if pool == "solo":
        return "threads", 1 if concurrency is None else concurrency
    if pool in ("eventlet", "gevent"):
        _note(f"--pool {pool}: pgqueue has no green threads; running --pool threads "
              "(async def tasks run on an event loop with any pool)")
        return "threads", concurrency
    return pool, concurrency


def worker_flags(celery: Mapping[str, Any], app_queues: tuple[str, ...], queues: str | None,
                 concurrency: int | None) -> tuple[str | None, int | None]:
    """Apply the Celery-only flags: (queues, concurrency) as they now are; notes the rest."""
    if celery.get("detach"):
        raise click.UsageError("-D/--detach is not supported: run pgq worker under systemd, "
                               "docker or supervisord, which restart it too")
    apply_logging(celery.get("loglevel"), celery.get("logfile"), celery.get("pidfile"))
    for key, why in _NO_EFFECT.items():
        if celery.get(key):
            _note(why)
    excluded = celery.get("exclude_queues")
    if excluded:
        drop = {q.strip() for q in excluded.split(",") if q.strip()}
        served = [q.strip() for q in (queues.split(",") if queues else app_queues)]
        remaining = [q for q in served if q and q not in drop]
        if not remaining:
            raise click.UsageError(f"-X {excluded} leaves no queue to serve")
        queues = ",".join(remaining)
    if celery.get("autoscale"):
        top = str(celery["autoscale"]).split(",")[0].strip()
        if not top.isdigit() or int(top) < 1:
            raise click.UsageError("--autoscale takes MAX,MIN, e.g. --autoscale 10,3")
        _note(f"--autoscale: pgqueue's pool doesn't grow and shrink; running {top} at once")
        concurrency = concurrency or int(top)
    for module in (celery.get("include_modules") or "").split(","):
        if module.strip():
            __import__(module.strip())
    return queues, concurrency


def beat_flags(celery: Mapping[str, Any]) -> None:
    if celery.get("detach"):
        raise click.UsageError("-D/--detach is not supported: run pgq beat under a process "
                               "manager")
    apply_logging(celery.get("loglevel"), celery.get("logfile"), celery.get("pidfile"))
    for key in ("schedule_filename", "scheduler", "max_interval"):
        if celery.get(key):
            _note(_NO_EFFECT[key])


# -- pgq inspect ----------------------------------------------------------------------
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
