"""Celery's flags on ``pgq worker`` and ``pgq beat`` (its commands: :mod:`pgqueue.cli_control`).

So that ``celery -A proj worker -l INFO -Q a,b -c 4`` keeps working as
``pgq -A proj worker -l INFO -Q a,b -c 4``. Flags that change something here do
it (``-l``, ``-f``, ``-X``, ``-I``, ``--autoscale``, ``--pidfile``, Celery's pool
names); flags about things pgqueue doesn't have (gossip, mingle, events, a
state db, prefetching) are accepted and a note on stderr says why they don't
matter. ``-D/--detach`` is refused: run pgq under a process manager.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

import click

from pgqueue.redact import RedactingFilter

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")
POOL_NAMES = ("threads", "processes", "asyncio", "prefork", "solo", "eventlet", "gevent")

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


# Celery's daemon flags, which a process manager does better: accepted, so its
# command lines keep working.
_PROCESS_OPTIONS = [click.option("--uid", help="Accepted; no effect."),
                    click.option("--gid", help="Accepted; no effect."),
                    click.option("--umask", help="Accepted; no effect.")]


def _decorated(f: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    """``f`` with these click options, listed in --help in this order."""
    for option in reversed(options):
        f = option(f)
    return f


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
        *_PROCESS_OPTIONS,
        click.option("--executable", help="Accepted; no effect."),
    ]
    return _decorated(f, options)


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
        *_PROCESS_OPTIONS,
    ]
    return _decorated(f, options)


def apply_logging(loglevel: str | None, logfile: str | None, pidfile: str | None) -> None:
    if loglevel:
        level = "CRITICAL" if loglevel.upper() == "FATAL" else loglevel.upper()
        logging.getLogger().setLevel(level)
    if logfile:
        handler = logging.FileHandler(logfile)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        handler.addFilter(RedactingFilter())
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
