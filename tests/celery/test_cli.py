"""`pgq` as a Celery user types it, as real processes: `pgq -A proj worker -l INFO -Q a,b -c 4`,
`pgq -A proj beat`, `pgq -A proj inspect ...`, `pgq -A proj control ...`, and `-A proj` found
the way Celery finds it, on a project laid out as Celery's guides lay it out."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqueue.celery import Celery
from pgqueue.loader import resolve_app
from tests.conftest import pgq, pgq_run, stop_process
from tests.conftest import until as shared_until

_names = itertools.count()


def until(check: Any, timeout: float = 30.0) -> Any:
    return shared_until(check, timeout, interval=0.1)


def count(dsn: str, query: str, *params: Any) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0


def project(root: Path) -> str:
    """A Celery project as the Django/Celery guides lay it out: proj/celery.py makes the
    app from a config module and autodiscovers proj.orders' tasks."""
    name = f"cliproj{next(_names)}"
    files = {
        "__init__.py": "from .celery import app as celery_app\n",
        "celery.py": f"""
            from pgqueue.celery import Celery

            app = Celery("{name}")
            app.config_from_object("{name}.celeryconfig")
            app.autodiscover_tasks(["{name}.orders"])
            """,
        "celeryconfig.py": f"""
            task_default_queue = "celery"
            task_routes = {{"{name}.orders.tasks.slow": {{"queue": "slow"}}}}
            beat_schedule = {{"tick-every-second": {{"task": "{name}.orders.tasks.tick",
                                                     "schedule": 1.0, "args": (1,)}}}}
            worker_prefetch_multiplier = 1
            """,
        "orders/__init__.py": "",
        "orders/tasks.py": """
            import time
            from pgqueue.celery import shared_task

            @shared_task
            def add(x, y):
                return x + y

            @shared_task
            def tick(n):
                return n

            @shared_task
            def slow(seconds):
                time.sleep(seconds)
                return seconds
            """,
    }
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return name


@pytest.fixture
def proj(tmp_path: Path) -> str:
    return project(tmp_path)


@pytest.fixture
def producer(dsn: str) -> Iterator[Celery]:
    app = Celery("producer", broker=dsn)  # sends by name: no task code here
    yield app
    app.close()


def test_dash_a_finds_the_app_as_celery_does(tmp_path: Path, proj: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    found = {path: resolve_app(path) for path in
             (proj, f"{proj}.celery", f"{proj}.celery:app", f"{proj}:celery_app",
              f"{proj}.celery.app")}
    apps = {id(app) for app, _ in found.values()}
    assert len(apps) == 1  # every form names the one app in proj/celery.py
    assert found[proj][1] == f"{proj}.celery:app"
    assert found[f"{proj}:celery_app"][1] == f"{proj}:celery_app"
    app = found[proj][0]
    assert f"{proj}.orders.tasks.add" in app.tasks  # finalized: autodiscovered
    assert "tick-every-second" in app.schedules


def test_help_reads_like_documentation() -> None:
    top = subprocess.run([sys.executable, "-m", "pgqueue.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "-A, --app" in top and "pgq -A proj worker -l INFO -Q a,b -c 4" in top
    for command in ("inspect", "control", "worker", "beat"):
        assert command in top
    worker = subprocess.run([sys.executable, "-m", "pgqueue.cli", "worker", "--help"],
                            capture_output=True, text=True, check=True).stdout
    for flag in ("-l, --loglevel", "--without-gossip", "-X, --exclude-queues", "prefork",
                 "--autoscale", "-n, --name, --hostname"):
        assert flag in worker, flag


def test_worker_inspect_and_control_with_celerys_flags(dsn: str, proj: str, tmp_path: Path,
                                                       producer: Celery) -> None:
    base = ("--workdir", str(tmp_path), "-A", proj)
    idle = pgq_run(dsn, *base, "inspect", "active")
    assert idle.returncode == 69 and "No nodes replied" in idle.stderr
    worker = pgq(dsn, *base, "worker", "-l", "INFO", "-Q", "celery,slow", "-c", "2",
                 "-n", "w1@%n", "--without-gossip", "--without-mingle", "-E", "-O", "fair",
                 "--heartbeat-interval", "0.5", "--lease-seconds", "5",
                 stderr=subprocess.PIPE)
    try:
        assert producer.send_task(f"{proj}.orders.tasks.add", (2, 3)).get(timeout=60) == 5
        running = producer.send_task(f"{proj}.orders.tasks.slow", (30,))
        assert running.job_id is not None
        until(lambda: count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s AND "
                            "state = 'running'", running.job_id))
        active = pgq_run(dsn, *base, "inspect", "active")
        assert active.returncode == 0, active.stderr
        assert "->  w1@" in active.stdout and f"'id': '{running.id}'" in active.stdout
        assert "1 node online." in active.stdout
        where = pgq_run(dsn, *base, "inspect", "query_task", running.id, "--json")
        assert f'"{running.id}": [\n      "active"' in where.stdout, where.stdout
        called = pgq_run(dsn, *base, "call", f"{proj}.orders.tasks.add", "--args", "[4, 5]")
        assert called.returncode == 0, called.stderr
        task_id = called.stdout.strip()
        assert producer.AsyncResult(task_id).get(timeout=60) == 9
        assert pgq_run(dsn, *base, "result", task_id).stdout.strip() == "9"
        typo = pgq_run(dsn, *base, "call", "tasks.add")
        assert typo.returncode == 1 and "did you mean" in typo.stderr
        stats = pgq_run(dsn, *base, "inspect", "stats", "--json")
        assert f'"{proj}.orders.tasks.add": 2' in stats.stdout
        registered = pgq_run(dsn, *base, "inspect", "registered")
        assert f"{proj}.orders.tasks.tick" in registered.stdout
        revoke = pgq_run(dsn, *base, "control", "revoke", "--terminate", running.id)
        assert revoke.returncode == 0, revoke.stderr
        assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s AND "
                     "cancel_requested", running.job_id) == 1
        limit = pgq_run(dsn, *base, "control", "rate_limit", f"{proj}.orders.tasks.add", "5/m")
        assert limit.returncode == 0, limit.stderr
        assert count(dsn, "SELECT rate FROM pgqueue.task_limits WHERE task = %s",
                     f"{proj}.orders.tasks.add") == 5
    finally:
        stop_process(worker)
    _, err = worker.communicate()
    assert "note: --without-gossip" in err and "note: -E/--task-events" in err


def test_beat_fires_the_beat_schedule_and_a_prefork_worker_runs_it(dsn: str, proj: str,
                                                             tmp_path: Path) -> None:
    base = ("--workdir", str(tmp_path), "-A", proj)
    beat = pgq(dsn, *base, "beat", "-l", "INFO", "-s", "/tmp/celerybeat-schedule",
               stderr=subprocess.PIPE)
    # prefork: Celery's default pool, pgqueue's processes; the children find the app by
    # the module:attribute -A proj resolved to.
    worker = pgq(dsn, *base, "worker", "-l", "WARNING", "-P", "prefork", "-c", "1",
                 "--heartbeat-interval", "0.5", "--lease-seconds", "5")
    try:
        task = f"{proj}.orders.tasks.tick"
        until(lambda: count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE task = %s AND "
                            "state = 'succeeded' AND queue = 'celery'", task) >= 2, 60)
    finally:
        stop_process(worker)
        stop_process(beat)
    _, err = beat.communicate()
    assert "note: -s/--schedule" in err


def test_purge_cancels_queued_jobs_after_asking(dsn: str, proj: str, tmp_path: Path,
                                                producer: Celery) -> None:
    base = ("--workdir", str(tmp_path), "-A", proj)
    jobs = [producer.send_task(f"{proj}.orders.tasks.add", (i, i), countdown=600)
            for i in range(2)]
    other = producer.send_task(f"{proj}.orders.tasks.add", (9, 9), queue="other", countdown=600)
    declined = pgq_run(dsn, *base, "purge")  # no "y" on stdin: nothing is purged
    assert declined.returncode == 1 and "no undo" in declined.stderr
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'queued'") == 3
    done = pgq_run(dsn, *base, "purge", "-f")
    assert done.returncode == 0, done.stderr
    assert "Purged 2 jobs from 1 known task queue." in done.stdout
    assert all(r.state == "REVOKED" for r in jobs) and other.state == "PENDING"


def test_flags_pgqueue_cannot_honour_are_refused_clearly(dsn: str, proj: str,
                                                         tmp_path: Path) -> None:
    base = ("--workdir", str(tmp_path), "-A", proj)
    detach = pgq_run(dsn, *base, "worker", "-D")
    assert detach.returncode == 2 and "--detach is not supported" in detach.stderr
    redis = pgq_run(dsn, "-b", "redis://localhost:6379/0", "-A", proj, "--workdir",
                    str(tmp_path), "migrate", "--status")
    assert redis.returncode == 2 and "PostgreSQL" in redis.stderr
    no_app = pgq_run(dsn, "worker")
    assert no_app.returncode == 2 and "give -A/--app" in no_app.stderr
    excluded = pgq_run(dsn, *base, "worker", "-Q", "celery", "-X", "celery")
    assert excluded.returncode == 2 and "leaves no queue" in excluded.stderr


def test_a_script_starts_its_worker_with_worker_main(dsn: str, tmp_path: Path,
                                                     producer: Celery) -> None:
    """Celery's "starting the worker from code": app.worker_main(argv=["worker", ...])."""
    script = tmp_path / "script_app.py"
    script.write_text(textwrap.dedent("""
        import sys
        from pgqueue.celery import Celery

        app = Celery("script", broker=sys.argv[1])

        @app.task
        def add(x, y):
            return x + y

        if __name__ == "__main__":
            app.worker_main(argv=["worker", "--loglevel=INFO", "-c", "1",
                                  "--heartbeat-interval", "0.5", "--lease-seconds", "5"])
        """))
    env = {k: v for k, v in os.environ.items() if k != "PGQ_DSN"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    worker = subprocess.Popen([sys.executable, str(script), dsn], env=env, text=True,
                              cwd=str(tmp_path))
    try:
        assert producer.send_task("script.add", (20, 22)).get(timeout=60) == 42
    finally:
        stop_process(worker)
