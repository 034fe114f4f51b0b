"""Tasks the tests run, in-process (``register(app)``) and in real ``pgq worker`` processes
(``--app tasks_app:app``, the DSN from PGQ_DSN)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import psycopg

from pgqueue import App

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


app = App()
register(app)
