"""Sync shell: executes :mod:`pgqueue.statements` on the caller's connection or a pool.

On the caller's connection the statement joins the caller's transaction (so a
job becomes visible at their COMMIT and vanishes at their ROLLBACK); on the
pool it runs in autocommit: one statement, one round trip, durable at return.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from pgqueue.statements import Statement

T = TypeVar("T")

CONNECT_KWARGS: dict[str, Any] = {"autocommit": True, "application_name": "pgqueue"}


def run(conn: psycopg.Connection[Any], stmt: Statement[T]) -> T:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(stmt.query.text, stmt.params)
        rows = cur.fetchall() if stmt.query.kind != "none" else []
    return stmt.decode(rows)


class Client:
    def __init__(self, conninfo: Callable[[], str], pool_size: int) -> None:
        self._conninfo = conninfo
        self._pool_size = pool_size
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ConnectionPool(
                        self._conninfo(),
                        min_size=1,
                        max_size=self._pool_size,
                        kwargs=CONNECT_KWARGS,
                        name="pgqueue",
                        open=True,
                    )
        return self._pool

    def execute(self, stmt: Statement[T], connection: psycopg.Connection[Any] | None = None) -> T:
        if connection is not None:
            return run(connection, stmt)
        with self.pool.connection() as conn:
            return run(conn, stmt)

    @contextmanager
    def listening(self, listen: Statement[None],
                  unlisten: Statement[None]) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection that LISTENs for as long as the block runs."""
        with self.pool.connection() as conn:
            run(conn, listen)
            try:
                yield conn
            finally:
                if not conn.closed:
                    run(conn, unlisten)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
