"""Unique jobs, expiry, ignore_result and result_expires, against a real Postgres."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

from pgqueue import JobState
from pgqueue.errors import JobExpired
from pgqueue.link import Link
from pgqueue.maintenance import Pruner, Rescuer
from tests.conftest import ROOT, count, running_worker


def test_a_held_key_returns_the_holder(app, dsn):
    add = app.tasks["add"]
    first = add.apply_async((1, 2), unique_key="k1")
    again = add.apply_async((5, 5), unique_key="k1")
    assert again.id == first.id and again.deduplicated and not first.deduplicated
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1
    with running_worker(app):
        assert first.get(timeout=10) == 3
    # Ended, and no window: the key is free again.
    later = add.apply_async((1, 2), unique_key="k1")
    assert later.id != first.id and not later.deduplicated


def test_within_its_window_a_finished_job_still_holds_the_key(app, dsn):
    add = app.tasks["add"]
    first = add.apply_async((1, 2), unique_key="w", unique_for=dt.timedelta(hours=1))
    with running_worker(app):
        first.get(timeout=10)
    assert add.apply_async((1, 2), unique_key="w").id == first.id
    with psycopg.connect(dsn) as conn:  # the window passes
        conn.execute("UPDATE pgqueue.job_keys SET hold_until = now() - interval '1 s'")
    assert add.apply_async((1, 2), unique_key="w").id != first.id


def test_unique_tasks_key_on_their_arguments(app, dsn):
    sync = app.tasks["sync_account"]
    a = sync.delay(42, full=True)
    assert sync.apply_async((42,), {"full": True}).id == a.id
    assert sync.delay(43).id != a.id
    # an explicit key wins over the arguments' key
    assert sync.apply_async((42,), unique_key="sync:42").id != a.id
    # in one batch: written once, both get it
    x, y = app.enqueue_many([sync.s(7), sync.s(7)])
    assert x.id == y.id and y.deduplicated
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE task = 'sync_account'") == 4


def test_a_key_is_held_through_retries_and_freed_by_failure(app, dsn):
    boom = app.tasks["boom"]
    r = boom.apply_async(("x",), unique_key="b")
    with running_worker(app), pytest.raises(Exception, match="x"):
        r.get(timeout=10)
    assert boom.apply_async(("x",), unique_key="b").id != r.id


def test_racing_producers_make_one_job(dsn):
    """8 processes x 50 threads enqueue one key at once: one job, every caller gets it."""
    script = textwrap.dedent(f"""
        import sys, threading
        from pgqueue import App
        app = App({dsn!r}, pool_size=10)
        ids, barrier = [], threading.Barrier(50)
        def go():
            barrier.wait()
            ids.append(app.send_task("add", (1, 2), unique_key="race").id)
        threads = [threading.Thread(target=go) for _ in range(50)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(",".join(map(str, sorted(set(ids)))), len(ids))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(8)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outputs]
    seen = {line.split()[0] for line, _ in outputs}
    calls = sum(int(line.split()[1]) for line, _ in outputs)
    assert calls == 400 and len(seen) == 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1


def test_an_expired_job_never_runs(app, dsn):
    record = app.tasks["record"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.executions (n int, pid int)")
    r = record.apply_async((1,), expires=0.2)
    at = record.apply_async((2,), expires=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.2))
    keep = record.apply_async((3,), expires=60)
    time.sleep(0.5)
    with running_worker(app):
        assert keep.get(timeout=10) == 3
        with pytest.raises(JobExpired):
            r.get(timeout=10)  # the worker's rescuer records the expiry
        with pytest.raises(JobExpired):
            at.get(timeout=10)
    assert r.state is JobState.CANCELLED
    assert count(dsn, "SELECT count(*) FROM public.executions WHERE n IN (1, 2)") == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        record.apply_async((1,), expires=dt.datetime(2030, 1, 1))
    with pytest.raises(TypeError, match="expires"):
        record.apply_async((1,), expires="soon")


def test_ignore_result_and_result_expires(app, dsn):
    forgetful, short = app.tasks["forgetful"], app.tasks["short_lived"]
    with running_worker(app):
        f = forgetful.delay(5)
        s = short.delay(6)
        assert f.get(timeout=10) is None and f.state is JobState.SUCCEEDED
        assert s.get(timeout=10) == 6
    assert count(dsn, "SELECT count(*) FROM pgqueue.job_results WHERE job_id = %s", f.id) == 0
    assert count(dsn, "SELECT count(*) FROM pgqueue.job_keep WHERE job_id = %s", s.id) == 1
    time.sleep(1.2)

    async def prune() -> dict[str, int]:
        link = Link(dsn, "test")
        try:
            return await Pruner(link, "pgqueue", dt.timedelta(days=7)).run_once()
        finally:
            await link.close()

    assert asyncio.run(prune())["jobs"] == 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", s.id) == 0
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", f.id) == 1


def test_the_rescuer_sweep_expires_jobs(app, dsn):
    r = app.tasks["add"].apply_async((1, 1), expires=0)

    async def sweep() -> None:
        link = Link(dsn, "test")
        try:
            await Rescuer(link, "pgqueue", 3).run_once()
        finally:
            await link.close()

    asyncio.run(sweep())
    assert r.info().state is JobState.CANCELLED and r.info().error.type == "JobExpired"
