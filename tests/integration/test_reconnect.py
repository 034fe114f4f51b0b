"""Producers survive their connections dying idle (a Postgres restart, a fail-over,
an idle-connection killer): the pool checks a connection idle for over a second
before handing it out, so the next delay() just works."""

from __future__ import annotations

import asyncio
import time

from pgqueue import App, client
from tests.conftest import terminate_backends


def test_the_first_delay_after_the_backends_died_succeeds(app: App, dsn: str) -> None:
    add = app.tasks["add"]
    add.delay(1, 2)
    assert terminate_backends(dsn, 'pgqueue') >= 1
    time.sleep(client.RECHECK_AFTER + 0.1)
    assert add.delay(3, 4).id > 0
    assert app.AsyncResult(add.delay(5, 6).id).state == "queued"


def test_the_same_for_asyncio_producers(app: App, dsn: str) -> None:
    add = app.tasks["add"]

    async def go() -> None:
        try:
            await add.delay_async(1, 2)
            assert await asyncio.to_thread(terminate_backends, dsn, 'pgqueue') >= 1
            await asyncio.sleep(client.RECHECK_AFTER + 0.1)
            assert (await add.delay_async(3, 4)).id > 0
        finally:
            # Closed on this loop: asyncio.run() would otherwise cancel the pool's
            # tasks while one of them is reconnecting, and could wait on it forever.
            await app.async_client.close()

    asyncio.run(go())
