"""``pgq``, the command line: thin, it builds settings from what was typed and calls the API."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import psycopg

from pgqueue import migrate as migrations
from pgqueue.app import App
from pgqueue.errors import PgQueueError
from pgqueue.loader import load_app

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Ctx:
    def __init__(self, dsn: str | None, schema: str | None) -> None:
        self.dsn = dsn
        self.schema = schema

    def app(self, path: str | None = None, **settings: Any) -> App:
        app = load_app(path) if path else App()
        app.configure(dsn=self.dsn, schema=self.schema, **settings)
        return app


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


@click.group(context_settings=CONTEXT)
@click.option("--dsn", envvar="PGQ_DSN", metavar="URL",
              help="Postgres to use, e.g. postgresql://app@db/app [env: PGQ_DSN]. "
                   "Without one, an embedded Postgres is started in ./.pgqueue "
                   "(pip install 'pgqueue[embedded]').")
@click.option("--schema", envvar="PGQ_SCHEMA", metavar="NAME",
              help="Schema holding pgqueue's tables [env: PGQ_SCHEMA; default: pgqueue].")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.version_option(package_name="pgqueue")
@click.pass_context
def main(ctx: click.Context, dsn: str | None, schema: str | None, verbose: bool) -> None:
    """pgqueue: a task queue for Python with PostgreSQL as its only moving part.

    \b
    Get going:
      pgq migrate                          create or upgrade the schema
      pgq worker --app myproj.tasks:app    run jobs
      pgq demo                             see the whole flow in one command
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The embedded server's library narrates every pg_ctl call at INFO.
    logging.getLogger("pgserver").setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = Ctx(dsn, schema)


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
        _fail(exc)


@main.command()
@click.option("-A", "--app", "app_path", envvar="PGQ_APP", required=True, metavar="MODULE:APP",
              help="Where your App is, e.g. myproj.tasks:app [env: PGQ_APP].")
@click.option("-Q", "--queues", metavar="Q1,Q2",
              help="Queues to serve, comma-separated [env: PGQ_QUEUES; default: default].")
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
@click.option("-n", "--name", help="Worker name shown in monitoring [default: host:pid].")
@click.pass_obj
def worker(obj: Ctx, app_path: str, queues: str | None, concurrency: int | None,
           poll_interval: float | None, batch_size: int | None, lease_seconds: float | None,
           heartbeat_interval: float | None, name: str | None) -> None:
    """Run jobs from the given queues until SIGTERM or Ctrl-C.

    \b
    Start as many as you like, on any host that reaches Postgres:
      pgq worker --app myproj.tasks:app --queues default,emails --concurrency 16
    The first SIGTERM/SIGINT stops claiming and lets running jobs finish;
    a second one stops at once and puts unfinished jobs back on the queue.
    """
    from pgqueue.worker.loop import run_worker

    try:
        app = obj.app(app_path, queues=queues, concurrency=concurrency,
                      poll_interval=poll_interval, batch_size=batch_size,
                      lease_seconds=lease_seconds, heartbeat_interval=heartbeat_interval)
        if not app.settings.dsn:
            app.dsn()  # start the embedded server before the worker logs anything
        run_worker(app, app.settings, app_path=app_path, name=name)
    except (PgQueueError, psycopg.Error) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@main.command()
@click.pass_obj
def demo(obj: Ctx) -> None:
    """Show the whole flow: a signup enqueues a welcome e-mail in its transaction,
    a worker sends it, and the result is read back."""
    from pgqueue.demo import run_demo

    try:
        run_demo(obj.app("pgqueue.demo:app"))
    except (PgQueueError, psycopg.Error) as exc:
        _fail(exc)


if __name__ == "__main__":
    main()
