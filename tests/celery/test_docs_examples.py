"""Celery's documented examples, run through pgqueue.celery against a real worker.

Each test is one call from Celery's docs ("First steps with Celery", "Next
steps", the "Calling tasks", "Tasks" and "Canvas" user guides, a few from the
"Signals" and "Monitoring" guides and the result reference), written as the
docs write it (``from tasks import add``; imports inside the test, as the docs'
shell sessions do), and asserts what the docs say it returns. The tasks live in
tests/celery_docs/tasks.py, a module named ``tasks`` as in the tutorial, served by
one ``pgq -A tasks worker`` process for the whole module. The count of passing
tests here is the count of Celery doc calls that behave as documented.

Timing is read from the database (when a job was created, started, finished),
so a countdown is checked as "did not start before", not by sleeping.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import ROOT, _janitor, stop_process

DOCS = ROOT / "tests" / "celery_docs"
QUEUES = "celery,hipri,lopri,priority.high,low-priority"
TIMEOUT = 15  # seconds a get() waits; every call here finishes in well under that
_form: dict[str, str] = {}


def broker_url(dsn: str) -> str:
    """The test DSN (key=value) as the postgresql:// URL a Celery app line holds."""
    params = conninfo_to_dict(dsn)
    dbname = params.pop("dbname")
    query = urllib.parse.urlencode(params)
    return f"postgresql:///{dbname}" + (f"?{query}" if query else "")


def until(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# -- one database, one worker for the module --------------------------------------------
@pytest.fixture(scope="module")
def docs(pg_server: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[dict[str, Any]]:
    """A migrated database, the journal directory, and ``tasks`` importable here."""
    name = f"pgq_docs_{os.getpid()}"
    janitor = _janitor(pg_server, name, template=template_db)
    janitor.drop()
    janitor.init()
    dsn = make_conninfo(pg_server, dbname=name)
    journal = tmp_path_factory.mktemp("celery-docs-journal")
    env = {"CELERY_DOCS_BROKER": broker_url(dsn), "CELERY_DOCS_JOURNAL": str(journal)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    sys.path.insert(0, str(DOCS))
    try:
        yield {"dsn": dsn, "journal": journal, "env": env}
    finally:
        for module in ("tasks", "celeryconfig"):
            loaded = sys.modules.pop(module, None)
            if loaded is not None and hasattr(loaded, "app"):
                loaded.app.close()
        sys.path.remove(str(DOCS))
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        janitor.drop()


def _worker_env(docs: dict[str, Any]) -> dict[str, str]:
    env = {**os.environ, **docs["env"],
           "PYTHONPATH": os.pathsep.join([str(DOCS), str(ROOT)])}
    for variable in ("PGQ_DSN", "PGQ_SCHEMA", "PGQ_APP", "PGQ_QUEUES"):
        env.pop(variable, None)
    return env


def _start(argv: list[str], docs: dict[str, Any], log: Path,
           extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        return subprocess.Popen([sys.executable, "-m", "pgqueue.cli", *argv],
                                env={**_worker_env(docs), **(extra or {})}, cwd=str(DOCS),
                                stdout=out, stderr=subprocess.STDOUT, text=True)


def _warm(proc: subprocess.Popen[str], timeout: float = 30) -> bool:
    """True once the worker has run a task; False if it exited first."""
    from tasks import add

    r = add.delay(0, 0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if r.ready():
            return True
        time.sleep(0.1)
    raise AssertionError("the worker ran nothing within 30 s")


@pytest.fixture(scope="module")
def worker(docs: dict[str, Any]) -> Iterator[subprocess.Popen[str]]:
    """``celery -A tasks worker --loglevel=INFO`` as ``pgq``; the native form if that fails
    (so the rest can run; test_first_steps_worker_command_line then fails)."""
    log = docs["journal"] / "worker.log"
    proc = _start(["-A", "tasks", "worker", "--loglevel=INFO", "-Q", QUEUES, "-c", "4"],
                  docs, log)
    _form["worker"] = "celery"
    if not _warm(proc):
        _form["worker"] = "native"
        proc = _start(["worker", "-A", "tasks:app", "-Q", QUEUES, "-c", "4"], docs, log,
                      {"PGQ_DSN": docs["dsn"]})
        if not _warm(proc):
            raise AssertionError("no worker started:\n" + log.read_text()[-3000:])
    yield proc
    code = stop_process(proc)
    assert code == 0, f"the worker exited {code} on SIGTERM:\n{log.read_text()[-3000:]}"


@pytest.fixture
def w(worker: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """Every test runs with the module's worker up (and fails if it died meanwhile)."""
    assert worker.poll() is None, "the worker died"
    return worker


def job_of(dsn: str, task_id: str) -> dict[str, Any]:
    """The job behind a Celery task id: its queue and timings (seconds from creation)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """SELECT j.queue, extract(epoch FROM j.run_at - j.created_at),
                      extract(epoch FROM j.started_at - j.created_at),
                      extract(epoch FROM j.finished_at - j.created_at)
                 FROM pgqueue.jobs j
                WHERE j.id = coalesce(
                        (SELECT job_id FROM pgqueue.celery_task_ids WHERE task_id = %s),
                        CASE WHEN %s ~ '^[0-9]+$' THEN %s::bigint END)""",
            (task_id, task_id, task_id)).fetchone()
    assert row is not None, f"no job for task id {task_id!r}"
    queue, run_in, started, finished = row
    return {"queue": queue, "run_in": float(run_in),
            "started": None if started is None else float(started),
            "finished": None if finished is None else float(finished)}


def journal_lines(docs: dict[str, Any], name: str, timeout: float = 10) -> list[str]:
    path = docs["journal"] / name
    until(path.exists, timeout)
    return path.read_text().splitlines() if path.exists() else []


# ======================================================================================
# First steps with Celery
# ======================================================================================
def test_first_steps_worker_command_line(w):
    """``celery -A tasks worker --loglevel=INFO`` starts the worker (as ``pgq``)."""
    assert _form["worker"] == "celery", "pgq -A tasks worker --loglevel=INFO did not start"


def test_first_steps_delay_returns_an_async_result(w):
    from tasks import add

    from pgqueue.celery.result import AsyncResult

    result = add.delay(4, 4)
    assert isinstance(result, AsyncResult)
    assert result.get(timeout=TIMEOUT) == 8


def test_first_steps_ready_is_false_until_the_task_has_finished(w):
    from tasks import slow

    result = slow.delay(1)
    assert result.ready() is False
    result.get(timeout=TIMEOUT)
    assert result.ready() is True


def test_first_steps_get_with_timeout(w):
    from tasks import add

    result = add.delay(4, 4)
    assert result.get(timeout=5) == 8


def test_first_steps_conf_update(w):
    from tasks import app

    app.conf.task_serializer = "json"
    assert app.conf.task_serializer == "json"
    assert app.conf.timezone == "Europe/Oslo" and app.conf.enable_utc is True
    assert app.conf.accept_content == ["json"] and app.conf.result_serializer == "json"


def test_first_steps_config_from_object(w):
    from pgqueue.celery import Celery

    app = Celery("tasks", set_as_current=False)  # the tasks module's app stays current
    try:
        app.config_from_object("celeryconfig")
        assert app.conf.timezone == "Europe/Oslo"
        assert app.conf.task_routes == {"tasks.add": "low-priority"}
    finally:
        app.close()


def test_first_steps_task_routes_send_a_task_to_its_queue(w, docs):
    from pgqueue.celery import Celery

    app = Celery("tasks", set_as_current=False)  # the tasks module's app stays current
    try:
        app.config_from_object("celeryconfig")
        result = app.send_task("tasks.add", args=(2, 2))
        assert result.get(timeout=TIMEOUT) == 4
        assert job_of(docs["dsn"], result.id)["queue"] == "low-priority"
    finally:
        app.close()


# ======================================================================================
# Next steps
# ======================================================================================
def test_next_steps_apply_async(w):
    from tasks import add

    assert add.apply_async((2, 2)).get(timeout=TIMEOUT) == 4


def test_next_steps_apply_async_with_queue_and_countdown(w, docs):
    from tasks import add

    result = add.apply_async((2, 2), queue="lopri", countdown=10)
    job = job_of(docs["dsn"], result.id)
    assert job["queue"] == "lopri"
    assert job["run_in"] >= 9.5  # at the earliest 10 seconds after it was sent
    assert result.ready() is False and result.state == "PENDING"
    result.revoke()


def test_next_steps_calling_the_task_runs_it_here(w):
    from tasks import add

    assert add(2, 2) == 4


def test_next_steps_result_id_is_a_string(w):
    from tasks import add, app

    res = add.delay(2, 2)
    assert isinstance(res.id, str) and res.id
    assert res.get(timeout=TIMEOUT) == 4
    assert app.AsyncResult(res.id).get(timeout=TIMEOUT) == 4


@pytest.fixture(scope="module")
def failed(worker):
    """``res = add.delay(2, '2')``: the docs' failing call, finished."""
    from tasks import add

    res = add.delay(2, "2")
    until(res.ready, TIMEOUT)
    return res


def test_next_steps_get_reraises_the_tasks_exception(w, failed):
    with pytest.raises(TypeError, match="unsupported operand"):
        failed.get(timeout=TIMEOUT)


def test_next_steps_get_propagate_false_returns_the_exception(w, failed):
    exc = failed.get(propagate=False)
    assert isinstance(exc, TypeError) and "unsupported operand" in str(exc)


def test_next_steps_failed(w, failed):
    assert failed.failed() is True


def test_next_steps_successful(w, failed):
    assert failed.successful() is False


def test_next_steps_state_failure(w, failed):
    assert failed.state == "FAILURE"


def test_first_steps_traceback(w, failed):
    assert "TypeError" in (failed.traceback or "")
    assert "Traceback" in (failed.traceback or "")


def test_next_steps_unknown_id_is_pending(w):
    from tasks import app

    res = app.AsyncResult("this-id-does-not-exist")
    assert res.state == "PENDING"


def test_next_steps_retried_task_is_in_state_retry(w):
    from tasks import retry_custom_delay

    res = retry_custom_delay.delay(2, 3)
    assert until(lambda: res.state == "RETRY", 5), f"state stayed {res.state}"
    assert res.get(timeout=TIMEOUT) == 5 and res.state == "SUCCESS"


def test_next_steps_signature_repr(w):
    from tasks import add

    assert repr(add.signature((2, 2), countdown=10)) == "tasks.add(2, 2)"


def test_next_steps_s_shortcut_repr(w):
    from tasks import add

    assert repr(add.s(2, 2)) == "tasks.add(2, 2)"


def test_next_steps_complete_signature_delay(w):
    from tasks import add

    s1 = add.s(2, 2)
    res = s1.delay()
    assert res.get(timeout=TIMEOUT) == 4


def test_next_steps_partial_signature_delay(w):
    from tasks import add

    s2 = add.s(2)
    res = s2.delay(8)
    assert res.get(timeout=TIMEOUT) == 10


def test_next_steps_partial_kwargs_take_precedence(w):
    from tasks import echo

    s3 = echo.s(2, 2, debug=True)
    assert s3.delay(debug=False).get(timeout=TIMEOUT) == {
        "args": [2, 2], "kwargs": {"debug": False}}


def test_next_steps_group(w):
    from tasks import add

    from pgqueue.celery import group

    assert group(add.s(i, i) for i in range(10))().get(timeout=TIMEOUT) == \
        [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_next_steps_partial_group(w):
    from tasks import add

    from pgqueue.celery import group

    g = group(add.s(i) for i in range(10))
    assert g(10).get(timeout=TIMEOUT) == [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]


def test_next_steps_chain(w):
    from tasks import add, mul

    from pgqueue.celery import chain

    assert chain(add.s(4, 4) | mul.s(8))().get(timeout=TIMEOUT) == 64


def test_next_steps_partial_chain(w):
    from tasks import add, mul

    from pgqueue.celery import chain

    g = chain(add.s(4) | mul.s(8))
    assert g(4).get(timeout=TIMEOUT) == 64


def test_next_steps_chain_with_pipes(w):
    from tasks import add, mul

    assert (add.s(4, 4) | mul.s(8))().get(timeout=TIMEOUT) == 64


def test_next_steps_chord(w):
    from tasks import add, xsum

    from pgqueue.celery import chord

    assert chord((add.s(i, i) for i in range(10)), xsum.s())().get(timeout=TIMEOUT) == 90


def test_next_steps_group_chained_to_a_task_is_a_chord(w):
    from tasks import add, xsum

    from pgqueue.celery import group

    assert (group(add.s(i, i) for i in range(10)) | xsum.s())().get(timeout=TIMEOUT) == 90


def test_next_steps_task_routes_setting(w, docs):
    from tasks import add, app

    before = app.conf.task_routes
    app.conf.update(task_routes={"tasks.add": {"queue": "hipri"}})
    try:
        res = add.delay(2, 2)
        assert res.get(timeout=TIMEOUT) == 4
        assert job_of(docs["dsn"], res.id)["queue"] == "hipri"
    finally:
        app.conf.update(task_routes=before)
    assert job_of(docs["dsn"], add.delay(1, 1).id)["queue"] == "celery"


def test_next_steps_queue_at_runtime(w, docs):
    from tasks import add

    res = add.apply_async((2, 2), queue="hipri")
    assert res.get(timeout=TIMEOUT) == 4
    assert job_of(docs["dsn"], res.id)["queue"] == "hipri"


def test_next_steps_inspect_active(w):
    from tasks import app, slow

    res = slow.delay(2)
    assert until(lambda: res.state == "STARTED", 5)
    active = app.control.inspect().active()
    assert isinstance(active, dict) and active
    running = [t for tasks in active.values() for t in tasks]
    assert any(t["id"] == res.id and t["name"] == "tasks.slow" for t in running), active
    res.get(timeout=TIMEOUT)


def test_next_steps_inspect_active_command_line(w, docs):
    from tasks import slow

    res = slow.delay(2)
    assert until(lambda: res.state == "STARTED", 5)
    done = subprocess.run([sys.executable, "-m", "pgqueue.cli", "-A", "tasks", "inspect",
                           "active"], env=_worker_env(docs), cwd=str(DOCS), text=True,
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert res.id in done.stdout
    res.get(timeout=TIMEOUT)


# ======================================================================================
# Calling tasks
# ======================================================================================
def test_calling_delay_with_args_and_kwargs(w):
    from tasks import echo

    assert echo.delay(1, kwarg="value").get(timeout=TIMEOUT) == {
        "args": [1], "kwargs": {"kwarg": "value"}}


def test_calling_apply_async_args_tuple_and_kwargs_dict(w):
    from tasks import echo

    assert echo.apply_async((1,), {"kwarg": "value"}).get(timeout=TIMEOUT) == {
        "args": [1], "kwargs": {"kwarg": "value"}}


def test_calling_apply_async_args_and_kwargs_keywords(w):
    from tasks import echo

    res = echo.apply_async(args=["a1", "a2"], kwargs={"kwarg1": "x", "kwarg2": "y"})
    assert res.get(timeout=TIMEOUT) == {"args": ["a1", "a2"],
                                        "kwargs": {"kwarg1": "x", "kwarg2": "y"}}


def test_calling_signature_apply_async(w):
    from tasks import echo

    res = echo.s("arg1", "arg2", kwarg1="x", kwargs2="y").apply_async()
    assert res.get(timeout=TIMEOUT) == {"args": ["arg1", "arg2"],
                                        "kwargs": {"kwarg1": "x", "kwargs2": "y"}}


def test_calling_send_task_by_name(w):
    from tasks import app

    assert app.send_task("tasks.add", args=(2, 2)).get(timeout=TIMEOUT) == 4


@pytest.fixture(scope="module")
def timed(worker):
    """The calls that wait, sent together so their waits overlap."""
    from tasks import add

    return {
        "countdown": add.apply_async((2, 2), countdown=3),
        "eta": add.apply_async((2, 2), eta=datetime.now(UTC) + timedelta(seconds=2)),
        # The older docs' idiom: a naive UTC datetime (enable_utc is on).
        "naive_eta": add.apply_async((2, 2), eta=datetime.utcnow() + timedelta(seconds=2)),
        "expired": add.apply_async((10, 10), countdown=2, expires=1),
    }


def test_calling_countdown(w, docs, timed):
    result = timed["countdown"]
    assert result.get(timeout=TIMEOUT) == 4  # this takes at least 3 seconds to return
    assert job_of(docs["dsn"], result.id)["started"] >= 2.9


def test_calling_eta_aware_datetime(w, docs, timed):
    result = timed["eta"]
    assert result.get(timeout=TIMEOUT) == 4
    assert job_of(docs["dsn"], result.id)["started"] >= 1.8


def test_calling_eta_naive_utc_datetime(w, docs, timed):
    result = timed["naive_eta"]
    assert result.get(timeout=TIMEOUT) == 4
    assert 1.8 <= job_of(docs["dsn"], result.id)["started"] < 60


def test_calling_eta_tomorrow(w, docs):
    from tasks import add

    tomorrow = datetime.now(UTC) + timedelta(days=1)
    result = add.apply_async((2, 2), eta=tomorrow)
    assert abs(job_of(docs["dsn"], result.id)["run_in"] - 86400) < 60
    assert result.state == "PENDING"
    result.revoke()


def test_calling_countdown_with_expires(w, docs):
    from tasks import add

    result = add.apply_async((2, 2), countdown=60, expires=120)
    assert 59 <= job_of(docs["dsn"], result.id)["run_in"] <= 61
    assert result.state == "PENDING"
    result.revoke()


def test_calling_expires_seconds(w):
    from tasks import add

    assert add.apply_async((10, 10), expires=60).get(timeout=TIMEOUT) == 20


def test_calling_expires_datetime(w):
    from tasks import add

    kwargs: dict[str, Any] = {}
    res = add.apply_async((10, 10), kwargs,
                          expires=datetime.now(UTC) + timedelta(days=1))
    assert res.get(timeout=TIMEOUT) == 20


def test_calling_expired_task_is_revoked(w, timed):
    from pgqueue.celery.exceptions import TaskRevokedError

    result = timed["expired"]
    assert until(lambda: result.state == "REVOKED", TIMEOUT), result.state
    with pytest.raises(TaskRevokedError):
        result.get(timeout=TIMEOUT)


def test_calling_link_callback(w):
    from tasks import add

    res = add.apply_async((2, 2), link=add.s(16))
    assert res.get(timeout=TIMEOUT) == 4
    assert until(lambda: res.children, 5), "no children recorded"
    assert res.children[0].get(timeout=TIMEOUT) == 20


def test_calling_link_error_errback(w, docs):
    from tasks import add, error_handler

    res = add.apply_async((2, "2"), link_error=error_handler.s())
    with pytest.raises(TypeError):
        res.get(timeout=TIMEOUT)
    lines = journal_lines(docs, f"errback-{res.id}")
    assert lines and lines[0].startswith(f"Task {res.id} raised exception: TypeError(")


def test_calling_link_list(w):
    from tasks import add, mul

    res = add.apply_async((2, 2), link=[add.s(16), mul.s(10)])
    assert res.get(timeout=TIMEOUT) == 4
    assert until(lambda: len(res.children) == 2, 5), res.children
    assert sorted(c.get(timeout=TIMEOUT) for c in res.children) == [20, 40]


def test_calling_on_message(w):
    from tasks import hello

    bodies: list[dict[str, Any]] = []
    r = hello.apply_async(args=(1, 1))
    assert r.get(on_message=bodies.append, propagate=False, timeout=TIMEOUT) == \
        "hello world: 2"
    progress = [b["result"] for b in bodies if b["status"] == "PROGRESS"]
    assert progress == [{"progress": 50}, {"progress": 90}], bodies
    assert bodies[-1]["status"] == "SUCCESS" and bodies[-1]["result"] == "hello world: 2"
    assert all(b["task_id"] == r.id for b in bodies)


def test_calling_retry_false(w):
    from tasks import add

    assert add.apply_async((2, 2), retry=False).get(timeout=TIMEOUT) == 4


def test_calling_retry_policy(w):
    from tasks import add

    res = add.apply_async((2, 2), retry=True, retry_policy={
        "max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2})
    assert res.get(timeout=TIMEOUT) == 4


def test_calling_serializer_json(w):
    from tasks import add

    assert add.apply_async((10, 10), serializer="json").get(timeout=TIMEOUT) == 20


def test_calling_compression(w):
    from tasks import add

    assert add.apply_async((2, 2), compression="zlib").get(timeout=TIMEOUT) == 4


def test_calling_routing_queue_option(w, docs):
    from tasks import add

    res = add.apply_async((2, 2), queue="priority.high")
    assert res.get(timeout=TIMEOUT) == 4
    assert job_of(docs["dsn"], res.id)["queue"] == "priority.high"


def test_calling_priority(w):
    from tasks import add

    assert add.apply_async((2, 2), priority=9).get(timeout=TIMEOUT) == 4


def test_calling_ignore_result_true(w):
    from tasks import add

    result = add.apply_async((1, 2), ignore_result=True)
    assert result.get(timeout=TIMEOUT) is None


def test_calling_ignore_result_false(w):
    from tasks import add

    result = add.apply_async((1, 2), ignore_result=False)
    assert result.get(timeout=TIMEOUT) == 3


def test_calling_own_task_id(w):
    from tasks import add, app

    from pgqueue.celery.result import AsyncResult

    result = add.apply_async((2, 2), task_id="my_own_task_id")
    assert result.id == "my_own_task_id"
    assert result.get(timeout=TIMEOUT) == 4
    assert AsyncResult("my_own_task_id", app=app).get(timeout=TIMEOUT) == 4


def test_calling_headers(w):
    from tasks import add

    result = add.apply_async((2, 2), headers={"periodic_task_name": "task_name"})
    assert result.get(timeout=TIMEOUT) == 4


def test_calling_apply_runs_eagerly(w):
    from tasks import add

    from pgqueue.celery.result import EagerResult

    result = add.apply((2, 2))
    assert isinstance(result, EagerResult)
    assert result.get() == 4 and result.state == "SUCCESS"


# ======================================================================================
# Tasks (user guide)
# ======================================================================================
def test_tasks_automatic_name(w):
    from tasks import add

    assert add.name == "tasks.add"


def test_tasks_explicit_name(w):
    from tasks import add_named

    assert add_named.name == "sum-of-two-numbers"
    assert add_named.delay(1, 2).get(timeout=TIMEOUT) == 3


def test_tasks_shared_task(w):
    from tasks import shared_add

    assert shared_add.name == "tasks.shared_add"
    assert shared_add.delay(2, 2).get(timeout=TIMEOUT) == 4


def test_tasks_bound_task_request(w):
    from tasks import dump_context

    res = dump_context.delay(2, 3)
    assert res.get(timeout=TIMEOUT) == {"id": res.id, "args": [2, 3], "kwargs": {}}


def test_tasks_get_task_logger(w):
    import logging

    from tasks import logged_add

    from pgqueue.celery.utils.log import get_task_logger

    assert isinstance(get_task_logger(__name__), logging.Logger)
    assert logged_add.delay(2, 3).get(timeout=TIMEOUT) == 5


def test_tasks_argument_checking(w):
    from tasks import add

    with pytest.raises(TypeError):
        add.delay(8)


def test_tasks_argument_checking_disabled(w):
    from tasks import add_untyped

    from pgqueue.celery.result import AsyncResult

    res = add_untyped.delay(8)  # works locally; the worker raises
    assert isinstance(res, AsyncResult)
    with pytest.raises(TypeError):
        res.get(timeout=TIMEOUT)


def test_tasks_retry_with_exc(w):
    from tasks import send_twitter_status

    res = send_twitter_status.delay("oauth", "hello")
    assert res.get(timeout=TIMEOUT) == "oauth posted 'hello' after 2 retries"


def test_tasks_retry_raises_by_itself(w):
    from tasks import retry_without_raise

    assert retry_without_raise.delay().get(timeout=TIMEOUT) == 2


def test_tasks_max_retries_defaults_to_3(w):
    from tasks import LoginError, always_login_error

    assert always_login_error.max_retries == 3
    with pytest.raises(LoginError, match="attempt 3"):
        always_login_error.delay().get(timeout=TIMEOUT)


def test_tasks_default_retry_delay_is_3_minutes(w):
    from tasks import add, retry_custom_delay

    assert add.default_retry_delay == 180
    assert retry_custom_delay.default_retry_delay == 30 * 60


def test_tasks_max_retries_exceeded_without_exc(w):
    from tasks import retry_without_exc

    from pgqueue.celery.exceptions import MaxRetriesExceededError

    with pytest.raises(MaxRetriesExceededError):
        retry_without_exc.delay().get(timeout=TIMEOUT)


def test_tasks_autoretry_for_with_retry_kwargs(w):
    from tasks import refresh_timeline

    assert refresh_timeline.delay("ada").get(timeout=TIMEOUT) == \
        "timeline of ada after 2 retries"


def test_tasks_autoretry_gives_up_with_the_exception(w):
    from tasks import FailWhaleError, refresh_timeline_down

    with pytest.raises(FailWhaleError, match="no timeline for ada"):
        refresh_timeline_down.delay("ada").get(timeout=TIMEOUT)


def test_tasks_retry_backoff(w, docs):
    from tasks import refresh_timeline_backoff

    res = refresh_timeline_backoff.delay("ada")
    assert res.get(timeout=TIMEOUT) == 2
    assert job_of(docs["dsn"], res.id)["finished"] >= 2.8  # waited 1 s, then 2 s


def test_tasks_states_module(w):
    from pgqueue.celery import states

    assert (states.PENDING, states.STARTED, states.SUCCESS, states.FAILURE, states.RETRY,
            states.REVOKED) == ("PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY",
                                "REVOKED")
    assert {"SUCCESS", "FAILURE", "REVOKED"} <= set(states.READY_STATES)
    assert "FAILURE" in states.PROPAGATE_STATES and "PENDING" in states.UNREADY_STATES


def test_tasks_track_started(w):
    from tasks import slow

    res = slow.delay(1)
    assert until(lambda: res.state == "STARTED", 5), res.state
    assert res.get(timeout=TIMEOUT) == 1


def test_tasks_custom_state_progress(w):
    from tasks import upload_files

    res = upload_files.delay(["a", "b", "c"])
    assert until(lambda: res.state == "PROGRESS", 5), res.state
    info = res.info
    assert set(info) == {"current", "total"} and info["total"] == 3
    assert res.get(timeout=TIMEOUT) == 3


def test_tasks_ignore_after_storing_the_result_manually(w):
    from tasks import get_tweets

    res = get_tweets.delay("ada")
    assert res.get(timeout=TIMEOUT) == ["ada: first", "ada: second"]
    assert res.state == "SUCCESS"


def test_tasks_reject_without_requeue_fails(w):
    from tasks import render_scene

    res = render_scene.delay("scene.blend")
    assert until(res.ready, TIMEOUT)
    assert res.failed() is True and res.state == "FAILURE"


def test_tasks_base_class_on_failure(w, docs):
    from tasks import add_key_error

    res = add_key_error.delay(2, 2)
    with pytest.raises(KeyError):
        res.get(timeout=TIMEOUT)
    lines = journal_lines(docs, f"handlers-{res.id}")
    assert f"{res.id!r} failed: KeyError()" in lines


def test_tasks_handlers_on_success_and_after_return(w, docs):
    from tasks import my_task

    res = my_task.delay(2, 3)
    assert res.get(timeout=TIMEOUT) == 5
    until(lambda: len(journal_lines(docs, f"handlers-{res.id}")) >= 2, 5)
    lines = [ln for ln in journal_lines(docs, f"handlers-{res.id}") if "starting" not in ln]
    assert lines == [f"Task {res.id} succeeded with result: 5",
                     f"Task {res.id} finished with status: SUCCESS"]


def test_tasks_handler_before_start(w, docs):
    from tasks import my_task

    res = my_task.delay(4, 5)
    assert res.get(timeout=TIMEOUT) == 9
    lines = journal_lines(docs, f"handlers-{res.id}")
    assert lines and lines[0] == f"Task {res.id} starting with args [4, 5]"


def test_tasks_custom_base_class_state_per_process(w):
    from tasks import process_rows

    first = process_rows.delay().get(timeout=TIMEOUT)
    second = process_rows.delay().get(timeout=TIMEOUT)
    assert first == second == 1  # the db attribute connected once in the worker


# -- results (the result object the docs use throughout) -------------------------------
def test_results_async_result_from_a_string_id(w):
    from tasks import add

    from pgqueue.celery.result import AsyncResult

    task_id = str(add.delay(2, 2).id)  # as a web session keeps it
    res = AsyncResult(task_id)
    assert res.get(timeout=TIMEOUT) == 4 and res.state == res.status == "SUCCESS"


def test_results_forget(w):
    from tasks import add, app

    res = add.delay(2, 2)
    assert res.get(timeout=TIMEOUT) == 4
    res.forget()
    assert app.AsyncResult(res.id).state == "PENDING"


def test_results_revoke(w):
    from tasks import add

    from pgqueue.celery.exceptions import TaskRevokedError

    res = add.apply_async((2, 2), countdown=5)
    res.revoke()
    assert until(lambda: res.state == "REVOKED", 10), res.state
    with pytest.raises(TaskRevokedError):
        res.get(timeout=TIMEOUT)


def test_results_control_revoke(w):
    from tasks import add, app

    res = add.apply_async((2, 2), countdown=5)
    app.control.revoke(res.id)
    assert until(lambda: res.state == "REVOKED", 10), res.state


def test_results_revoke_terminate(w, docs):
    from tasks import slow_then_note

    note = f"note-{time.monotonic_ns()}"
    res = slow_then_note.delay(3, note)
    assert until(lambda: res.state == "STARTED", 5), res.state
    started = time.monotonic()
    res.revoke(terminate=True)
    assert until(lambda: res.state == "REVOKED", 5), res.state
    time.sleep(max(0.0, started + 4.5 - time.monotonic()))  # past its 3 s of sleep
    assert not (docs["journal"] / note).exists(), "terminate=True let the task run to its end"
    assert res.state == "REVOKED"


def test_results_connection_error_handling():
    from pgqueue.celery import Celery

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Celery("tasks", broker=f"postgresql://postgres@127.0.0.1:{port}/nowhere",
                 set_as_current=False)
    try:
        @app.task
        def add(x, y):
            return x + y

        with pytest.raises(add.OperationalError):
            add.delay(2, 2)
    finally:
        app.close()


# -- inspecting and controlling workers (Next steps "Remote control", Monitoring guide) --
def test_control_inspect_registered(w):
    from tasks import app

    registered = app.control.inspect().registered()
    assert registered and all("tasks.add" in names for names in registered.values()), \
        registered


def test_control_inspect_scheduled(w):
    from tasks import add, app

    res = add.apply_async((2, 2), countdown=30)
    try:
        scheduled = app.control.inspect().scheduled()
        entries = [e for items in (scheduled or {}).values() for e in items]
        assert any(e["request"]["id"] == res.id for e in entries), scheduled
    finally:
        res.revoke()


def test_control_inspect_stats(w):
    from tasks import app

    stats = app.control.inspect().stats()
    assert isinstance(stats, dict) and stats and all(isinstance(v, dict)
                                                     for v in stats.values()), stats


def test_control_rate_limit_command_line(w, docs):
    done = subprocess.run([sys.executable, "-m", "pgqueue.cli", "-A", "tasks", "control",
                           "rate_limit", "tasks.rated", "10/m"], env=_worker_env(docs),
                          cwd=str(DOCS), text=True, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "new rate limit set successfully" in done.stdout, done.stdout


def test_control_rate_limit_api(w):
    from tasks import app, rated

    app.control.rate_limit("tasks.rated", "1000/m")
    assert rated.delay(7).get(timeout=TIMEOUT) == 7


def test_tasks_request_attributes(w):
    from tasks import request_info

    res = request_info.delay()
    info = res.get(timeout=TIMEOUT)
    assert info["id"] == res.id and info["retries"] == 0 and info["group"] is None
    assert info["is_eager"] is False and info["called_directly"] is False
    assert info["routing_key"] == "celery" and info["hostname"]


def test_tasks_request_group(w):
    from tasks import request_info

    from pgqueue.celery import group

    res = group(request_info.s(), request_info.s())()
    infos = res.get(timeout=TIMEOUT)
    assert [i["group"] for i in infos] == [res.id, res.id]


def test_tasks_registry(w):
    from tasks import add, app

    assert "tasks.add" in app.tasks and app.tasks["tasks.add"] is add


def test_tasks_throws(w):
    from tasks import get_foo

    res = get_foo.delay()
    with pytest.raises(KeyError):
        res.get(timeout=TIMEOUT)
    assert res.state == "FAILURE"


# ======================================================================================
# Canvas
# ======================================================================================
def test_canvas_signature_by_name(w):
    from pgqueue.celery import signature

    s = signature("tasks.add", args=(2, 2), countdown=10)
    assert repr(s) == "tasks.add(2, 2)" and s.options == {"countdown": 10}
    assert signature("tasks.add", args=(2, 2)).delay().get(timeout=TIMEOUT) == 4


def test_canvas_signature_kwargs_repr(w):
    from tasks import add

    assert repr(add.s(2, 2, debug=True)) == "tasks.add(2, 2, debug=True)"


def test_canvas_signature_fields(w):
    from tasks import add

    s = add.signature((2, 2), {"debug": True}, countdown=10)
    assert s.args == (2, 2)
    assert s.kwargs == {"debug": True}
    assert s.options == {"countdown": 10}


def test_canvas_calling_a_signature_runs_it_here(w):
    from tasks import add

    assert add.s(2, 2)() == 4


def test_canvas_signature_apply_async_with_options(w):
    from tasks import add

    assert add.signature((2, 2), countdown=1).apply_async().get(timeout=TIMEOUT) == 4


def test_canvas_set_options_then_delay(w):
    from tasks import add

    sig = add.signature((2, 2)).set(countdown=1)
    assert sig.options == {"countdown": 1}
    assert sig.delay().get(timeout=TIMEOUT) == 4


def test_canvas_partial_args_are_prepended(w):
    from tasks import add, subtract

    assert add.s(2).apply_async((4,)).get(timeout=TIMEOUT) == 6
    assert subtract.s(10).delay(30).get(timeout=TIMEOUT) == 20


def test_canvas_partial_options_take_precedence(w, docs):
    from tasks import add

    s = add.signature((2, 2), countdown=10)
    res = s.apply_async(countdown=1)  # countdown is now 1
    assert res.get(timeout=TIMEOUT) == 4
    assert job_of(docs["dsn"], res.id)["run_in"] < 5


def test_canvas_clone(w):
    from tasks import add

    s = add.s(2)
    assert repr(s.clone(args=(4,), kwargs={"debug": True})) == "tasks.add(4, 2, debug=True)"


def test_canvas_immutable_callback(w):
    from tasks import add, reset_buffers

    res = add.apply_async((2, 2), link=reset_buffers.si())
    assert res.get(timeout=TIMEOUT) == 4
    assert until(lambda: res.children, 5)
    assert res.children[0].get(timeout=TIMEOUT) == "reset with 0 arguments"


def test_canvas_invert_shortcut(w):
    from tasks import add

    assert ~add.s(2, 2) == 4


def test_canvas_simple_chain(w):
    from tasks import add

    from pgqueue.celery import chain

    res = chain(add.s(2, 2), add.s(4), add.s(8))()
    assert res.get(timeout=TIMEOUT) == 16


def test_canvas_chain_with_pipes(w):
    from tasks import add

    assert (add.s(2, 2) | add.s(4) | add.s(8))().get(timeout=TIMEOUT) == 16


def test_canvas_chain_of_immutable_signatures(w):
    from tasks import add

    res = (add.si(2, 2) | add.si(4, 4) | add.si(8, 8))()
    assert res.get(timeout=TIMEOUT) == 16
    assert res.parent.get(timeout=TIMEOUT) == 8
    assert res.parent.parent.get(timeout=TIMEOUT) == 4


def test_canvas_simple_group(w):
    from tasks import add

    from pgqueue.celery import group

    res = group(add.s(i, i) for i in range(10))()
    assert res.get(timeout=TIMEOUT) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_canvas_chord_with_immutable_body(w):
    from tasks import add, notify_complete

    from pgqueue.celery import chord

    res = chord((add.s(i, i) for i in range(3)), notify_complete.si("import-7")).apply_async()
    assert res.get(timeout=TIMEOUT) == "import-7 complete"


def test_canvas_partial_chain_called_with_an_argument(w):
    from tasks import add, mul

    c1 = (add.s(4) | mul.s(8))
    assert c1(16).get(timeout=TIMEOUT) == 160


def test_canvas_chains_combine(w):
    from tasks import add, mul

    c2 = (add.s(4, 16) | mul.s(2) | (add.s(4) | mul.s(8)))
    assert c2().get(timeout=TIMEOUT) == 352


def test_canvas_chain_into_a_group_forwards_the_result(w):
    from tasks import create_user, import_contacts, send_welcome_email

    from pgqueue.celery import group

    new_user_workflow = (create_user.s() | group(import_contacts.s(),
                                                 send_welcome_email.s()))
    res = new_user_workflow.delay(username="artv", first="Art", last="Vandelay",
                                  email="art@vandelay.com")
    assert res.get(timeout=TIMEOUT) == ["imported the contacts of artv", "welcomed artv"]


def test_canvas_chain_into_a_group_of_immutable_signatures(w):
    from tasks import add

    from pgqueue.celery import group

    res = (add.s(4, 4) | group(add.si(i, i) for i in range(10)))()
    assert res.get(timeout=TIMEOUT) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert res.parent.get(timeout=TIMEOUT) == 8


def test_canvas_link_children(w):
    from tasks import add, mul

    res = add.apply_async((2, 2), link=mul.s(16))
    assert res.get(timeout=TIMEOUT) == 4
    assert until(lambda: res.children, 5)
    assert res.children[0].get(timeout=TIMEOUT) == 64


def test_canvas_collect(w):
    from tasks import add, mul

    res = add.apply_async((2, 2), link=mul.s(16))
    assert res.get(timeout=TIMEOUT) == 4
    assert until(lambda: res.children and res.children[0].ready(), 5)
    collected = list(res.collect())
    assert [value for _, value in collected] == [4, 64]
    assert collected[0][0].id == res.id


def test_canvas_on_error(w, docs):
    from tasks import add, log_error

    res = add.s(2, "2").on_error(log_error.s()).delay()
    with pytest.raises(TypeError):
        res.get(timeout=TIMEOUT)
    lines = journal_lines(docs, f"errback-{res.id}")
    assert any(res.id in ln and "unsupported operand" in ln for ln in lines), lines


def test_canvas_chain_parents(w):
    from tasks import add, mul

    from pgqueue.celery import chain

    res = chain(add.s(4, 4), mul.s(8), mul.s(10))()
    assert res.get(timeout=TIMEOUT) == 640
    assert res.parent.get(timeout=TIMEOUT) == 64
    assert res.parent.parent.get(timeout=TIMEOUT) == 8


def test_canvas_group_of_two(w):
    from tasks import add

    from pgqueue.celery import group

    g = group(add.s(2, 2), add.s(4, 4))
    res = g()
    assert res.get(timeout=TIMEOUT) == [4, 8]


def test_canvas_group_result(w):
    from tasks import add

    from pgqueue.celery import group
    from pgqueue.celery.result import GroupResult

    job = group([add.s(2, 2), add.s(4, 4), add.s(8, 8), add.s(16, 16), add.s(32, 32)])
    result = job.apply_async()
    assert isinstance(result, GroupResult)
    assert result.get(timeout=TIMEOUT) == [4, 8, 16, 32, 64]
    assert result.ready() is True and result.successful() is True
    assert result.failed() is False and result.waiting() is False
    assert result.completed_count() == 5
    assert result.join(timeout=TIMEOUT) == [4, 8, 16, 32, 64]


def test_canvas_chord_of_a_hundred(w):
    from tasks import add, tsum

    from pgqueue.celery import chord

    callback = tsum.s()
    header = [add.s(i, i) for i in range(100)]
    result = chord(header)(callback)
    assert result.get(timeout=30) == 9900


def test_canvas_chord_error(w):
    from tasks import add, raising_task, tsum

    from pgqueue.celery import chord

    result = chord([add.s(4, 4), raising_task.s(), add.s(8, 8)], tsum.s())()
    with pytest.raises(Exception) as raised:
        result.get(timeout=TIMEOUT)
    assert type(raised.value).__name__ == "ChordError"
    assert "ValueError" in str(raised.value) and "something something" in str(raised.value)


def test_canvas_chord_errback(w, docs):
    from tasks import add, on_chord_error, raising_task, tsum

    from pgqueue.celery import group

    c = (group([add.s(1, 1), raising_task.s()]) | tsum.s().on_error(on_chord_error.s()))
    c.delay()
    lines = journal_lines(docs, "chord-errors")
    assert lines and "raised error" in lines[0], lines


def test_canvas_map(w):
    from tasks import tsum

    assert ~tsum.map([list(range(10)), list(range(100))]) == [45, 4950]


def test_canvas_starmap(w):
    from tasks import add

    assert ~add.starmap(zip(range(10), range(10)))  # noqa: B905 == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_canvas_chunks(w):
    from tasks import add

    res = add.chunks(zip(range(100), range(100)), 10)()  # noqa: B905
    assert res.get(timeout=TIMEOUT) == [[2 * i for i in range(k, k + 10)]
                                        for k in range(0, 100, 10)]


def test_canvas_single_task_group_is_unrolled_in_a_chain(w):
    from tasks import add

    from pgqueue.celery import chain, group

    assert chain(group(add.s(1, 1)), add.s(2))().get(timeout=TIMEOUT) == 4


def test_canvas_chain_repr(w):
    from tasks import add, mul

    from pgqueue.celery import chain

    assert repr(chain(add.s(4, 4), mul.s(8), mul.s(10))) == \
        "tasks.add(4, 4) | tasks.mul(8) | tasks.mul(10)"


def test_canvas_signature_link(w):
    from tasks import add, mul

    s = add.s(2, 2)
    s.link(mul.s(4))
    res = s.delay()
    assert res.get(timeout=TIMEOUT) == 4
    assert until(lambda: res.children, 5)
    assert res.children[0].get(timeout=TIMEOUT) == 16


def test_canvas_immutable_signature_option(w):
    from tasks import add, reset_buffers

    res = add.apply_async((2, 2), link=reset_buffers.signature(immutable=True))
    assert res.get(timeout=TIMEOUT) == 4
    assert until(lambda: res.children, 5)
    assert res.children[0].get(timeout=TIMEOUT) == "reset with 0 arguments"


def test_canvas_group_link_error_calls_the_errback_per_failure(w, docs):
    from tasks import fail, log_error

    from pgqueue.celery import group

    g = group(fail.s(), fail.s())
    g.link_error(log_error.s())
    res = g()
    ids = [r.id for r in res.results]
    with pytest.raises(RuntimeError):
        res.get(timeout=TIMEOUT)
    for task_id in ids:
        lines = journal_lines(docs, f"errback-{task_id}")
        assert any("fail() always fails" in ln for ln in lines), (task_id, lines)


def test_canvas_starmap_with_countdown(w, docs):
    from tasks import add

    res = add.starmap(zip(range(10), range(10))).apply_async(countdown=10)  # noqa: B905
    assert job_of(docs["dsn"], res.id)["run_in"] >= 9.5
    res.revoke()


def test_canvas_chunks_as_a_skewed_group(w, docs):
    from tasks import add

    g = add.chunks(zip(range(20), range(20)), 10).group()  # noqa: B905
    res = g.skew(start=1, stop=2)()
    assert res.get(timeout=TIMEOUT) == [[2 * i for i in range(10)],
                                        [2 * i for i in range(10, 20)]]
    waits = sorted(job_of(docs["dsn"], r.id)["run_in"] for r in res.results)
    assert waits[0] >= 0.9 and waits[1] >= 1.9, waits


# -- more of the Tasks guide -------------------------------------------------------------
def test_tasks_retry_with_max_retries_at_the_call(w):
    from tasks import refresh_timeline_manual

    assert refresh_timeline_manual.delay("ada").get(timeout=TIMEOUT) == 4


def test_tasks_dont_autoretry_for(w):
    from tasks import picky

    assert picky.delay("runtime").get(timeout=TIMEOUT) == 1  # autoretried once
    with pytest.raises(ValueError):
        picky.delay("value").get(timeout=TIMEOUT)  # excluded: fails at once


def test_tasks_synchronous_subtask_is_refused(w):
    from tasks import update_page_info

    with pytest.raises(RuntimeError, match=r"(?i)never call result\.get\(\) within a task"):
        update_page_info.delay("https://example.com").get(timeout=TIMEOUT)


def test_tasks_synchronous_subtask_allowed_explicitly(w):
    from tasks import update_page_info_anyway

    assert update_page_info_anyway.delay("https://example.com").get(timeout=TIMEOUT) == \
        "<html>https://example.com</html>"


def test_tasks_soft_time_limit(w):
    from tasks import mytask_soft_limited

    assert mytask_soft_limited.delay().get(timeout=TIMEOUT) == "cleaned up in a hurry"


def test_tasks_hard_time_limit(w):
    from tasks import mytask_hard_limited

    from pgqueue.celery.exceptions import TimeLimitExceeded

    res = mytask_hard_limited.delay()
    with pytest.raises(TimeLimitExceeded):
        res.get(timeout=TIMEOUT)
    assert res.state == "FAILURE"


def test_tasks_app_wide_task_cls(w):
    from tasks import DatabaseTask

    from pgqueue.celery import Celery

    app = Celery("tasks", task_cls="tasks:DatabaseTask", set_as_current=False)
    try:
        @app.task
        def process():
            return 1

        assert isinstance(process, DatabaseTask) and hasattr(process, "db")
    finally:
        app.close()


def test_tasks_gen_task_name(w):
    from pgqueue.celery import Celery

    class MyCelery(Celery):
        def gen_task_name(self, name, module):
            if module.endswith(".tasks"):
                module = module[:-6]
            return super().gen_task_name(name, module)

    app = MyCelery("main", set_as_current=False)
    try:
        def taskA():
            return "A"

        taskA.__module__ = "moduleA.tasks"
        assert app.task(taskA).name == "moduleA.taskA"
    finally:
        app.close()


def test_results_get_timeout_raises_timeout_error(w):
    from tasks import slow

    from pgqueue.celery.exceptions import TimeoutError

    res = slow.delay(1)
    with pytest.raises(TimeoutError):
        res.get(timeout=0.2)
    assert res.get(timeout=TIMEOUT) == 1


def test_results_group_result_save_and_restore(w):
    from tasks import add, app

    from pgqueue.celery import group
    from pgqueue.celery.result import GroupResult

    res = group(add.s(1, 1), add.s(2, 2)).apply_async()
    res.save()
    restored = GroupResult.restore(res.id, app=app)
    assert restored is not None and restored.get(timeout=TIMEOUT) == [2, 4]


# -- Signals guide ------------------------------------------------------------------------
def test_signals_after_task_publish_with_a_sender(w):
    from tasks import add, mul

    from pgqueue.celery.signals import after_task_publish

    published: list[str] = []

    @after_task_publish.connect(sender="tasks.add")
    def task_sent_handler(sender=None, headers=None, body=None, **kwargs):
        info = headers if "task" in headers else body
        published.append(info["id"])

    try:
        res = add.delay(2, 2)
        mul.delay(2, 2)
    finally:
        after_task_publish.disconnect(task_sent_handler, sender="tasks.add")
    assert published == [res.id]


def test_signals_task_success_prerun_postrun(w, docs):
    from tasks import add

    res = add.delay(2, 2)
    assert res.get(timeout=TIMEOUT) == 4
    until(lambda: len(journal_lines(docs, f"signals-{res.id}")) >= 3, 5)
    assert journal_lines(docs, f"signals-{res.id}") == [
        "prerun tasks.add", "success tasks.add 4", "postrun tasks.add SUCCESS"]


def test_signals_task_failure(w, docs):
    from tasks import add

    res = add.delay(2, "2")
    with pytest.raises(TypeError):
        res.get(timeout=TIMEOUT)
    until(lambda: any("failure" in ln for ln in journal_lines(docs, f"signals-{res.id}")), 5)
    assert any(ln.startswith("failure tasks.add TypeError(")
               for ln in journal_lines(docs, f"signals-{res.id}"))


def test_signals_task_retry(w, docs):
    from tasks import retry_without_raise

    res = retry_without_raise.delay()
    assert res.get(timeout=TIMEOUT) == 2
    retries = [ln for ln in journal_lines(docs, f"signals-{res.id}") if ln.startswith("retry")]
    assert len(retries) == 2, retries


def test_signals_worker_ready(w, docs):
    assert journal_lines(docs, "worker-ready") == ["ready"]


def test_canvas_chain_inherits_the_task_id_of_its_last_task(w):
    from tasks import add, app, mul

    res = (add.s(2, 2) | mul.s(8)).apply_async(task_id="chain-last-id")
    assert res.id == "chain-last-id"
    assert res.get(timeout=TIMEOUT) == 32
    assert app.AsyncResult("chain-last-id").get(timeout=TIMEOUT) == 32


def test_tasks_class_based_task_registered(w):
    from tasks import app

    task = app.tasks["tasks.NaiveAuthenticateServer"]
    assert task.delay("george", "password").get(timeout=TIMEOUT) is True
    assert task.delay("george", "guess").get(timeout=TIMEOUT) is False


def test_results_extended(w):
    from tasks import add, app

    app.conf.result_extended = True
    res = add.delay(2, 2)
    assert res.get(timeout=TIMEOUT) == 4
    assert res.name == "tasks.add" and list(res.args) == [2, 2] and res.kwargs == {}
    assert res.queue == "celery" and res.retries == 0
    assert isinstance(res.date_done, datetime)


def test_current_app(w):
    from tasks import add

    from pgqueue.celery import current_app

    assert current_app.tasks["tasks.add"] is add
    assert current_app.main == "tasks"


def test_results_remote_builtin_error_is_caught_by_its_type(w):
    from tasks import div

    try:
        div.delay(1, 0).get(timeout=TIMEOUT)
    except ZeroDivisionError as exc:
        assert "division by zero" in str(exc)
    else:
        pytest.fail("ZeroDivisionError was not raised")


def test_tasks_custom_exception_with_args_comes_back_as_itself(w):
    from tasks import HttpError, fetch_status

    with pytest.raises(HttpError) as raised:
        fetch_status.delay("/missing").get(timeout=TIMEOUT)
    assert raised.value.status_code == 404
    assert raised.value.headers == {"Content-Type": "text/plain"}
    assert raised.value.body == "/missing not found"
