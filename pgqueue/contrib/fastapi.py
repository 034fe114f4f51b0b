"""FastAPI (and plain asyncio): pools opened by the app's lifespan, and enqueues in the
request's transaction (``pip install -e '.[fastapi]'``).

    queue = PgQueue(app)                         # app: your pgqueue App
    api = FastAPI(lifespan=queue.lifespan)

    @api.post("/reports", status_code=202)
    async def create_report(conn: Connection) -> dict[str, int]:
        await conn.execute("INSERT INTO audit (what) VALUES ('report')")
        job = await build_report.apply_async_async(("weekly",), connection=conn)
        return {"job_id": job.id}              # committed before the 202 is sent

:data:`Connection` is a dependency giving the request an ``AsyncConnection``
from the request pool, inside a transaction that commits when the endpoint
returns and rolls back if it raises: the job and the endpoint's own writes
commit together or not at all. It ends before the response is sent
(``scope="function"``), so a client that reads the job id back finds the job.

Outside FastAPI, ``async with queue.opened():`` opens the same pools and
``async with queue.transaction() as conn:`` gives a transaction on the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, Request
from psycopg_pool import AsyncConnectionPool

from pgqueue.app import App

__all__ = ["Connection", "PgQueue", "request_connection"]


class PgQueue:
    """Pools for one pgqueue App in an asyncio web app.

    ``lifespan`` opens pgqueue's own async pool (used by ``delay_async()`` without
    ``connection=``, ``AsyncResult(...).info_async()`` and ``get_async()``) and a
    pool of request connections of up to ``max_size``, on ``dsn`` (the App's by
    default, which is the usual case: the jobs live in the app's database).
    ``pool_kwargs`` go to :class:`psycopg_pool.AsyncConnectionPool`.
    """

    def __init__(self, app: App, *, dsn: str | None = None, min_size: int = 1,
                 max_size: int = 10, pool_kwargs: dict[str, Any] | None = None) -> None:
        self.app = app
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._pool_kwargs = pool_kwargs or {}
        self._pool: AsyncConnectionPool | None = None

    @property
    def pool(self) -> AsyncConnectionPool:
        """The request pool; open only between the lifespan's start and end."""
        if self._pool is None:
            raise RuntimeError("pgqueue's request pool is not open: pass "
                               "lifespan=queue.lifespan to FastAPI (or enter "
                               "queue.lifespan(api) in your own lifespan)")
        return self._pool

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[PgQueue]:
        """Open both pools for the block, then close them."""
        # App.dsn() may start the embedded Postgres: not on the event loop.
        dsn = self._dsn if self._dsn else await asyncio.to_thread(self.app.dsn)
        options = dict(self._pool_kwargs)
        if not self.app.settings.prepared_statements:  # behind PgBouncer < 1.21
            options["kwargs"] = {"prepare_threshold": None, **options.get("kwargs", {})}
        pool = AsyncConnectionPool(dsn, min_size=self._min_size, max_size=self._max_size,
                                   open=False, name="pgqueue-requests", **options)
        await pool.open(wait=True)
        await self.app.async_client.pool()  # open now: a bad DSN fails at start-up
        self._pool = pool
        try:
            yield self
        finally:
            self._pool = None
            await pool.close()
            await self.app.async_client.close()

    @asynccontextmanager
    async def lifespan(self, api: FastAPI) -> AsyncIterator[None]:
        """``FastAPI(lifespan=queue.lifespan)``; inside your own lifespan,
        ``async with queue.lifespan(api):``."""
        async with self.opened():
            api.state.pgqueue = self
            yield

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection in a transaction: committed at the end of the block,
        rolled back if it raises."""
        async with self.pool.connection() as conn, conn.transaction():
            yield conn


async def request_connection(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """The dependency behind :data:`Connection`: one transaction per request."""
    queue: PgQueue | None = getattr(request.app.state, "pgqueue", None)
    if queue is None:
        raise RuntimeError("no pgqueue on this FastAPI app: create it with "
                           "FastAPI(lifespan=queue.lifespan)")
    async with queue.transaction() as conn:
        yield conn


#: An endpoint parameter ``conn: Connection`` gets the request's AsyncConnection, in a
#: transaction that ends (commit, or rollback on an exception) before the response is sent.
Connection = Annotated[psycopg.AsyncConnection[Any],
                       Depends(request_connection, scope="function")]
