"""``pgq``, the command line: thin, it builds settings from what was typed and calls the API."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

import click
import psycopg

from pgqueue import (
    __version__,
    cli_celery,
    cli_control,
    cli_monitor,
    cli_roles,
    cli_workflows,
    redact,
    schedule_statements,
    statements,
)
from pgqueue import migrate as migrations
from pgqueue.app import App
from pgqueue.cli_context import Ctx, fail
from pgqueue.dashboard.command import dashboard
from pgqueue.errors import PgQueueError
from pgqueue.monitor import Monitor

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.option("-A", "--app", "app_path", envvar="PGQ_APP", metavar="MODULE[:APP]",
              help="Your app, for every command: proj, proj.celery:app, myproj.tasks:app. "
                   "A bare module is searched as Celery does (its app or celery attribute, "
                   "then its celery submodule) [env: PGQ_APP].")
@click.option("--dsn", envvar="PGQ_DSN", metavar="URL",
              help="Postgres to use, e.g. postgresql://app@db/app [env: PGQ_DSN]. "
                   "Without one, the app's broker URL; without that, an embedded Postgres "
                   "is started in ./.pgqueue (the embedded extra).")
@click.option("-b", "--broker", metavar="URL",
              help="Celery's name for --dsn: a postgresql:// URL (nothing else is a broker "
                   "for pgqueue).")
@click.option("--schema", envvar="PGQ_SCHEMA", metavar="NAME",
              help="Schema holding pgqueue's tables [env: PGQ_SCHEMA; default: pgqueue].")
@click.option("--workdir", type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="Change to DIR first (where your project is).")
@click.option("--config", "config_module", metavar="MODULE",
              help="Celery's --config: sets CELERY_CONFIG_MODULE for apps that read it.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
@click.option("--loader", hidden=True, help="Celery's --loader: accepted, not used.")
@click.option("-C", "--no-color", is_flag=True, hidden=True, help="Accepted: output is plain.")
@click.option("--result-backend", hidden=True,
              help="Accepted: results are kept in Postgres with the jobs.")
@click.version_option(version=__version__, package_name="pgqueue-tasks")
@click.pass_context
def main(ctx: click.Context, app_path: str | None, dsn: str | None, broker: str | None,
         schema: str | None, workdir: str | None, config_module: str | None, verbose: bool,
         quiet: bool, loader: str | None, no_color: bool, result_backend: str | None) -> None:
    """pgqueue: a task queue for Python with PostgreSQL as its only moving part.

    \b
    Get going:
      pgq migrate                          create or upgrade the schema
      pgq worker --app myproj.tasks:app    run jobs
      pgq demo                             see the whole flow in one command
      pgq status                           queues, workers and tasks at a glance
    \b
    Coming from Celery (pgqueue.celery), the same commands:
      pgq -A proj worker -l INFO -Q a,b -c 4
      pgq -A proj beat -l INFO
      pgq -A proj inspect active           (also scheduled, reserved, stats, registered)
      pgq -A proj control revoke ID        (also rate_limit TASK 10/m)
      pgq -A proj purge                    cancel every queued job
      pgq -A proj call proj.tasks.add --args '[2, 2]'   then: pgq -A proj result ID
    """
    if workdir:
        os.chdir(workdir)
    if config_module:
        os.environ["CELERY_CONFIG_MODULE"] = config_module
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    redact.install_log_filter()  # no password reaches the log, whoever logs it
    # The embedded server's library narrates every pg_ctl call at INFO.
    logging.getLogger("pgserver").setLevel(logging.DEBUG if verbose else logging.WARNING)
    if broker:
        from pgqueue.celery.urls import broker_dsn

        try:
            dsn = broker_dsn(broker) or dsn
        except PgQueueError as exc:
            raise click.BadParameter(redact.scrub(str(exc), broker),
                                     param_hint="--broker") from None
    ctx.obj = Ctx(dsn, schema, app_path)


@main.command()
@click.option("--status", is_flag=True, help="Show applied and pending migrations; change nothing.")
@click.pass_obj
def migrate(obj: Ctx, status: bool) -> None:
    """Create or upgrade pgqueue's schema (safe to run from many processes at once).

    Migrations are forward-only and recorded with checksums; migrate refuses
    to run if a file that was already applied has changed.
    """
    try:
        app = obj.app()
        schema = app.settings.schema
        if status:
            with psycopg.connect(app.dsn(), autocommit=True) as conn:
                rows = migrations.status(conn, schema)
            for row in rows:
                when = row.applied_at.isoformat(" ", "seconds") if row.applied_at else "pending"
                flag = "  CHANGED since applied!" if row.changed else ""
                click.echo(f"{row.version:04d}_{row.name:<30} {when}{flag}")
            pending = sum(1 for r in rows if r.applied_at is None)
            click.echo(f"schema {schema}: {len(rows) - pending} applied, {pending} pending")
            return
        applied = app.migrate()
        if applied:
            click.echo(f"schema {schema}: applied {', '.join(applied)}")
        else:
            click.echo(f"schema {schema}: up to date")
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)


@main.command(context_settings={"max_content_width": 100})
@click.option("-A", "--app", "app_path", metavar="MODULE[:APP]",
              help="Where your App is, e.g. myproj.tasks:app or proj (or pgq -A before "
                   "the command) [env: PGQ_APP].")
@click.option("-Q", "--queues", metavar="Q1,Q2",
              help="Queues to serve, comma-separated [env: PGQ_QUEUES; default: default; "
                   "for a Celery app, its task_queues or task_default_queue (celery)].")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), metavar="N",
              help="Jobs run at once [env: PGQ_CONCURRENCY; default: 10].")
@click.option("--poll-interval", type=click.FloatRange(min=0.01), metavar="SECONDS",
              help="Fallback poll when no NOTIFY arrives [env: PGQ_POLL_INTERVAL; default: 5].")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
              help="Most jobs claimed per round trip [env: PGQ_BATCH_SIZE; default: 100].")
@click.option("--lease-seconds", type=click.FloatRange(min=1), metavar="SECONDS",
              help="How long a claimed job stays ours without a heartbeat [default: 30].")
@click.option("--heartbeat-interval", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="How often leases are extended [default: 5].")
@click.option("-P", "--pool", type=click.Choice(cli_celery.POOL_NAMES),
              help="threads: plain functions in threads, coroutines on the event loop "
                   "(default); processes: every job in a child process, for CPU-bound "
                   "work; asyncio: coroutines only [env: PGQ_POOL]. Celery's names: "
                   "prefork is processes, solo is one thread, eventlet/gevent run threads.")
@click.option("--max-tasks-per-child", type=click.IntRange(min=1), metavar="N",
              help="With --pool processes: replace a child after N jobs "
                   "[env: PGQ_MAX_TASKS_PER_CHILD].")
@click.option("--shutdown-timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="On SIGTERM, how long running jobs may finish before they are put back "
                   "on the queue [env: PGQ_SHUTDOWN_TIMEOUT; default: 30].")
@click.option("-B", "--beat", is_flag=True, default=None,
              help="Also run the scheduler in this worker (safe in every worker: one leads) "
                   "[env: PGQ_BEAT].")
@click.option("--metrics-port", type=click.IntRange(1, 65535), metavar="PORT",
              help="Serve this worker's Prometheus metrics on 127.0.0.1:PORT "
                   "(PGQ_METRICS_HOST to change the address) [env: PGQ_METRICS_PORT].")
@click.option("--priority-aging", type=click.FloatRange(min=0), metavar="SECONDS",
              help="A waiting job gains one priority level per SECONDS it has been due, so "
                   "none waits forever behind higher priorities; 0 turns it off "
                   "[env: PGQ_PRIORITY_AGING; default: 60].")
@click.option("-n", "--name", "--hostname", "name",
              help="Worker name shown in monitoring and inspect; Celery's %h, %n and %d "
                   "expand to the host name, its first part and its domain "
                   "[default: host:pid].")
@cli_celery.celery_worker_options
@click.pass_obj
def worker(obj: Ctx, /, app_path: str | None, queues: str | None, concurrency: int | None,
           poll_interval: float | None, batch_size: int | None, lease_seconds: float | None,
           heartbeat_interval: float | None, pool: str | None,
           max_tasks_per_child: int | None, shutdown_timeout: float | None,
           beat: bool | None, metrics_port: int | None, priority_aging: float | None,
           name: str | None, **celery: Any) -> None:
    """Run jobs from the given queues until SIGTERM or Ctrl-C.

    \b
    Start as many as you like, on any host that reaches Postgres:
      pgq worker --app myproj.tasks:app --queues default,emails --concurrency 16
    \b
    Dedicate hosts to kinds of work by queue:
      pgq worker --app myproj.tasks:app --queues cpu --pool processes -c 2
      pgq worker --app myproj.tasks:app --queues io,emails --pool threads -c 32
    The first SIGTERM/SIGINT stops claiming and gives running jobs
    --shutdown-timeout seconds, then puts the unfinished ones back on the
    queue; a second signal does that at once.
    \b
    Celery's worker flags are taken too (pgq -A proj worker -l INFO -Q a,b -c 4);
    those with no meaning here print a note saying why.
    """
    from pgqueue.worker.loop import run_worker

    pool, concurrency = cli_celery.pool_choice(pool, concurrency)
    try:
        app = obj.app(_app_path(obj, app_path))
        queues, concurrency = cli_celery.worker_flags(celery, app.settings.queues, queues,
                                                      concurrency)
        app.configure(queues=queues, concurrency=concurrency,
                      poll_interval=poll_interval, batch_size=batch_size,
                      lease_seconds=lease_seconds, heartbeat_interval=heartbeat_interval,
                      pool=pool, max_tasks_per_child=max_tasks_per_child,
                      shutdown_timeout=shutdown_timeout, beat=beat,
                      metrics_port=metrics_port, priority_aging=priority_aging)
        if not app.settings.dsn:
            app.dsn()  # start the embedded server before the worker logs anything
        _require_compatible(app)
        run_worker(app, app.settings, app_path=obj.resolved_path,
                   name=cli_celery.expand_hostname(name))
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("-A", "--app", "app_path", metavar="MODULE[:APP]",
              help="Where your App and its periodic tasks are (or pgq -A before the "
                   "command) [env: PGQ_APP].")
@click.option("--retention-days", type=click.FloatRange(min=0), metavar="DAYS",
              help="Prune finished jobs older than this; 0 keeps them "
                   "[env: PGQ_RETENTION_DAYS; default: 7].")
@click.option("--prune-schedules", is_flag=True,
              help="At start, delete stored schedules this code doesn't declare. Only when "
                   "every scheduler runs the same code: during a rolling deploy an old one "
                   "would delete the new schedules.")
@cli_celery.celery_beat_options
@click.pass_obj
def beat(obj: Ctx, /, app_path: str | None, retention_days: float | None, prune_schedules: bool,
         **celery: Any) -> None:
    """Run the scheduler: enqueue periodic tasks on time, each tick exactly once.

    \b
    Run as many as you like (or `pgq worker --beat` in every worker): one
    leads, chosen with a Postgres advisory lock; if it dies, another takes over
    within about a second. It also prunes old finished jobs. A Celery app's
    beat_schedule (crontab, seconds, timedelta entries) is what it schedules.
    """
    import asyncio

    from pgqueue.scheduler import Scheduler, run_scheduler

    cli_celery.beat_flags(celery)
    try:
        app = obj.app(_app_path(obj, app_path), retention_days=retention_days)
        _require_compatible(app)
        asyncio.run(run_scheduler(Scheduler(app, app.settings,
                                            prune_schedules=prune_schedules)))
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)


def _require_compatible(app: App) -> None:
    """Refuse to start against a schema this code doesn't match (see migrate.py). A
    database not up yet is left to the worker's own reconnecting."""
    with contextlib.suppress(psycopg.OperationalError):
        migrations.require_compatible_dsn(app.dsn(), app.settings.schema)


@main.group()
def schedules() -> None:
    """List and manage periodic tasks at run time."""


@schedules.command("list")
@click.option("-A", "--app", "app_path", envvar="PGQ_APP", metavar="MODULE:APP",
              help="Optional: also sync the schedules your code declares first.")
@click.pass_obj
def schedules_list(obj: Ctx, app_path: str | None) -> None:
    """Show every schedule with its rule, state, and last and next fire times."""
    try:
        app = obj.app(app_path)
        for schedule in app.schedules.values():
            app.client.execute(statements.sync_schedule(app.settings.schema, schedule))
        rows = Monitor(app).schedules()
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    if not rows:
        click.echo("no schedules (they are stored when a scheduler first starts)")
        return
    click.echo("\n".join(cli_monitor.schedule_lines(rows)))


def _schedule_action(obj: Ctx, action: str, name: str) -> Any:
    try:
        app = obj.app()
        result = app.client.execute(statements.schedule_action(app.settings.schema, action,
                                                               name))
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    if result is None:
        raise click.ClickException(f"no schedule named {name!r}; see pgq schedules list")
    return result


@schedules.command("pause")
@click.argument("name")
@click.pass_obj
def schedules_pause(obj: Ctx, name: str) -> None:
    """Stop firing NAME until it is resumed."""
    _schedule_action(obj, "pause", name)
    click.echo(f"schedule {name} paused")


@schedules.command("resume")
@click.argument("name")
@click.pass_obj
def schedules_resume(obj: Ctx, name: str) -> None:
    """Fire NAME again from its next tick (ticks missed while paused are skipped)."""
    _schedule_action(obj, "resume", name)
    click.echo(f"schedule {name} resumed")


@schedules.command("trigger")
@click.argument("name")
@click.pass_obj
def schedules_trigger(obj: Ctx, name: str) -> None:
    """Enqueue NAME's task now, once, outside its ticks."""
    job_id = _schedule_action(obj, "trigger", name)
    click.echo(f"schedule {name} triggered: job {job_id}")


@schedules.command("delete")
@click.argument("name")
@click.pass_obj
def schedules_delete(obj: Ctx, name: str) -> None:
    """Delete NAME's stored schedule (one the code no longer declares; a scheduler
    running code that still declares it writes it back when it starts)."""
    try:
        app = obj.app()
        deleted = app.client.execute(schedule_statements.delete_schedule(
            app.settings.schema, name))
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    if deleted is None:
        raise click.ClickException(f"no schedule named {name!r}; nothing deleted "
                                   "(see pgq schedules list)")
    click.echo(f"schedule {name} deleted")


@main.group()
def jobs() -> None:
    """List and inspect jobs, cancel them, or put failed ones back on the queue."""


@jobs.command("cancel")
@click.argument("job_id", type=int)
@click.pass_obj
def jobs_cancel(obj: Ctx, job_id: int) -> None:
    """Cancel a job: a queued one never runs; a running one is stopped by its worker."""
    try:
        state = obj.app().AsyncResult(job_id).cancel()
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    if state is None:
        raise click.ClickException(f"job {job_id} is not queued or running (already "
                                   "finished, or no such job): nothing to cancel")
    if state == "running":
        click.echo(f"job {job_id} is running: its worker was told to stop it")
    else:
        click.echo(f"job {job_id} cancelled")


@jobs.command("retry")
@click.argument("job_id", type=int, required=False)
@click.option("--failed", "all_failed", is_flag=True,
              help="Retry every failed (or cancelled) job, narrowed by --queue/--task.")
@click.option("--queue", help="With --failed: only jobs of this queue.")
@click.option("--task", help="With --failed: only jobs of this task.")
@click.pass_obj
def jobs_retry(obj: Ctx, job_id: int | None, all_failed: bool, queue: str | None,
               task: str | None) -> None:
    """Put a failed or cancelled job back on its queue, or all of them with --failed.

    \b
      pgq jobs retry 1234
      pgq jobs retry --failed --queue emails --task send_welcome_email
    """
    if (job_id is None) == (not all_failed) or (job_id is not None and (queue or task)):
        raise click.UsageError("give a JOB_ID, or --failed [--queue Q] [--task T]")
    try:
        app = obj.app()
        if job_id is not None:
            if not app.AsyncResult(job_id).retry():
                raise click.ClickException(f"job {job_id} is not failed or cancelled "
                                           "(or does not exist): nothing to retry")
            click.echo(f"job {job_id} is queued again")
            return
        ids = app.retry_failed(queue=queue, task=task)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    click.echo(f"{len(ids)} jobs queued again" + (f": {', '.join(map(str, ids[:50]))}"
                                                  if ids else ""))


@main.command()
@click.pass_obj
def demo(obj: Ctx) -> None:
    """Show the whole flow: a signup enqueues a welcome e-mail in its transaction,
    a worker sends it, and the result is read back."""
    from pgqueue.demo import run_demo

    try:
        run_demo(obj.app("pgqueue.demo:app"))
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)


def _app_path(obj: Ctx, given: str | None) -> str:
    path = given or obj.app_path
    if not path:
        raise click.UsageError("no app: give -A/--app (pgq -A proj worker, or "
                               "pgq worker --app myproj.tasks:app) or set PGQ_APP")
    return path


cli_monitor.register(main, jobs)
main.add_command(cli_control.inspect)
main.add_command(cli_control.control)
main.add_command(cli_control.purge)
main.add_command(cli_control.call)
main.add_command(cli_control.result)
main.add_command(cli_workflows.workflows)
main.add_command(dashboard)
main.add_command(cli_roles.roles)

if __name__ == "__main__":
    main()
