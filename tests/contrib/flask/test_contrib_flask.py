"""The Flask extension against a real Postgres: a tiny app whose signup writes a user
and enqueues a welcome e-mail on the request's connection (SQLAlchemy session,
Flask-SQLAlchemy, or psycopg on flask.g). Commit: both; rollback: neither."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

flask = pytest.importorskip("flask")
sqlalchemy = pytest.importorskip("sqlalchemy")

from psycopg.conninfo import conninfo_to_dict  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import scoped_session, sessionmaker  # noqa: E402

from pgqueue import App, ConfigurationError, JobState  # noqa: E402
from pgqueue.contrib.flask import PgQueue, dsn_from_sqlalchemy, settings_from_config  # noqa: E402
from pgqueue.settings import Settings  # noqa: E402
from pgqueue.testing import assert_enqueued, run_until_empty  # noqa: E402
from tests.conftest import count  # noqa: E402


def sqlalchemy_url(dsn: str) -> str:
    """The test database as a SQLAlchemy URL with the psycopg 3 dialect."""
    p = conninfo_to_dict(dsn)
    host = str(p.get("host", "127.0.0.1"))
    url = sqlalchemy.engine.URL.create(
        "postgresql+psycopg", username=str(p.get("user", "postgres")),
        password=str(p["password"]) if p.get("password") else None,
        host=None if host.startswith("/") else host, port=int(p.get("port", 5432)),
        database=str(p["dbname"]), query={"host": host} if host.startswith("/") else {})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def users(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL)")
    return dsn


def make_app(ext: PgQueue, insert_user: Callable[[str], int],
             finish: Callable[[bool], None]) -> Any:
    """A Flask app with POST /signup: insert the user, enqueue, then commit (or fail)."""
    flask_app = flask.Flask("signup")
    flask_app.config["TESTING"] = True

    @ext.task(queue="emails")
    def send_welcome(user_id: int) -> str:
        # Runs in the Flask app's context, thanks to the extension's around_task hook.
        return f"{flask.current_app.name} welcomes user {user_id}"

    @flask_app.post("/signup")
    def signup() -> Any:
        user_id = insert_user(flask.request.form["email"])
        job = ext.enqueue(send_welcome, user_id)
        failed = "fail" in flask.request.form
        finish(not failed)
        if failed:
            return {"error": "payment declined"}, 402
        return {"user_id": user_id, "job_id": job.id}, 201

    flask_app.send_welcome = send_welcome
    return flask_app


def check_commit_and_rollback(flask_app: Any, ext: PgQueue, dsn: str) -> None:
    client = flask_app.test_client()
    ok = client.post("/signup", data={"email": "ada@example.com"})
    assert ok.status_code == 201, ok.text
    failed = client.post("/signup", data={"email": "bob@example.com", "fail": "1"})
    assert failed.status_code == 402
    # Committed: the user and its job. Rolled back: neither.
    assert count(dsn, "SELECT count(*) FROM users") == 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1
    assert_enqueued(flask_app.send_welcome, args=[ok.json["user_id"]], queue="emails")
    assert run_until_empty(ext.app, timeout=20) == 1
    result = ext.AsyncResult(ok.json["job_id"])
    assert result.get(timeout=1) == f"signup welcomes user {ok.json['user_id']}"


def test_sqlalchemy_session_shares_the_transaction(users: str) -> None:
    engine = sqlalchemy.create_engine(sqlalchemy_url(users))
    session = scoped_session(sessionmaker(engine))
    ext = PgQueue(session=session)

    def insert_user(email: str) -> int:
        return int(session.execute(text("INSERT INTO users (email) VALUES (:e) RETURNING id"),
                                   {"e": email}).scalar_one())

    flask_app = make_app(ext, insert_user,
                         lambda ok: session.commit() if ok else session.rollback())
    flask_app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(users)
    flask_app.teardown_appcontext(lambda exc: session.remove())
    ext.init_app(flask_app)  # no PGQUEUE_DSN: the SQLAlchemy URI lends its database
    assert ext.app.settings.dsn == dsn_from_sqlalchemy(sqlalchemy_url(users))
    try:
        check_commit_and_rollback(flask_app, ext, users)
    finally:
        ext.app.close()
        engine.dispose()


def test_flask_sqlalchemy_is_found_by_itself(users: str) -> None:
    flask_sqlalchemy = pytest.importorskip("flask_sqlalchemy")
    db = flask_sqlalchemy.SQLAlchemy()
    ext = PgQueue()

    def insert_user(email: str) -> int:
        return int(db.session.execute(text("INSERT INTO users (email) VALUES (:e) "
                                           "RETURNING id"), {"e": email}).scalar_one())

    flask_app = make_app(ext, insert_user,
                         lambda ok: db.session.commit() if ok else db.session.rollback())
    flask_app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(users)
    db.init_app(flask_app)
    ext.init_app(flask_app)
    try:
        check_commit_and_rollback(flask_app, ext, users)
    finally:
        ext.app.close()
        with flask_app.app_context():
            db.engine.dispose()


def test_eager_tasks_share_the_requests_context_and_session(users: str) -> None:
    flask_sqlalchemy = pytest.importorskip("flask_sqlalchemy")
    db = flask_sqlalchemy.SQLAlchemy()
    ext = PgQueue()

    @ext.task
    def email_of(user_id: int) -> str:
        # Inline, before the commit: it sees the request's row through the same session.
        return str(db.session.execute(text("SELECT email FROM users WHERE id = :i"),
                                      {"i": user_id}).scalar_one())

    flask_app = flask.Flask("eager")
    flask_app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(users)

    @flask_app.post("/signup")
    def signup() -> Any:
        user_id = db.session.execute(text("INSERT INTO users (email) VALUES ('ada@x.org') "
                                          "RETURNING id")).scalar_one()
        result = ext.enqueue(email_of, user_id)
        db.session.commit()
        return {"email": result.get()}

    db.init_app(flask_app)
    ext.init_app(flask_app)
    ext.app.configure(eager=True)
    try:
        assert flask_app.test_client().post("/signup").json == {"email": "ada@x.org"}
        assert count(users, "SELECT count(*) FROM pgqueue.jobs") == 0
    finally:
        ext.app.close()
        with flask_app.app_context():
            db.engine.dispose()


def test_psycopg_connection_on_flask_g(users: str) -> None:
    ext = PgQueue(app=App(users))

    def conn() -> psycopg.Connection[Any]:
        if "db" not in flask.g:
            flask.g.db = psycopg.connect(users)
        return flask.g.db  # type: ignore[no-any-return]

    def insert_user(email: str) -> int:
        row = conn().execute("INSERT INTO users (email) VALUES (%s) RETURNING id",
                             (email,)).fetchone()
        assert row is not None
        return int(row[0])

    flask_app = make_app(ext, insert_user,
                         lambda ok: conn().commit() if ok else conn().rollback())

    @flask_app.teardown_appcontext
    def close_db(exc: BaseException | None) -> None:
        db = flask.g.pop("db", None)
        if db is not None:
            db.close()

    ext.init_app(flask_app)
    try:
        check_commit_and_rollback(flask_app, ext, users)
    finally:
        ext.app.close()


def test_outside_a_request_the_pool_commits_at_once(dsn: str) -> None:
    ext = PgQueue(app=App(dsn))

    @ext.task
    def add(x: int, y: int) -> int:
        return x + y

    flask_app = flask.Flask("plain")
    ext.init_app(flask_app)
    try:
        assert ext.connection() is None
        r = ext.enqueue(add, 1, 2)
        with flask_app.app_context():  # no connection on g, no session: the pool
            assert ext.connection() is None
            r2 = ext.apply_async(add, (3, 4), priority=5)
        assert r.state is JobState.QUEUED and r2.info().priority == 5
    finally:
        ext.app.close()


def test_config_becomes_settings() -> None:
    current = Settings()
    assert settings_from_config({"PGQUEUE_DSN": "postgresql://a@b/c", "PGQUEUE_SCHEMA": "jobs",
                                 "PGQUEUE_POOL_SIZE": "3", "PGQUEUE_QUEUES": "a,b",
                                 "PGQUEUE_G_CONNECTION": "conn", "OTHER": 1}, current) == {
        "dsn": "postgresql://a@b/c", "schema": "jobs", "pool_size": 3, "queues": ("a", "b")}
    uri = {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u:p@h:5433/d?sslmode=require"}
    assert settings_from_config(uri, current) == {
        "dsn": "postgresql://u:p@h:5433/d?sslmode=require"}
    assert settings_from_config(uri, Settings(dsn="postgresql://x@y/z")) == {}  # App's wins
    assert settings_from_config({"SQLALCHEMY_DATABASE_URI": "sqlite:///x.db"}, current) == {}
    with pytest.raises(ConfigurationError, match="unknown setting PGQUEUE_POOLSIZE"):
        settings_from_config({"PGQUEUE_POOLSIZE": 3}, current)


def test_a_non_psycopg3_connection_is_refused(dsn: str) -> None:
    class FakePsycopg2Connection:
        pass

    FakePsycopg2Connection.__module__ = "psycopg2.extensions"
    ext = PgQueue(app=App(dsn), connection=lambda: FakePsycopg2Connection())  # type: ignore[arg-type,return-value]
    flask_app = flask.Flask("wrong")
    ext.init_app(flask_app)
    with flask_app.app_context(), pytest.raises(ConfigurationError, match="psycopg 3"):
        ext.connection()
    ext.app.close()


def test_flask_cli_migrates(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA pgqueue CASCADE")
    flask_app = flask.Flask("cli")
    flask_app.config["PGQUEUE_DSN"] = dsn
    ext = PgQueue(flask_app)
    result = flask_app.test_cli_runner().invoke(args=["pgqueue", "migrate"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("applied 0001_initial.sql")
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
    worker = flask_app.test_cli_runner().invoke(args=["pgqueue", "worker", "--help"])
    assert "--queues" in worker.output and "--concurrency" in worker.output
    ext.app.close()


@pytest.fixture(autouse=True)
def _no_env_dsn(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # PgQueue() reads PGQ_DSN like App() does; these tests say which database themselves.
    monkeypatch.delenv("PGQ_DSN", raising=False)
    yield
