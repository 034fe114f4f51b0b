"""A tiny signup web app: the transactional-enqueue use case, with nothing but the stdlib.

``POST /signup`` writes a user row and enqueues the welcome e-mail in the same
transaction, so either both happen or neither does: no e-mail for a user that
was rolled back, no user without an e-mail. ``GET /jobs/<id>`` reads the job
back from Postgres. The e-mail is "sent" by writing it to the ``signup_outbox``
table, so no mail server is needed.

This module is both the web app (``python signup_app.py``) and the tasks module
the worker loads (``pgq worker --app signup_app:app --queues default,emails``).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import psycopg
from psycopg_pool import ConnectionPool

from pgqueue import App, JobNotFound

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
    user_id    bigint NOT NULL,
    recipient  text NOT NULL,
    subject    text NOT NULL,
    sent_at    timestamptz NOT NULL DEFAULT now()
);
"""

# Deliberately loose: the point of the example is the queue, not e-mail validation.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
JOB_PATH = re.compile(r"^/jobs/(\d+)$")


@app.task(queue="emails")
def send_welcome_email(user_id: int) -> dict[str, Any]:
    """Runs in the worker: look the user up and 'send' by writing to the outbox."""
    # The job carries only the id, not the address: the row is the truth at run time.
    with psycopg.connect(app.dsn()) as conn:
        row = conn.execute("SELECT email FROM signup_users WHERE id = %s",
                           (user_id,)).fetchone()
        if row is None:
            raise LookupError(f"no user {user_id}")
        subject = "Welcome aboard!"
        conn.execute(
            "INSERT INTO signup_outbox (user_id, recipient, subject) VALUES (%s, %s, %s)",
            (user_id, row[0], subject),
        )
    return {"to": row[0], "subject": subject}


def signup(pool: ConnectionPool, email: str) -> tuple[int, int]:
    """One transaction: the user row and the job commit together, or not at all."""
    with pool.connection() as conn:  # commits when the block ends, rolls back on an error
        cur = conn.execute("INSERT INTO signup_users (email) VALUES (%s) RETURNING id",
                           (email,))
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
        user_id, job_id = signup(self.server.pool, email)
        self._reply(HTTPStatus.ACCEPTED, {"user_id": user_id, "job_id": job_id})

    def do_GET(self) -> None:
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
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLES)
    with ConnectionPool(dsn, min_size=1, max_size=10, name="signup", open=True) as pool, \
            SignupServer((args.host, args.port), pool) as server:
        log.info("listening on http://%s:%d", args.host, args.port)
        server.serve_forever()


if __name__ == "__main__":
    main()
