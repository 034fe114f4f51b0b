"""No job can wedge a worker: every poison case against a real `pgq worker` per pool.

For each case the poison job is enqueued, then 20 plain jobs: the plain jobs all
succeed within seconds, the poison job ends failed with the expected error
type, and at the end SIGTERM stops the worker within its shutdown timeout.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest

from pgqueue import App, JobState, TaskError
from tests.conftest import pgq, stop_process, wait_for
from tests.poison_app import CASES, MAX_RESULT_BYTES

SHUTDOWN_TIMEOUT = 5


@pytest.fixture
def producer(dsn: str) -> Iterator[App]:
    from tests import poison_app

    app = App(dsn)
    for name, task in poison_app.app.tasks.items():
        app.tasks[name] = task
    yield app
    app.close()


def _worker(dsn: str, pool: str) -> subprocess.Popen[str]:
    os.environ["PGQ_MAX_RESULT_BYTES"] = str(MAX_RESULT_BYTES)
    try:
        return pgq(dsn, "worker", "--app", "tests.poison_app:app", "--pool", pool,
                   "--concurrency", "4", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT))
    finally:
        del os.environ["PGQ_MAX_RESULT_BYTES"]


def _error_type(app: App, result: object) -> str:
    try:
        result.get(timeout=30)  # type: ignore[attr-defined]
    except TaskError as exc:
        return exc.type
    return "no error"


def _then_plain_jobs_run(app: App, prefix: str) -> None:
    plain = [app.send_task(f"{prefix}ok", (i,)) for i in range(20)]
    assert [r.get(timeout=10) for r in plain] == list(range(20))


@pytest.mark.parametrize("pool", ["threads", "processes", "asyncio"])
def test_poison_outcomes_fail_alone_and_the_worker_serves_on(dsn: str, producer: App,
                                                             pool: str) -> None:
    worker = _worker(dsn, pool)
    prefix = "a" if pool == "asyncio" else ""
    task_prefix = "a_" if pool == "asyncio" else "p_"
    try:
        _then_plain_jobs_run(producer, prefix)
        seen = {}
        for case, (_, expected) in CASES.items():
            result = producer.send_task(f"{task_prefix}{case}")
            seen[case] = (_error_type(producer, result), expected)
            assert result.state is JobState.FAILED, case
            _then_plain_jobs_run(producer, prefix)
        assert {c: got for c, (got, _) in seen.items()} == {
            c: want for c, (_, want) in seen.items()}
        started = time.monotonic()
        assert stop_process(worker, timeout=SHUTDOWN_TIMEOUT + 10) == 0
        assert time.monotonic() - started < SHUTDOWN_TIMEOUT + 5
    finally:
        if worker.poll() is None:
            worker.kill()


def test_huge_error_is_stored_truncated(dsn: str, producer: App) -> None:
    worker = _worker(dsn, "threads")
    try:
        result = producer.send_task("p_huge_error")
        with pytest.raises(TaskError) as err:
            result.get(timeout=30)
        assert len(err.value.message) < 100_000
        assert "truncated" in err.value.message
    finally:
        stop_process(worker)


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_a_forking_task_is_recorded_once_by_the_parent(dsn: str, producer: App,
                                                       pool: str) -> None:
    worker = _worker(dsn, pool)
    try:
        assert producer.send_task("forks").get(timeout=30) == "parent"
        _then_plain_jobs_run(producer, "")
    finally:
        assert stop_process(worker, timeout=SHUTDOWN_TIMEOUT + 10) == 0


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_atomic_connection_misuse(dsn: str, producer: App, pool: str) -> None:
    worker = _worker(dsn, pool)
    try:
        assert _error_type(producer, producer.send_task("commits")) == "AtomicityViolated"
        for _ in range(3):  # every connection of the pool gets poisoned, then checked
            producer.send_task("sets_state").get(timeout=30)
        states = [producer.send_task("reads_state").get(timeout=30) for _ in range(6)]
        assert all(s[0] == "4MB" and s[1] != "poisoned" for s in states), states
        _then_plain_jobs_run(producer, "")
    finally:
        assert stop_process(worker, timeout=SHUTDOWN_TIMEOUT + 10) == 0


def test_no_forked_child_survives(dsn: str, producer: App) -> None:
    worker = _worker(dsn, "threads")
    try:
        producer.send_task("forks").get(timeout=30)
        assert wait_for(lambda: _children(worker.pid) == [], 5), _children(worker.pid)
    finally:
        stop_process(worker)


def _children(pid: int) -> list[int]:
    """Live children (a zombie has exited: it only waits for its parent to reap it)."""
    out = subprocess.run(["ps", "-o", "pid=,stat=", "--ppid", str(pid)],
                         capture_output=True, text=True)
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    return [int(p) for p, stat in rows if not stat.startswith("Z")]


def test_bad_rows_fail_alone(dsn: str, producer: App) -> None:
    """Rows a producer can't write but SQL can: each fails (or waits) alone."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        deep = "[" * 3000 + "]" * 3000
        conn.execute("INSERT INTO pgqueue.jobs (queue, task, args, kwargs, headers) VALUES "
                     "('default', 'ok', '{\"a\": 1}', '{}', NULL), "
                     "('default', 'ok', '[1]', '[]', NULL), "
                     "('default', 'ok', '[1]', '{}', %s::jsonb), "
                     "('default', 'ok', '[1]', '{}', '{\"a\": 1}')", (deep,))
        conn.execute("INSERT INTO pgqueue.jobs (queue, task, args, kwargs, attempts) "
                     "VALUES ('default', 'ok', '[5]', '{}', 2147483647)")
        conn.execute("INSERT INTO pgqueue.jobs (queue, task, args, kwargs, run_at) VALUES "
                     "('default', 'ok', '[6]', '{}', 'infinity')")
    worker = _worker(dsn, "threads")
    try:
        _then_plain_jobs_run(producer, "")

        def states() -> dict[str, int]:
            with psycopg.connect(dsn) as conn:
                return dict(conn.execute(
                    "SELECT state::text, count(*) FROM pgqueue.jobs GROUP BY 1").fetchall())
        assert wait_for(lambda: states().get("failed") == 4, 10), states()
        assert states() == {"failed": 4, "succeeded": 21, "queued": 1}
    finally:
        assert stop_process(worker, timeout=SHUTDOWN_TIMEOUT + 10) == 0
