"""Real `pgq` processes, real signals, real time bounds."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time

import psycopg

from pgqueue import JobState
from tests.conftest import _counter, _janitor, count, pgq, pgq_run, stop_process, wait_for


def _worker_up(dsn: str, n: int = 1) -> bool:
    return count(dsn, "SELECT count(*) FROM pgqueue.worker_status WHERE status = 'up'") >= n


def test_four_workers_drain_5000_jobs_and_none_runs_twice(producer, dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE public.executions (n int NOT NULL, pid int NOT NULL)")
    producer.tasks["record"].map([(i,) for i in range(5000)])
    workers = [pgq(dsn, "worker", "--app", "tasks_app:app", "--concurrency", "8")
               for _ in range(4)]
    try:
        assert wait_for(
            lambda: count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'succeeded'")
            == 5000, timeout=120, interval=0.2)
    finally:
        codes = [stop_process(w) for w in workers]
    assert codes == [0, 0, 0, 0]
    assert count(dsn, "SELECT count(*) FROM public.executions") == 5000
    assert count(dsn, "SELECT count(DISTINCT n) FROM public.executions") == 5000
    assert count(dsn, "SELECT count(DISTINCT pid) FROM public.executions") == 4
    assert count(dsn, "SELECT max(attempts) FROM pgqueue.jobs") == 1


def test_idle_worker_starts_a_job_within_200ms_of_commit(producer, dsn):
    worker = pgq(dsn, "worker", "--app", "tasks_app:app", "--poll-interval", "10")
    try:
        assert wait_for(lambda: _worker_up(dsn), timeout=20)
        time.sleep(0.5)  # let it go idle on LISTEN
        results = []
        for i in range(30):
            results.append(producer.tasks["noop"].delay(i))
            time.sleep(0.05)
        for r in results:
            r.get(timeout=10)
    finally:
        assert stop_process(worker) == 0
    with psycopg.connect(dsn) as conn:
        # Database clock on both ends: created_at is the enqueue's now().
        lat = [row[0] for row in conn.execute(
            "SELECT extract(epoch FROM started_at - created_at) * 1000 FROM pgqueue.jobs")]
    lat.sort()
    print(f"enqueue->start ms: p50={statistics.median(lat):.1f} max={lat[-1]:.1f}")
    assert lat[-1] < 200, lat


def test_sigterm_lets_the_running_job_finish_and_exits_0(producer, dsn):
    worker = pgq(dsn, "worker", "--app", "tasks_app:app", "--concurrency", "1")
    try:
        assert wait_for(lambda: _worker_up(dsn), timeout=20)
        running = producer.tasks["sleepy"].delay(2.0)
        waiting = producer.tasks["add"].delay(1, 1)
        assert wait_for(lambda: running.state is JobState.RUNNING, timeout=10)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert running.get(timeout=1) == "slept"
    assert waiting.state is JobState.QUEUED  # it stopped claiming
    assert count(dsn, "SELECT count(*) FROM pgqueue.worker_status WHERE status = 'stopped'") == 1


def test_second_signal_stops_at_once_and_releases_the_job(producer, dsn):
    worker = pgq(dsn, "worker", "--app", "tasks_app:app", "--concurrency", "1")
    try:
        assert wait_for(lambda: _worker_up(dsn), timeout=20)
        r = producer.tasks["sleepy"].delay(30.0)
        assert wait_for(lambda: r.state is JobState.RUNNING, timeout=10)
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=10) != 0
    finally:
        if worker.poll() is None:
            worker.kill()
    info = r.info()
    assert info.state is JobState.QUEUED and info.attempts == 0  # back, not counted


def test_concurrent_migrate_on_an_empty_database(pg_server):
    name = f"pgq_migrate_{os.getpid()}_{next(_counter)}"
    janitor = _janitor(pg_server, name)
    janitor.init()
    try:
        target = psycopg.conninfo.make_conninfo(pg_server, dbname=name)
        procs = [pgq(target, "migrate", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(5)]
        outputs = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0] * 5, outputs
        said = [out for out, _ in outputs]
        assert sum("applied 0001_initial.sql" in s for s in said) == 1, said
        assert sum("up to date" in s for s in said) == 4, said
        assert count(target, "SELECT count(*) FROM pgqueue.schema_migrations") >= 1
        assert "0 pending" in pgq_run(target, "migrate", "--status").stdout
    finally:
        janitor.drop()


def test_migrate_refuses_when_an_applied_file_changed(dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE pgqueue.schema_migrations SET checksum = 'x' WHERE version = 1")
    proc = pgq(dsn, "migrate", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "was changed after it was applied" in err and "new migration" in err


def test_demo_runs_end_to_end(dsn):
    proc = pgq(dsn, "demo", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "result of job" in out and "ada@example.com" in out
    assert "users named bob: 0; job 2: gone" in out
    assert "exit code 0" in out


def test_embedded_postgres_when_no_dsn_is_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGQ_")}
    env["PGQ_HOME"] = str(tmp_path / "home")
    import sys

    run = subprocess.run([sys.executable, "-m", "pgqueue.cli", "migrate"], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "applied 0001_initial.sql" in run.stdout or "up to date" in run.stdout
    assert str(tmp_path / "home" / "pgdata") in run.stderr  # says where the data lives
    assert (tmp_path / "home" / "pgdata" / "PG_VERSION").exists()
