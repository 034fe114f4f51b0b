"""No password in any message: whatever the DSN's form, through real failing
connections, in the worker's log, in `pgq` output, in exceptions and the dashboard."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from starlette.testclient import TestClient

from pgqueue import App
from pgqueue.errors import PgQueueError
from pgqueue.redact import redact_dsn, scrub
from tests.conftest import pgq, stop_process


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PORT = _closed_port()
# (DSN, the secret that must never show, fragments of it that must not either)
FORMS = [
    (f"postgresql://ada:Url-s3cret@127.0.0.1:{PORT}/db", ["Url-s3cret"]),
    (f"postgresql://ada:P%25ct%2Fs3cret@127.0.0.1:{PORT}/db", ["P%ct/s3cret", "P%25ct%2Fs3cret"]),
    (f"postgresql://ada:Bad%ZZs3cret@127.0.0.1:{PORT}/db", ["Bad%ZZs3cret", "ZZs3cret"]),
    (f"host=127.0.0.1 port={PORT} user=ada password=Kv-s3cret", ["Kv-s3cret"]),
    (f"host=127.0.0.1 port={PORT} user=ada password='Quoted s3cret'", ["Quoted s3cret",
                                                                        "s3cret"]),
    (f"host=127.0.0.1 port={PORT} user=ada password=Spaced s3cretword", ["Spaced",
                                                                          "s3cretword"]),
    (f"host=127.0.0.1 port={PORT} password='Unclosed s3cret", ["Unclosed", "s3cret"]),
    ("postgresql://ada:Ipv6-s3cret@[::1/db", ["Ipv6-s3cret"]),
]


def _clean(text: str, secrets: list[str]) -> None:
    for s in secrets:
        assert s not in text, f"{s!r} shows in: {text}"


@pytest.mark.parametrize(("dsn", "secrets"), FORMS)
def test_redact_dsn_and_scrub(dsn, secrets):
    _clean(redact_dsn(dsn), secrets)
    assert "***" in redact_dsn(dsn)
    try:
        psycopg.connect(dsn, connect_timeout=2)
    except psycopg.Error as exc:  # psycopg's own text quotes parts of some DSNs
        _clean(scrub(str(exc), dsn), secrets)
    else:
        pytest.fail("connected to a closed port")


def test_exceptions_and_settings_never_show_the_password():
    for dsn, secrets in FORMS:
        app = App(dsn, pool_timeout=0.2)
        _clean(repr(app.settings), secrets)
        with pytest.raises((PgQueueError, psycopg.Error)) as exc, \
                app.client.connection() as conn:
            conn.execute("SELECT 1")
        _clean(str(exc.value), secrets)
        app.close()


def test_pgq_commands_never_print_the_password(dsn):
    # The forms psycopg quotes back (bad percent-encoding, unquoted space, IPv6), and one plain.
    procs = [(pgq(bad, "migrate", stdout=subprocess.PIPE, stderr=subprocess.PIPE), secrets)
             for bad, secrets in (FORMS[2], FORMS[3], FORMS[5], FORMS[7])]
    for proc, secrets in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode != 0
        _clean(out + err, secrets)


def _password_user(dsn: str, datadir: Path) -> str:
    """A role that must give its password (scram), over the test server's socket."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                     "'pgq_pw_user') THEN CREATE ROLE pgq_pw_user LOGIN PASSWORD "
                     "'Right-s3cret'; END IF; END $$")
        hba = datadir / "pg_hba.conf"
        rule = "local all pgq_pw_user scram-sha-256\n"
        if rule not in hba.read_text():
            hba.write_text(rule + hba.read_text())  # first match wins: only this user
            conn.execute("SELECT pg_reload_conf()")
    return make_conninfo(dsn, user="pgq_pw_user", password="Wrong-s3cret")


def test_a_wrong_password_never_reaches_the_log_or_stderr(dsn, pg_datadir):
    if pg_datadir is None:
        pytest.skip("PGQ_TEST_DSN: the server's pg_hba.conf is not ours to change")
    bad = _password_user(dsn, pg_datadir)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad).close()
    url = (f"postgresql://pgq_pw_user:Wrong%2Ds3cret@/{conninfo_to_dict(dsn)['dbname']}"
           f"?host={conninfo_to_dict(dsn)['host']}")
    workers = [pgq(form, "worker", "--app", "tasks_app:app", stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT) for form in (bad, url)]  # side by side
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode != 0 and "password authentication failed" in out, out
        _clean(out, ["Wrong-s3cret", "Wrong%2Ds3cret"])
    viewer = App(bad, pool_timeout=1)
    with TestClient(__import__("pgqueue.dashboard", fromlist=["create_app"])
                    .create_app(viewer), base_url="http://localhost",
                    raise_server_exceptions=False) as web:
        for page in ("/api/overview", "/", "/metrics"):
            answer = web.get(page)
            assert answer.status_code >= 500, page
            _clean(answer.text, ["Wrong-s3cret", "pgq_pw_user", str(pg_datadir)])
    viewer.close()


def test_the_worker_log_has_no_password_while_it_retries():
    dsn = f"postgresql://ada:Retry-s3cret@127.0.0.1:{PORT}/db"
    worker = pgq(dsn, "worker", "--app", "tasks_app:app", stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT)
    time.sleep(3)  # long enough to fail and log a retry
    stop_process(worker)
    out = worker.stdout.read() if worker.stdout else ""
    assert "retrying" in out or "connection" in out, out
    _clean(out, ["Retry-s3cret"])


def test_a_library_log_handler_gets_scrubbed_records(caplog):
    """Not under `pgq`: the application's own handlers see psycopg's pool warnings
    (which quote a malformed DSN) with the password masked."""
    import logging
    caplog.set_level(logging.WARNING)
    dsn, secrets = FORMS[2]  # bad percent-encoding: psycopg quotes the password back
    app = App(dsn, pool_timeout=0.5)
    with pytest.raises((PgQueueError, psycopg.Error)), app.client.connection() as conn:
        conn.execute("SELECT 1")
    app.close()
    assert caplog.records
    _clean("\n".join(r.getMessage() for r in caplog.records), secrets)
