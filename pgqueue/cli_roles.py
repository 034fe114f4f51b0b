"""``pgq roles create``: the least-privilege roles (:mod:`pgqueue.roles`)."""

from __future__ import annotations

import click
import psycopg

from pgqueue.cli_context import Ctx, fail
from pgqueue.errors import PgQueueError
from pgqueue.roles import create_roles_dsn


@click.group()
def roles() -> None:
    """Database roles for least privilege: producer, worker, monitor."""


@roles.command("create", context_settings={"max_content_width": 100})
@click.pass_obj
def roles_create(obj: Ctx) -> None:
    """Create pgqueue_producer, pgqueue_worker and pgqueue_monitor and grant them
    their rights on the schema (--schema / PGQ_SCHEMA); safe to run again, and run
    it again after each `pgq migrate`.

    \b
    pgqueue_producer  enqueue, read jobs' state and results, cancel jobs
    pgqueue_worker    claim, heartbeat, record outcomes, LISTEN, maintenance,
                      the scheduler (--beat), and every dashboard action
    pgqueue_monitor   read only: the dashboard's pages, /metrics, pgq status

    They are NOLOGIN groups; grant one to each login, e.g. in psql:

    \b
      CREATE ROLE app_worker LOGIN PASSWORD '...' IN ROLE pgqueue_worker;
      GRANT pgqueue_producer TO webapp;

    Run it as the user that runs `pgq migrate` (it needs CREATEROLE).
    """
    try:
        app = obj.app()
        schema = app.settings.schema
        report = create_roles_dsn(app.dsn(), schema)
    except (PgQueueError, psycopg.Error) as exc:
        fail(exc)
    for line in report.lines(schema):
        click.echo(line)
