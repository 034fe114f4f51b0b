"""Flask extension: configuration from ``app.config``, and enqueues that share the
request's transaction (``pip install -e '.[flask]'``).

    queue = PgQueue()                      # or PgQueue(flask_app)

    @queue.task
    def send_welcome(user_id: int) -> None: ...

    def create_app() -> Flask:
        flask_app = Flask(__name__)
        flask_app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://app@db/app"
        db.init_app(flask_app)
        queue.init_app(flask_app)
        return flask_app

    @bp.post("/signup")
    def signup():
        user = User(email=request.form["email"])
        db.session.add(user)
        db.session.flush()
        queue.enqueue(send_welcome, user.id)   # in the session's transaction
        db.session.commit()                    # the user and the job, or neither

Where the request's connection comes from, first found wins: the
``connection=`` function given to the extension; a psycopg 3 connection on
``flask.g`` (attribute ``PGQUEUE_G_CONNECTION``, ``db`` by default); the
SQLAlchemy session given as ``session=``, or Flask-SQLAlchemy's ``db.session``,
whose DBAPI connection is used (it needs the psycopg 3 dialect,
``postgresql+psycopg://``). With none of them, or outside a request, pgqueue's
own pool is used and the job is committed at once.

Tasks run inside an application context of the Flask app (an ``around_task``
hook), so they can use ``current_app`` and Flask-SQLAlchemy's session, in a
worker as in eager mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click
import flask
import psycopg

from pgqueue.app import App
from pgqueue.context import JobContext
from pgqueue.errors import ConfigurationError
from pgqueue.result import JobResult
from pgqueue.settings import Settings
from pgqueue.statements import EnqueueRequest
from pgqueue.task import Task

ConnectionGetter = Callable[[], "psycopg.Connection[Any] | None"]
# The extension's own keys; every other PGQUEUE_<NAME> is the Settings field <name>.
_OWN_KEYS = {"PGQUEUE_G_CONNECTION", "PGQUEUE_APP_CONTEXT"}
_SA_POSTGRES = re.compile(r"^postgres(?:ql)?(?:\+(\w+))?://")


def settings_from_config(config: Mapping[str, Any], current: Settings) -> dict[str, Any]:
    """The Settings changes a Flask config asks for.

    ``PGQUEUE_<NAME>`` sets the field ``<name>`` (``PGQUEUE_DSN``, ``PGQUEUE_SCHEMA``,
    ``PGQUEUE_POOL_SIZE``...; strings are parsed as the ``PGQ_*`` variables are).
    With no DSN from the config or the App, ``SQLALCHEMY_DATABASE_URI`` lends its
    database, if it is a Postgres one.
    """
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    changes: dict[str, Any] = {}
    for key, value in config.items():
        if not key.startswith("PGQUEUE_") or key in _OWN_KEYS:
            continue
        name = key.removeprefix("PGQUEUE_").lower()
        if name not in fields:
            known = ", ".join(f"PGQUEUE_{n.upper()}" for n in fields)
            raise ConfigurationError(f"unknown setting {key} in the Flask config; pgqueue "
                                     f"reads {known}, PGQUEUE_G_CONNECTION, "
                                     "PGQUEUE_APP_CONTEXT")
        parse = fields[name].metadata.get("parse")
        changes[name] = parse(value) if parse and isinstance(value, str) else value
    if not changes.get("dsn") and not current.dsn:
        dsn = dsn_from_sqlalchemy(config.get("SQLALCHEMY_DATABASE_URI"))
        if dsn:
            changes["dsn"] = dsn
    return changes


def dsn_from_sqlalchemy(uri: object) -> str | None:
    """``postgresql+psycopg://u@h/db`` -> ``postgresql://u@h/db``; None if not Postgres."""
    if uri is None:
        return None
    render = getattr(uri, "render_as_string", None)  # a sqlalchemy.URL, not a string
    text = str(render(hide_password=False)) if render is not None else str(uri)
    if not _SA_POSTGRES.match(text):
        return None
    return _SA_POSTGRES.sub("postgresql://", text, count=1)


class PgQueue:
    """The extension: ``PgQueue(flask_app)`` or ``PgQueue()`` then ``init_app(flask_app)``.

    ``ext.app`` is the pgqueue :class:`~pgqueue.App` (``app=`` to bring your
    own); ``ext.task`` registers tasks on it; ``ext.enqueue(task, *args)``
    enqueues in the current request's transaction. ``connection=`` (a function
    returning the request's psycopg connection, or None) and ``session=`` (a
    SQLAlchemy ``scoped_session``, or a function returning the request's
    ``Session``) say where that transaction is, when the defaults don't find it.
    """

    def __init__(self, flask_app: flask.Flask | None = None, *, app: App | None = None,
                 connection: ConnectionGetter | None = None, session: Any = None) -> None:
        self.app = app if app is not None else App()
        #: ``@ext.task`` / ``@ext.task(queue="emails")``: the App's task decorator.
        self.task = self.app.task
        self._connection = connection
        self._session = session
        self._flask_app: flask.Flask | None = None
        if flask_app is not None:
            self.init_app(flask_app)

    def init_app(self, flask_app: flask.Flask) -> None:
        config = flask_app.config
        self.app.configure(**settings_from_config(config, self.app.settings))
        config.setdefault("PGQUEUE_G_CONNECTION", "db")
        config.setdefault("PGQUEUE_APP_CONTEXT", True)
        flask_app.extensions["pgqueue"] = self
        flask_app.cli.add_command(self._cli(), "pgqueue")
        if config["PGQUEUE_APP_CONTEXT"] and self._flask_app is None:
            # Once: the first Flask app hosts the tasks (as in Celery's Flask pattern).
            self.app.hooks.around_task(self._app_context)
        self._flask_app = self._flask_app or flask_app

    def _app_context(self, ctx: JobContext) -> contextlib.AbstractContextManager[Any]:
        assert self._flask_app is not None
        if flask.has_app_context() and flask.current_app._get_current_object() is (  # type: ignore[attr-defined]
                self._flask_app):
            # Eager mode, inside a request: the task shares the request's context
            # (and so its Flask-SQLAlchemy session), as an inline call would.
            return contextlib.nullcontext()
        return self._flask_app.app_context()

    # -- the request's connection --------------------------------------------------
    def connection(self) -> psycopg.Connection[Any] | None:
        """The current request's psycopg connection, or None (then the pool is used)."""
        if not flask.has_app_context():
            return None
        if self._connection is not None:
            found = self._connection()
            if found is not None:
                return _psycopg3(found, "the connection= function")
        attr = flask.current_app.config.get("PGQUEUE_G_CONNECTION")
        on_g = getattr(flask.g, attr, None) if attr else None
        if isinstance(on_g, psycopg.Connection):
            return on_g
        if on_g is not None and type(on_g).__module__.startswith("psycopg2"):
            _psycopg3(on_g, f"flask.g.{attr}")
        session = self._current_session()
        return _session_connection(session) if session is not None else None

    def _current_session(self) -> Any:
        source = self._session
        if source is None:
            flask_sqlalchemy = flask.current_app.extensions.get("sqlalchemy")
            source = getattr(flask_sqlalchemy, "session", None)
        if source is None or hasattr(source, "connection"):  # a Session or scoped_session
            return source
        if type(source).__name__ == "sessionmaker":
            raise ConfigurationError("PgQueue(session=...) got a sessionmaker, which makes a "
                                     "new session per call: pass a scoped_session, or a "
                                     "function returning the request's Session")
        return source()

    # -- enqueueing -----------------------------------------------------------------
    def enqueue(self, task: Task[..., Any], /, *args: Any, **kwargs: Any) -> JobResult:
        """``task.delay(*args, **kwargs)`` in the current request's transaction."""
        return task.apply_async(args, kwargs, connection=self.connection())

    def apply_async(self, task: Task[..., Any], args: Sequence[Any] = (),
                    kwargs: Mapping[str, Any] | None = None, **options: Any) -> JobResult:
        """``task.apply_async(...)`` (queue, priority, countdown, eta) in the request's
        transaction."""
        return task.apply_async(args, kwargs, connection=self.connection(), **options)

    def send_task(self, name: str, args: Sequence[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, **options: Any) -> JobResult:
        return self.app.send_task(name, args, kwargs, connection=self.connection(), **options)

    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[JobResult]:
        return self.app.enqueue_many(requests, connection=self.connection())

    def AsyncResult(self, job_id: int) -> JobResult:
        return self.app.AsyncResult(job_id)

    # -- flask pgqueue migrate | worker ------------------------------------------------
    def _cli(self) -> click.Group:
        group = click.Group("pgqueue", help="pgqueue, configured from this Flask app.")

        @group.command("migrate", help="Create or upgrade pgqueue's tables.")
        def migrate() -> None:
            applied = self.app.migrate()
            click.echo(f"applied {', '.join(applied)}" if applied else "up to date")

        @group.command("worker", help="Run a worker for this app's tasks (threads pool).")
        @click.option("-Q", "--queues", metavar="Q1,Q2", help="Queues to serve.")
        @click.option("-c", "--concurrency", type=click.IntRange(min=1), metavar="N")
        def worker(queues: str | None, concurrency: int | None) -> None:
            from pgqueue.worker.loop import run_worker

            run_worker(self.app, self.app.settings.with_(queues=queues,
                                                         concurrency=concurrency))

        return group


def _psycopg3(conn: Any, where: str) -> psycopg.Connection[Any]:
    if isinstance(conn, psycopg.Connection):
        return conn
    raise ConfigurationError(
        f"{where} gave a {type(conn).__module__}.{type(conn).__name__}, but pgqueue "
        "enqueues on psycopg 3 connections: use psycopg (with SQLAlchemy, the "
        "postgresql+psycopg:// dialect) to share the request's transaction")


def _session_connection(session: Any) -> psycopg.Connection[Any] | None:
    """The DBAPI connection under a SQLAlchemy session, in its transaction (begun if need
    be, so the job commits or rolls back with the session). None if not on Postgres."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return None  # the app's own database isn't Postgres: jobs go through the pool
    driver = session.connection().connection.driver_connection
    return _psycopg3(driver, f"the SQLAlchemy session (driver {bind.dialect.driver!r})")
