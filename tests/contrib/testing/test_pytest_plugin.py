"""The pytest plugin as a user meets it: a project with its own tasks, run by pytester.

The inner run uses this session's Postgres server (PGQ_TEST_DSN), so it starts
no server of its own; its databases get names of their own, by pid.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[3]

TASKS = '''
import psycopg
from pgqueue import App

app = App()  # PGQ_DSN in production; the plugin points it at each test's database


@app.task(queue="emails")
def send_welcome(user_id: int) -> str:
    return f"welcome, user {user_id}"


def signup(conn: psycopg.Connection, email: str) -> int:
    """The code under test: a user row and its welcome e-mail, in one transaction."""
    user_id = conn.execute("INSERT INTO users (email) VALUES (%s) RETURNING id",
                           (email,)).fetchone()[0]
    send_welcome.apply_async((user_id,), connection=conn)
    return user_id
'''

# The README's example test, plus one that fails to show the assertion's message.
USER_TESTS = '''
import psycopg
import pytest
from pgqueue import JobState
from pgqueue.testing import assert_enqueued, assert_not_enqueued, run_until_empty

from myproj_tasks import send_welcome, signup


@pytest.fixture
def db(pgqueue_dsn):
    with psycopg.connect(pgqueue_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id serial PRIMARY KEY, email text)")
    return pgqueue_dsn


def test_signup_enqueues_a_welcome_email(pgqueue_app, db):
    with psycopg.connect(db) as conn:
        user_id = signup(conn, "ada@example.com")
    assert_enqueued(send_welcome, args=[user_id], queue="emails")
    assert run_until_empty(pgqueue_app) == 1


def test_a_failed_signup_enqueues_nothing(pgqueue_app, db):
    with pytest.raises(RuntimeError), psycopg.connect(db) as conn:
        signup(conn, "bob@example.com")
        raise RuntimeError("payment declined")
    assert_not_enqueued(send_welcome)


def test_eager_mode_runs_tasks_inline(pgqueue_eager):
    result = send_welcome.delay(7)
    assert result.state is JobState.SUCCEEDED
    assert result.get() == "welcome, user 7"
    assert_enqueued(send_welcome, args=[7])
    with pytest.raises(TypeError):
        send_welcome.delay(object())


def test_a_real_worker_in_the_background(pgqueue_app, pgqueue_worker):
    assert send_welcome.delay(3).get(timeout=10) == "welcome, user 3"


def test_each_test_has_a_fresh_database(pgqueue_app, pgqueue_dsn):
    assert pgqueue_app.settings.dsn == pgqueue_dsn
    with psycopg.connect(pgqueue_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0] == 0


def test_shows_what_was_enqueued(pgqueue_app):
    send_welcome.delay(1)
    assert_enqueued(send_welcome, args=[2])
'''

def test_a_users_tests_with_the_plugin(pytester: pytest.Pytester, pg_server: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGQ_TEST_DSN", pg_server)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("PGQ_DSN", raising=False)
    pytester.makepyfile(myproj_tasks=TASKS, test_signup=USER_TESTS)
    pytester.makeini("[pytest]\npgqueue_app = myproj_tasks:app\n")
    registered = any(ep.name == "pgqueue" for ep in entry_points(group="pytest11"))
    plugin = [] if registered else ["-p", "pgqueue.pytest_plugin"]
    result = pytester.runpytest_subprocess(*plugin, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: expected at least one job send_welcome(2, ...), found 0.",
        "*Enqueued jobs (1):",
        "*#1 send_welcome(1) queue='emails' state=queued",
    ])


def test_the_app_fixture_says_how_to_configure_it(pytester: pytest.Pytester, pg_server: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGQ_TEST_DSN", pg_server)
    pytester.makepyfile("def test_it(pgqueue_app):\n    pass\n")
    registered = any(ep.name == "pgqueue" for ep in entry_points(group="pytest11"))
    plugin = [] if registered else ["-p", "pgqueue.pytest_plugin"]
    result = pytester.runpytest_inprocess(*plugin, "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(['*the pgqueue_app fixture needs your App: add pgqueue_app = '
                                 '"myproj.tasks:app" to*'])


def test_the_helpers_import_without_pytest() -> None:
    """README: the helpers work without pytest, so importing them must not need it."""
    code = ("import sys, pgqueue.testing\n"
            "from pgqueue.testing import assert_enqueued, assert_not_enqueued, run_until_empty\n"
            "assert 'pytest' not in sys.modules, 'pgqueue.testing imported pytest'\n"
            "assert not [m for m in sys.modules if m.startswith('pgqueue.worker')]\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_entry_point_is_the_plugin_module() -> None:
    (plugin,) = [ep for ep in entry_points(group="pytest11") if ep.name == "pgqueue"]
    assert plugin.value == "pgqueue.pytest_plugin"


def test_plugin_names_still_import_from_testing() -> None:
    from pgqueue import pytest_plugin, testing

    for name in ("pgqueue_dsn", "pgqueue_app", "pgqueue_eager", "pgqueue_worker",
                 "pgqueue_server", "pgqueue_settings", "pytest_addoption"):
        assert getattr(testing, name) is getattr(pytest_plugin, name)


def test_loading_pgqueue_testing_as_a_plugin_still_gives_the_fixtures(
        pytester: pytest.Pytester, pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``-p pgqueue.testing`` (or ``pytest_plugins = ["pgqueue.testing"]``), as before the
    plugin had a module of its own, with the entry point switched off."""
    monkeypatch.setenv("PGQ_TEST_DSN", pg_server)
    pytester.makepyfile("def test_it(pgqueue_dsn):\n    assert pgqueue_dsn\n")
    result = pytester.runpytest_inprocess("-p", "no:pgqueue", "-p", "pgqueue.testing",
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
