"""Sync shell: executes :mod:`pgqueue.statements` on the caller's connection or a pool.

On the caller's connection the statement joins the caller's transaction (so a
job becomes visible at their COMMIT and vanishes at their ROLLBACK); on the
pool it runs in autocommit: one statement, one round trip, durable at return.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from pgqueue import redact
from pgqueue.errors import DatabaseUnavailable
from pgqueue.statements import Statement

T = TypeVar("T")

CONNECT_KWARGS: dict[str, Any] = {"autocommit": True, "application_name": "pgqueue"}


def connect_kwargs(prepared: bool = True, **extra: Any) -> dict[str, Any]:
    """The keyword arguments of every connection pgqueue opens.

    ``prepared=False`` (``PGQ_PREPARED_STATEMENTS=off``): psycopg never prepares a
    statement on the server (``prepare_threshold=None``). Behind a transaction-mode
    pooler the next statement may run on another server session, where the
    prepared one doesn't exist (PgBouncer before 1.21 can't carry them)."""
    kwargs = {**CONNECT_KWARGS, **extra}
    if not prepared:
        kwargs["prepare_threshold"] = None
    return kwargs


def unprepared(stmt: Statement[T]) -> Statement[T]:
    """The statement, never prepared on the server: for a connection that isn't
    pgqueue's own (the caller's), whose prepare_threshold we don't set."""
    if stmt.query.prepare is False:
        return stmt
    return dataclasses.replace(stmt, query=dataclasses.replace(stmt.query, prepare=False))


def where(conninfo: str) -> str:
    """host:port/dbname of a DSN, for error messages (never the password)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the configured server"
    return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/" \
           f"{params.get('dbname', '')}"


def unavailable(conninfo: str, timeout: float, exc: Exception,
                stats: dict[str, int]) -> DatabaseUnavailable:
    if stats.get("pool_size", 0) >= stats.get("pool_max", 1) and not stats.get("pool_available"):
        return DatabaseUnavailable(
            f"all {stats.get('pool_max')} connections of pgqueue's pool stayed busy for "
            f"{timeout:g}s (more threads enqueueing at once than connections?): raise "
            "PGQ_POOL_SIZE or PGQ_POOL_TIMEOUT. Nothing was done."
        )
    return DatabaseUnavailable(
        f"no connection to Postgres at {where(conninfo)} within {timeout:g}s "
        f"({redact.scrub(str(exc), conninfo)}); is the "
        "server up, and is PGQ_DSN right? Nothing was done (no job was enqueued)."
    )


# A connection idle this long is checked (one empty query, ~45 us here) before it
# is handed out, and replaced if it died meanwhile (a Postgres restart, a
# fail-over), so the first delay() after a restart works. A connection in
# steady use skips the check: the hot path pays nothing.
RECHECK_AFTER = 1.0


def idle_too_long(conn: object, after: float = RECHECK_AFTER) -> bool:
    return time.monotonic() - float(getattr(conn, "_pgq_used", 0.0)) >= after


def used(conn: object) -> None:
    conn._pgq_used = time.monotonic()  # type: ignore[attr-defined]


def stale(conn: psycopg.Connection[Any], after: float = RECHECK_AFTER) -> bool:
    """Idle too long, and dead when asked: close it, so the pool replaces it.

    Checked here rather than by the pool's own ``check``: the pool throttles
    failed checks like failed connects (1 s, 2 s, 4 s...), so after a restart a
    pool of dead connections would keep a caller waiting out its timeout."""
    if not idle_too_long(conn, after):
        return False
    try:
        conn.execute("")
        return False
    except psycopg.Error:
        conn.close()
        return True


@contextmanager
def live_connection(pool: ConnectionPool, tries: int,
                    after: float = RECHECK_AFTER) -> Iterator[psycopg.Connection[Any]]:
    """A connection from ``pool``, checked first if it was idle ``after`` seconds or
    more; a dead one is replaced at once (``tries`` times at most)."""
    for _ in range(tries):
        with pool.connection() as conn:
            if stale(conn, after):
                continue
            try:
                yield conn
            finally:
                used(conn)
            return
    with pool.connection() as conn:
        yield conn


def run(conn: psycopg.Connection[Any], stmt: Statement[T]) -> T:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(stmt.query.text, stmt.params, prepare=stmt.query.prepare)
        rows = cur.fetchall() if stmt.query.kind != "none" else []
    return stmt.decode(rows)


class Client:
    def __init__(self, conninfo: Callable[[], str], pool_size: int, timeout: float, *,
                 prepared: bool = True) -> None:
        self._conninfo = conninfo
        self._prepared = prepared
        self._pool_size = pool_size
        self._timeout = timeout
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
                        kwargs=connect_kwargs(self._prepared),
                        name="pgqueue",
                        timeout=self._timeout,
                        open=True,
                    )
        return self._pool

    def execute(self, stmt: Statement[T], connection: psycopg.Connection[Any] | None = None) -> T:
        if connection is not None:
            return run(connection, stmt if self._prepared else unprepared(stmt))
        try:
            with self.connection() as conn:
                return run(conn, stmt)
        except psycopg.OperationalError:
            if not stmt.query.read_only:
                raise  # a write may have happened: only the caller can tell
            self.pool.check()  # others may have died with it (a restart): weed them out
        with self.connection() as conn:  # a read, once more, on a checked connection
            return run(conn, stmt)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; a pool that can't connect in time says so clearly."""
        try:
            with live_connection(self.pool, self._pool_size) as conn:
                yield conn
        except PoolTimeout as exc:
            raise unavailable(self._conninfo(), self._timeout, exc,
                              self.pool.get_stats()) from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
