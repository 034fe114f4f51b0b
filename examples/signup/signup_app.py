"""A tiny signup web app: the transactional-enqueue use case, with nothing but the stdlib.

``POST /signup`` writes a user row and enqueues the welcome e-mail in the same
transaction, so either both happen or neither does: no e-mail for a user that
was rolled back, no user without an e-mail. ``GET /jobs/<id>`` reads the job
back from Postgres. The worker sends the e-mail over SMTP (to the local sink in
``smtp_sink.py``, or any server named by ``SIGNUP_SMTP_HOST``/``SIGNUP_SMTP_PORT``)
and records it in the ``signup_outbox`` table.

This module is both the web app (``python signup_app.py``) and the tasks module
the worker loads (``pgq worker --app signup_app:app --queues default,emails``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import smtplib
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import psycopg
from psycopg_pool import ConnectionPool

from pgqueue import App, JobContext, JobNotFound

app = App()  # PGQ_DSN says which Postgres; without it, the embedded one in ./.pgqueue

log = logging.getLogger("signup_app")

TABLES = """
CREATE TABLE IF NOT EXISTS signup_users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS signup_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL UNIQUE,  -- one welcome per user: a retry finds it and stops
    recipient  text NOT NULL,
    subject    text NOT NULL,
    message_id text NOT NULL,
    sent_at    timestamptz NOT NULL DEFAULT now()
);
"""
SUBJECT = "Welcome aboard!"
SENDER = "welcome@signup.example"


# Deliberately loose: the point of the example is the queue, not e-mail validation.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
JOB_PATH = re.compile(r"^/jobs/(\d+)$")


def create_tables(dsn: str) -> None:
    """Create the example's tables if they are missing (the web app does it on start)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLES)


# Retried only when the mail server is unreachable or refuses for now; an unknown user
# fails at once, since retrying would not make it appear.
@app.task(queue="emails", bind=True, max_retries=5, retry_backoff=True,
          autoretry_for=(OSError, smtplib.SMTPException))
def send_welcome_email(self: JobContext, user_id: int) -> dict[str, Any]:
    """Runs in the worker: look the user up, send the e-mail over SMTP, note it in the outbox.

    An e-mail is an effect outside Postgres, so it is at least once, never exactly once
    (see the main README). Two things keep duplicates rare and recognisable: an
    attempt that finds the outbox row already written stops there, and every attempt
    sends the same Message-ID, derived from the user id, so a receiver can drop a copy.
    Only a crash between the SMTP send and the outbox write sends a second copy.
    """
    # The job carries only the id, not the address: the row is the truth at run time.
    with psycopg.connect(app.dsn()) as conn:
        row = conn.execute("SELECT email FROM signup_users WHERE id = %s",
                           (user_id,)).fetchone()
        if row is None:
            raise LookupError(f"no user {user_id}")
        sent = conn.execute("SELECT message_id FROM signup_outbox WHERE user_id = %s",
                            (user_id,)).fetchone()
        message_id = f"<welcome-{user_id}@signup.example>"
        if sent is None:
            _send(row[0], message_id, f"Hello {row[0]}, thanks for signing up.\n")
            conn.execute(
                "INSERT INTO signup_outbox (user_id, recipient, subject, message_id) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (user_id) DO NOTHING",
                (user_id, row[0], SUBJECT, message_id),
            )
    return {"to": row[0], "subject": SUBJECT, "message_id": message_id,
            "attempt": self.attempt}


def _send(recipient: str, message_id: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = recipient
    message["Subject"] = SUBJECT
    message["Message-ID"] = message_id
    message.set_content(body)
    # Read at send time, not import time, so one module serves any environment.
    host = os.environ.get("SIGNUP_SMTP_HOST", "127.0.0.1")
    port = int(os.environ.get("SIGNUP_SMTP_PORT", "1025"))
    # A timeout, because a thread blocked in a socket read can't be stopped from outside.
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(message)


def signup(conn: psycopg.Connection[Any], email: str) -> tuple[int, int]:
    """Write the user and enqueue the e-mail on ``conn``: both join its transaction.

    Whoever owns ``conn`` decides: COMMIT makes both visible (and wakes a worker),
    ROLLBACK leaves neither the user nor the job behind.
    """
    cur = conn.execute("INSERT INTO signup_users (email) VALUES (%s) RETURNING id", (email,))
    (user_id,) = cur.fetchone() or (0,)
    job = send_welcome_email.apply_async(args=(user_id,), connection=conn)
    return user_id, job.id


def job_status(job_id: int) -> dict[str, Any] | None:
    """What the producer side knows of a job: its state, and its result or error."""
    try:
        info = app.AsyncResult(job_id).info()
    except JobNotFound:
        return None
    return {
        "id": info.id,
        "task": info.task,
        "state": str(info.state),
        "result": info.result,
        "error": {"type": info.error.type, "message": info.error.message}
        if info.error else None,
    }


class Handler(BaseHTTPRequestHandler):
    server: SignupServer

    def do_POST(self) -> None:
        if self.path != "/signup":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such page: {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        email = (form.get("email") or [""])[0].strip()
        if not EMAIL.match(email):
            self._reply(HTTPStatus.BAD_REQUEST,
                        {"error": "post a form field email=someone@example.com"})
            return
        # The pool's block commits when it ends, or rolls back if anything in it raised.
        with self.server.pool.connection() as conn:
            user_id, job_id = signup(conn, email)
        self._reply(HTTPStatus.ACCEPTED, {"user_id": user_id, "job_id": job_id})

    def do_GET(self) -> None:
        if self.path == "/health":  # for the container's health check: the database answers
            with self.server.pool.connection() as conn:
                conn.execute("SELECT 1")
            self._reply(HTTPStatus.OK, {"ok": True})
            return
        match = JOB_PATH.match(self.path)
        if match is None:
            self._reply(HTTPStatus.NOT_FOUND,
                        {"error": "try POST /signup (form field email) or GET /jobs/<id>"})
            return
        status = job_status(int(match.group(1)))
        if status is None:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no job {match.group(1)}"})
            return
        self._reply(HTTPStatus.OK, status)

    def _reply(self, code: HTTPStatus, body: dict[str, Any]) -> None:
        # default=str: results may hold datetimes, UUIDs or Decimals (pgqueue decodes them).
        data = (json.dumps(body, default=str) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class SignupServer(ThreadingHTTPServer):
    """The HTTP server plus the connection pool its request threads share."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], pool: ConnectionPool) -> None:
        super().__init__(address, Handler)
        self.pool = pool


def _exit(signum: int, frame: object) -> None:
    # SIGTERM too: PID 1 in a container ignores signals it has no handler for, so
    # without this `docker compose stop` would wait its full timeout, then kill.
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1; 0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit)

    dsn = app.dsn()
    create_tables(dsn)
    with ConnectionPool(dsn, min_size=1, max_size=10, name="signup", open=True) as pool, \
            SignupServer((args.host, args.port), pool) as server:
        log.info("listening on http://%s:%d", args.host, args.port)
        server.serve_forever()


if __name__ == "__main__":
    main()
