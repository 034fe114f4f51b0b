"""Async shell: the same statements as :mod:`pgqueue.client`, executed with ``await``.

A pool belongs to the event loop that opened it; when an app is used from a new
loop (``asyncio.run`` twice, a test per loop) a fresh pool is opened for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pgqueue.client import connect_kwargs, idle_too_long, unavailable, unprepared, used
from pgqueue.statements import Statement

T = TypeVar("T")


async def stale(conn: psycopg.AsyncConnection[Any]) -> bool:
    """:func:`pgqueue.client.stale`, awaited."""
    if not idle_too_long(conn):
        return False
    try:
        await conn.execute("")
        return False
    except psycopg.Error:
        await conn.close()
        return True


@asynccontextmanager
async def live_connection(pool: AsyncConnectionPool, tries: int
                          ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """:func:`pgqueue.client.live_connection`, awaited."""
    for _ in range(tries):
        async with pool.connection() as conn:
            if await stale(conn):
                continue
            try:
                yield conn
            finally:
                used(conn)
            return
    async with pool.connection() as conn:
        yield conn


async def run(conn: psycopg.AsyncConnection[Any], stmt: Statement[T]) -> T:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(stmt.query.text, stmt.params, prepare=stmt.query.prepare)
        rows = await cur.fetchall() if stmt.query.kind != "none" else []
    return stmt.decode(rows)


class AsyncClient:
    def __init__(self, conninfo: Callable[[], str], pool_size: int, timeout: float, *,
                 prepared: bool = True) -> None:
        self._conninfo = conninfo
        self._prepared = prepared
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: AsyncConnectionPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def pool(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            # A pool from a closed loop can't be closed cleanly from this one; drop it.
            self._pool = AsyncConnectionPool(
                self._conninfo(),
                min_size=1,
                max_size=self._pool_size,
                kwargs=connect_kwargs(self._prepared),
                name="pgqueue-async",
                timeout=self._timeout,
                open=False,
            )
            self._loop = loop
            await self._pool.open()
        return self._pool

    async def execute(
        self, stmt: Statement[T], connection: psycopg.AsyncConnection[Any] | None = None
    ) -> T:
        if connection is not None:
            return await run(connection, stmt if self._prepared else unprepared(stmt))
        try:
            async with self.connection() as conn:
                return await run(conn, stmt)
        except psycopg.OperationalError:
            if not stmt.query.read_only:
                raise  # see Client.execute
            await (await self.pool()).check()
        async with self.connection() as conn:
            return await run(conn, stmt)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        pool = await self.pool()
        try:
            async with live_connection(pool, self._pool_size) as conn:
                yield conn
        except PoolTimeout as exc:
            raise unavailable(self._conninfo(), self._timeout, exc, pool.get_stats()) from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
