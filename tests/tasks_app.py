"""Tasks the tests run, in-process (``register(app)``) and in real ``pgq worker`` processes
(``--app tasks_app:app``, the DSN from PGQ_DSN)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from typing import Any

import psycopg

from pgqueue import App
from pgqueue.context import JobContext
from pgqueue.errors import SoftTimeLimitExceeded

_local = threading.local()


def _conn(dsn: str) -> psycopg.Connection[Any]:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(dsn, autocommit=True)
        _local.conn = conn
    return conn


def register(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def noop(n: int = 0) -> None:
        return None

    @app.task
    def boom(message: str) -> None:
        raise ValueError(message)

    @app.task
    async def async_add(x: int, y: int) -> int:
        await asyncio.sleep(0.01)
        return x + y

    @app.task
    def sleepy(seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    @app.task
    def echo(value: Any) -> Any:
        return value

    @app.task
    def returns_object() -> object:
        return object()

    @app.task
    def record(n: int) -> int:
        """Write one row per execution, so tests can count duplicates."""
        _conn(app.dsn()).execute(
            "INSERT INTO public.executions (n, pid) VALUES (%s, %s)", (n, os.getpid())
        )
        return n

    @app.task(queue="emails", priority=5)
    def send_email(to: str) -> str:
        return f"sent to {to}"

    # -- resilience -----------------------------------------------------------
    @app.task(bind=True, max_retries=3, default_retry_delay=0.05)
    def flaky(self: JobContext, fails: int) -> int:
        """Fails its first `fails` attempts, then returns the attempt that succeeded."""
        if self.attempt <= fails:
            raise ConnectionError(f"attempt {self.attempt} failed")
        return self.attempt

    @app.task(bind=True, max_retries=5)
    def asks_for_retry(self: JobContext, until: int) -> int:
        if self.attempt < until:
            raise self.retry(exc=RuntimeError("not yet"), countdown=0.05)
        return self.attempt

    @app.task(max_retries=3, autoretry_for=(OSError,), default_retry_delay=0.05)
    def only_io_retried(kind: str) -> None:
        raise (OSError if kind == "io" else ValueError)(kind)

    @app.task(max_retries=3, retry_backoff=0.2, retry_jitter=False)
    def always_fails() -> None:
        raise RuntimeError("nope")

    @app.task(soft_time_limit=0.3, time_limit=5)
    def cleans_up_at_soft_limit() -> str:
        try:
            for _ in range(500):
                time.sleep(0.01)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "finished"

    @app.task(time_limit=0.5)
    def loops_forever() -> None:
        while True:
            time.sleep(0.01)

    @app.task(time_limit=0.5, max_retries=1, default_retry_delay=0.05)
    async def async_too_slow() -> None:
        await asyncio.sleep(60)

    @app.task(bind=True)
    def cancellable(self: JobContext) -> str:
        while not self.is_cancelled():
            time.sleep(0.01)
        return "saw the flag"

    @app.task
    async def async_forever() -> None:
        await asyncio.sleep(3600)

    @app.task(time_limit=1)
    def burns_cpu() -> None:
        while True:
            pass

    @app.task
    def exits_hard(code: int) -> None:
        os._exit(code)

    @app.task
    def segfaults() -> None:
        ctypes.string_at(0)

    @app.task
    def pid_after(seconds: float) -> int:
        time.sleep(seconds)
        return os.getpid()

    # -- chaos (tests/acceptance/test_chaos.py) --------------------------------
    @app.task(max_retries=10, autoretry_for=(psycopg.OperationalError,), retry_backoff=0.2,
              retry_jitter=False)
    def record_run(n: int, seconds: float = 0.0) -> int:
        """One row in public.runs per execution, written first: a worker killed during the
        sleep leaves its row, so a second execution shows as a duplicate. A connection
        dropped by a Postgres restart fails the attempt, which is retried."""
        _conn(app.dsn()).execute("INSERT INTO public.runs (n, pid) VALUES (%s, %s)",
                                 (n, os.getpid()))
        time.sleep(seconds)
        return n

    # -- dashboard (tests/dashboard/) -------------------------------------------
    @app.task
    def fails_first_time(key: str) -> str:
        """Fails its first run for `key`, succeeds on every later one (a retry): the row it
        leaves in public.first_runs (the test creates the table) remembers, across
        worker processes, that it ran."""
        first = _conn(app.dsn()).execute(
            "INSERT INTO public.first_runs (key) VALUES (%s) ON CONFLICT DO NOTHING "
            "RETURNING key", (key,)).fetchone()
        if first is not None:
            raise RuntimeError(f"first run of {key!r} fails, as planned")
        return f"{key} done"


app = App()
register(app)


def register_atomic(app: App) -> None:
    @app.task(bind=True, atomic=True)
    def charge(self: JobContext, order: int, seconds: float = 0.0) -> str:
        """Writes its effect in the completion's transaction."""
        assert self.connection is not None
        self.connection.execute("INSERT INTO public.charges (order_id, job_id) VALUES (%s, %s)",
                                (order, self.job_id))
        time.sleep(seconds)
        return f"charged {order}"


register_atomic(app)


def register_canvas(app: App) -> None:
    """Tasks for workflows (chain, group, chord, callbacks)."""

    @app.task
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task
    def div(x: int, y: int) -> float:
        return x / y

    @app.task
    def slow_add(x: int, y: int, seconds: float = 0.05) -> int:
        time.sleep(seconds)
        return x + y

    @app.task
    def on_error(job_id: int, error: dict[str, str], label: str = "") -> str:
        """An errback: records what it was told in public.errbacks, if that table exists."""
        dsn = os.environ.get("PGQ_DSN") or app.settings.dsn or ""
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS public.errbacks "
                         "(job_id bigint, type text, message text, label text)")
            conn.execute("INSERT INTO public.errbacks VALUES (%s, %s, %s, %s)",
                         (job_id, error["type"], error["message"], label))
        return f"{error['type']} in job {job_id}"

    @app.task
    def record_once(key: str, value: Any = None) -> Any:
        """Counts its runs per key in public.runs: a callback that ran twice shows."""
        dsn = os.environ.get("PGQ_DSN") or app.settings.dsn or ""
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS public.runs (key text, value jsonb)")
            conn.execute("INSERT INTO public.runs VALUES (%s, %s)",
                         (key, psycopg.types.json.Jsonb(value)))
        return value

    @app.task(bind=True, atomic=True)
    def record_result(self: JobContext, value: Any, key: str) -> Any:
        """A chord callback (the results come first) that records each run it completes in
        public.runs (the test creates it as record_once does): written in the transaction
        that records its completion, so a run cut short by a SIGKILL leaves no row, and a
        second row means the callback was released twice."""
        assert self.connection is not None
        self.connection.execute("INSERT INTO public.runs VALUES (%s, %s)",
                                (key, psycopg.types.json.Jsonb(value)))
        return value

    @app.task
    def held(key: str, seconds: float) -> int:
        """A member to catch mid-run: records that it started (key, its pid) in
        public.runs, sleeps, and returns its pid, so the stored result says which
        worker's attempt it is."""
        _conn(app.dsn()).execute("INSERT INTO public.runs VALUES (%s, %s)",
                                 (key, psycopg.types.json.Jsonb(os.getpid())))
        time.sleep(seconds)
        return os.getpid()


register_canvas(app)


def register_flow(app: App) -> None:
    """Tasks for unique jobs, expiry and result retention."""

    @app.task(unique=True)
    def sync_account(account_id: int, full: bool = False) -> int:
        return account_id

    @app.task(ignore_result=True)
    def forgetful(x: int) -> int:
        return x

    @app.task(result_expires=1)
    def short_lived(x: int) -> int:
        return x

    @app.task(bind=True, concurrency_limit=3)
    def one_of_three(self: JobContext, seconds: float) -> int:
        """Holds an advisory lock (class 4242) while it runs, on its own connection: a
        test counts live runs in pg_locks, and a SIGKILLed worker's locks go with it."""
        with psycopg.connect(app.dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(4242, %s)", (self.job_id % 2**31,))
            time.sleep(seconds)
        return self.job_id

    @app.task(rate_limit="60/m")
    def metered(n: int) -> int:
        return n

    @app.task(rate_limit="3/s")
    def per_tenant(n: int) -> int:
        return n


register_flow(app)
