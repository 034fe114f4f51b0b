"""``pgq demo``: the seed's first use case, end to end, on whatever Postgres is configured.

A "signup" writes a user row and enqueues a welcome e-mail in the same
transaction; a real ``pgq worker`` subprocess sends it (into an outbox table:
no mail server needed) and the producer reads the result back. A second signup
rolls back and leaves neither user nor job behind. This module is also the app
the demo worker loads (``--app pgqueue.demo:app``), like any user's tasks module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import click
import psycopg
from psycopg import sql

from pgqueue.app import App
from pgqueue.errors import JobNotFound

app = App()

SETUP = """
CREATE SCHEMA IF NOT EXISTS pgqueue_demo;
CREATE TABLE IF NOT EXISTS pgqueue_demo.users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgqueue_demo.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient text NOT NULL,
    subject text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
"""


@app.task(queue="emails")
def send_welcome_email(user_id: int) -> dict[str, Any]:
    """Look the user up and 'send' the e-mail by writing it to the outbox table."""
    with psycopg.connect(app.dsn()) as conn:
        row = conn.execute("SELECT email FROM pgqueue_demo.users WHERE id = %s",
                           (user_id,)).fetchone()
        if row is None:
            raise LookupError(f"no user {user_id}")
        subject = "Welcome to pgqueue!"
        conn.execute("INSERT INTO pgqueue_demo.outbox (recipient, subject) VALUES (%s, %s)",
                     (row[0], subject))
    return {"to": row[0], "subject": subject}


class RollbackDemo(RuntimeError):
    def __init__(self, job_id: int, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id


def signup(demo_app: App, email: str, fail: bool = False) -> int:
    """The web request: one transaction writes the user and enqueues the e-mail."""
    with psycopg.connect(demo_app.dsn()) as conn:  # commits on exit, rolls back on error
        (user_id,) = conn.execute(
            "INSERT INTO pgqueue_demo.users (email) VALUES (%s) RETURNING id", (email,)
        ).fetchone() or (0,)
        result = send_welcome_email.apply_async(args=(user_id,), connection=conn)
        if fail:
            raise RollbackDemo(result.id, f"signup of {email} failed after enqueueing job "
                                          f"{result.id}")
        return result.id


def run_demo(demo_app: App) -> None:
    say = click.echo
    dsn = demo_app.dsn()
    demo_app.migrate()
    if demo_app is not app:  # the CLI configured a copy: make the task module use it too
        app.configure(dsn=dsn, schema=demo_app.settings.schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SETUP)
    env = {**os.environ, "PGQ_DSN": dsn, "PGQ_SCHEMA": demo_app.settings.schema}
    say("1. starting a worker:  pgq worker --app pgqueue.demo:app --queues emails")
    worker = subprocess.Popen(
        [sys.executable, "-m", "pgqueue.cli", "worker", "--app", "pgqueue.demo:app",
         "--queues", "emails", "--concurrency", "4"],
        env=env,
    )
    try:
        time.sleep(1.0)
        say("2. signup of ada@example.com: user row + welcome e-mail job, one transaction")
        start = time.perf_counter()
        job_id = signup(demo_app, "ada@example.com")
        say(f"   committed: job {job_id}; the request returns now, the worker sends it")
        value = demo_app.AsyncResult(job_id).get(timeout=30)
        took = (time.perf_counter() - start) * 1000
        say(f"3. result of job {job_id}: {value}  ({took:.0f} ms from commit to result)")
        say("4. a signup that fails after enqueueing rolls back the user AND the job:")
        try:
            signup(demo_app, "bob@example.com", fail=True)
        except RollbackDemo as exc:
            say(f"   {exc}")
            with psycopg.connect(dsn) as conn:
                bobs = conn.execute("SELECT count(*) FROM pgqueue_demo.users "
                                    "WHERE email = 'bob@example.com'").fetchone()
            try:
                demo_app.AsyncResult(exc.job_id).info()
                job = "still there (this is a bug!)"
            except JobNotFound:
                job = "gone"
            say(f"   users named bob: {bobs[0] if bobs else 0}; job {exc.job_id}: {job}")
        say("5. the queue, as psql shows it (SELECT * FROM pgqueue.queue_stats):")
        stats = sql.SQL("SELECT queue, queued, running, succeeded, failed "
                        "FROM {}.queue_stats ORDER BY queue").format(
            sql.Identifier(demo_app.settings.schema))
        with psycopg.connect(dsn) as conn:
            cur = conn.execute(stats)
            for row in cur:
                say(f"   queue={row[0]} queued={row[1]} running={row[2]} "
                    f"succeeded={row[3]} failed={row[4]}")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        say(f"6. worker stopped on SIGTERM (exit code {code}). That's the whole flow.")
