"""examples/signup for real: the web app on a free port, a `pgq worker` subprocess, and
the SMTP sink in-process. A committed signup's e-mail arrives; a rolled-back one's never
exists to be sent."""

from __future__ import annotations

import json
import threading
import urllib.request

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from tests.conftest import count
from tests.examples.conftest import example_pgq, stop

pytest.importorskip("aiosmtpd", reason="the signup example's SMTP sink needs aiosmtpd")


class Boom(Exception):
    pass


def _post(url: str, form: str) -> dict[str, int]:
    request = urllib.request.Request(url, data=form.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 202
        return json.load(response)


@pytest.mark.timeout(30)
def test_signup_sends_the_welcome_email_and_a_rollback_sends_nothing(dsn, load_example):
    signup_app = load_example("signup", "signup_app")
    smtp_sink = load_example("signup", "smtp_sink")
    signup_app.create_tables(dsn)
    sink = smtp_sink.Sink()
    controller = smtp_sink.start(sink)
    worker = example_pgq(dsn, "signup", "worker", "--app", "signup_app:app",
                         "--queues", "default,emails",
                         env={"SIGNUP_SMTP_HOST": "127.0.0.1",
                              "SIGNUP_SMTP_PORT": str(controller.port)})
    pool = ConnectionPool(dsn, min_size=1, max_size=2, open=True)
    server = signup_app.SignupServer(("127.0.0.1", 0), pool)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        # The rolled-back signup goes first: if its job had leaked, the worker would
        # send it before the committed one, and the count below would show it.
        with pytest.raises(Boom), pool.connection() as conn:
            signup_app.signup(conn, "ghost@example.com")
            raise Boom  # e.g. the request failed after enqueueing: all of it rolls back

        created = _post(f"{base}/signup", "email=ada@example.com")
        assert sink.wait(1, timeout=10), "no e-mail reached the SMTP sink"
        result = signup_app.app.AsyncResult(created["job_id"]).get(timeout=5)
        with urllib.request.urlopen(f"{base}/jobs/{created['job_id']}", timeout=5) as resp:
            status = json.load(resp)
    finally:
        server.shutdown()
        server.server_close()
        pool.close()
        code = stop(worker)
        controller.stop()

    assert code == 0
    [message] = sink.messages
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Welcome aboard!"
    assert message["Message-ID"] == result["message_id"]
    assert "thanks for signing up" in message.get_content()
    assert status["state"] == "succeeded" and status["result"]["to"] == "ada@example.com"
    # Nothing of the rolled-back signup remains: no user, no job, no outbox row.
    assert count(dsn, "SELECT count(*) FROM signup_users") == 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT recipient FROM signup_outbox").fetchall() == \
            [("ada@example.com",)]
