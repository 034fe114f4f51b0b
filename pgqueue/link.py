"""One dedicated database connection of the worker, reconnected with capped backoff.

The worker keeps a few (claim, finish, heartbeat, listen) so that a slow
completion never delays a claim. A failed statement drops the connection; the
next use reconnects, waiting longer after each failure (up to a cap), so a
Postgres restart costs a pause, not a crash or a tight reconnect loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, TypeVar

import psycopg

from pgqueue.client import CONNECT_KWARGS
from pgqueue.client_async import run
from pgqueue.statements import Statement

T = TypeVar("T")
log = logging.getLogger("pgqueue.worker")

BACKOFF_START = 0.1
BACKOFF_CAP = 10.0


class Link:
    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = name
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self._failures = 0
        self.reconnected = False

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        while self.conn is None or self.conn.closed:
            if self._failures:
                delay = min(BACKOFF_CAP, BACKOFF_START * 2 ** (self._failures - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                self.conn = await psycopg.AsyncConnection.connect(
                    self.dsn, **{**CONNECT_KWARGS, "application_name": f"pgqueue {self.name}"}
                )
                if self._failures:
                    log.warning("%s connection: reconnected", self.name)
                    self.reconnected = True
                self._failures = 0
            except psycopg.OperationalError as exc:
                self._failures += 1
                log.warning("%s connection failed (%s); retrying", self.name,
                            str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
        return self.conn

    async def execute(self, stmt: Statement[T]) -> T:
        conn = await self.connect()
        try:
            return await run(conn, stmt)
        except psycopg.OperationalError:
            self._failures += 1
            await self.close()
            raise

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self.conn.close()
            self.conn = None
