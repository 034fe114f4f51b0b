"""Least privilege: ``pgq roles create`` and what each role may, and may not, do.

Each test logs in as users granted one role (NOLOGIN groups, cluster-wide) and runs
the real thing: a producer and a ``pgq worker`` subprocess complete enqueue -> run ->
get with no other rights; what a role must not do fails with insufficient_privilege
(SQLSTATE 42501)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from starlette.testclient import TestClient

from pgqueue import App, JobState
from pgqueue.monitor import Monitor
from pgqueue.roles import create_roles_dsn
from tests.conftest import pgq, pgq_run, stop_process, until

LOGINS = {"pgq_t_producer": "pgqueue_producer", "pgq_t_worker": "pgqueue_worker",
          "pgq_t_monitor": "pgqueue_monitor"}


@pytest.fixture
def logins(dsn: str) -> Iterator[dict[str, str]]:
    """`pgq roles create` on this database, and a DSN per role (trust auth: no password)."""
    create_roles_dsn(dsn, "pgqueue")  # the command itself: the test below
    with psycopg.connect(dsn, autocommit=True) as conn:
        for user, role in LOGINS.items():
            conn.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                         f"'{user}') THEN CREATE ROLE {user} LOGIN; END IF; END $$")
            conn.execute(f"GRANT {role} TO {user}")
    yield {role.removeprefix("pgqueue_"): make_conninfo(dsn, user=user)
           for user, role in LOGINS.items()}


def _denied(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege) as exc:
        conn.execute(statement)
    assert exc.value.sqlstate == "42501", statement


def test_roles_create_is_idempotent_and_says_what_it_did(dsn):
    first = pgq_run(dsn, "roles", "create")
    assert first.returncode == 0, first.stderr
    again = pgq_run(dsn, "roles", "create")
    assert again.returncode == 0, again.stderr
    assert "role pgqueue_worker exists" in again.stdout
    assert "pgqueue_monitor: SELECT on" in again.stdout
    assert "pgqueue_worker: SELECT on" in again.stdout and "DELETE on" in again.stdout
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname LIKE 'pgqueue\\_%' ORDER BY 1").fetchall()
        assert rows == [(r, False, False, False, False) for r in
                        ("pgqueue_monitor", "pgqueue_producer", "pgqueue_worker")]
        for role in ("pgqueue_monitor", "pgqueue_producer", "pgqueue_worker"):
            # Nothing needs CREATE after `pgq migrate`: not on the schema, nor the database.
            assert conn.execute("SELECT has_schema_privilege(%s, 'pgqueue', 'CREATE'), "
                                "has_database_privilege(%s, current_database(), 'CREATE')",
                                (role, role)).fetchone() == (False, False)
        # What follows a job's state runs as the owner (migration 0015).
        assert conn.execute("SELECT bool_and(p.prosecdef) FROM pg_trigger t "
                            "JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = "
                            "'pgqueue.jobs'::regclass AND NOT t.tgisinternal "
                            "AND t.tgname <> 'jobs_notify'").fetchone() == (True,)


def test_producer_and_worker_alone_run_the_whole_cycle(logins, dsn):
    producer = App(logins["producer"])
    from tests.tasks_app import register, register_canvas
    register(producer)
    register_canvas(producer)
    add = producer.tasks["add"]
    plain = add.delay(2, 3)
    unique = add.apply_async(args=(4, 5), unique_key="k45")
    assert add.apply_async(args=(4, 5), unique_key="k45").id == unique.id  # the key held
    chain = (add.s(1, 1) | add.s(10)).apply_async()
    later = add.apply_async(args=(0, 0), countdown=300)
    worker = pgq(logins["worker"], "worker", "--app", "tasks_app:app", "--concurrency", "2",
                 "--beat", stderr=subprocess.PIPE)
    try:
        assert plain.get(timeout=20) == 5
        assert unique.get(timeout=20) == 9
        assert chain.get(timeout=20) == 12
        assert later.cancel() == JobState.CANCELLED  # a producer may cancel its jobs
    finally:
        assert stop_process(worker) == 0
        err = worker.stderr.read() if worker.stderr else ""
    assert "permission denied" not in err and "InsufficientPrivilege" not in err, err
    producer.close()


def test_producer_cancels_a_waiting_workflow_and_its_dependents(logins):
    producer = App(logins["producer"])
    from tests.tasks_app import register
    register(producer)
    add = producer.tasks["add"]
    first = (add.s(1, 1) | add.s(2) | add.s(3)).apply_async()
    head = first.parent.parent  # type: ignore[union-attr]
    head.cancel()  # its dependents are cancelled by the trigger, as the schema's owner
    until(lambda: first.state == JobState.CANCELLED, timeout=10)
    producer.close()


def test_what_a_producer_must_not_do(logins):
    producer = App(logins["producer"])
    from tests.tasks_app import register
    register(producer)
    job = producer.tasks["add"].delay(1, 2)
    p = logins["producer"]
    for statement in (
        f"UPDATE pgqueue.jobs SET lease = gen_random_uuid(), worker_id = NULL WHERE id = {job.id}",
        f"UPDATE pgqueue.jobs SET lease_expires_at = now() WHERE id = {job.id}",
        f"UPDATE pgqueue.jobs SET args = '[]' WHERE id = {job.id}",
        f"INSERT INTO pgqueue.job_results (job_id, value) VALUES ({job.id}, '1')",
        f"DELETE FROM pgqueue.jobs WHERE id = {job.id}",
        "UPDATE pgqueue.schedules SET paused = true",
        "INSERT INTO pgqueue.queues (name, paused) VALUES ('default', true)",
        "INSERT INTO pgqueue.workers (name, host, pid, queues, pool, concurrency) "
        "VALUES ('x', 'h', 1, '{default}', 'threads', 1)",
        "CREATE TABLE pgqueue.mine (id int)",
    ):
        _denied(p, statement)
    producer.close()


def test_what_a_worker_must_not_do(logins):
    w = logins["worker"]
    for statement in ("INSERT INTO pgqueue.schema_migrations (version, name, checksum) "
                      "VALUES (9999, 'x', 'x')", "DELETE FROM pgqueue.schema_migrations",
                      "TRUNCATE pgqueue.jobs", "CREATE TABLE pgqueue.mine (id int)",
                      "DROP TABLE pgqueue.job_results",
                      "ALTER FUNCTION pgqueue.job_state_followed() SECURITY INVOKER"):
        _denied(w, statement)


def test_monitor_reads_everything_and_changes_nothing(logins, app):
    from tests.conftest import running_worker
    with running_worker(app):
        assert app.tasks["add"].delay(1, 2).get(timeout=10) == 3
    queued = app.tasks["add"].delay(5, 5)
    m = logins["monitor"]
    status = pgq_run(m, "status")
    assert status.returncode == 0 and "default" in status.stdout, status.stderr
    viewer = App(m)
    Monitor(viewer).queues()
    with TestClient(__import__("pgqueue.dashboard", fromlist=["create_app"])
                    .create_app(viewer), base_url="http://localhost") as web:
        for page in ("/", "/jobs", f"/jobs/{queued.id}", "/schedules", "/metrics",
                     "/api/overview", "/api/jobs"):
            assert web.get(page).status_code == 200, page
        token = web.get("/api/csrf").json()["csrf_token"]
        for action in (f"/api/jobs/{queued.id}/cancel", f"/api/jobs/{queued.id}/retry",
                       "/api/queues/default/pause"):
            answer = web.post(action, headers={"X-CSRF-Token": token})
            assert answer.status_code == 403, (action, answer.text)
            assert "pgqueue_worker" in answer.json()["error"]
    assert queued.state == JobState.QUEUED
    for statement in (f"UPDATE pgqueue.jobs SET state = 'cancelled' WHERE id = {queued.id}",
                      "INSERT INTO pgqueue.jobs (queue, task) VALUES ('default', 'add')",
                      f"DELETE FROM pgqueue.jobs WHERE id = {queued.id}",
                      "INSERT INTO pgqueue.queues (name, paused) VALUES ('default', true)"):
        _denied(m, statement)
    viewer.close()


def test_a_forged_cancel_notification_stops_nothing(logins, app):
    """NOTIFY needs no grant: a read-only monitor can send pgqueue's cancel hint, and the
    worker, finding no cancel_requested on the row, lets the job run on."""
    from tests.conftest import running_worker
    with running_worker(app, poll_interval=60):
        running = app.tasks["cancellable"].delay()
        until(lambda: running.state == JobState.RUNNING, timeout=10)
        with psycopg.connect(logins["monitor"], autocommit=True) as conn:
            conn.execute("SELECT pg_notify('pgqueue.cancel', %s)", (str(running.id),))
        time.sleep(0.5)  # the check is one query away
        assert running.state == JobState.RUNNING
        running.cancel()  # a real cancel: the row says so
        until(lambda: running.state == JobState.CANCELLED, timeout=10)


def test_the_readme_sql_is_what_pgq_roles_create_runs():
    import re
    from pathlib import Path

    from pgqueue.roles import _GRANTS
    from pgqueue.sql import queries
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Security: roles, limits and secrets"):]
    section = section[:section.index("\n## ", 10)]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    documented = next(b for b in blocks if "GRANT USAGE ON SCHEMA" in b)

    def norm(text: str) -> str:
        return " ".join(text.replace('"', "").split())
    expected = " ".join(norm(queries("pgqueue")[n].text) for n in _GRANTS)
    assert expected in norm(documented)
