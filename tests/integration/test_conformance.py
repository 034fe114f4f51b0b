"""One suite, every executor: the same statements through each, the same answers.

The executors are the producer's sync Client, the async AsyncClient and the
worker's (and scheduler's) Link. The Django integration's client is a Client
that picks Django's connection; its own tests run it inside a Django project.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from pgqueue import JobState, statements
from pgqueue.client import Client
from pgqueue.client_async import AsyncClient
from pgqueue.db import AsyncExecutor, SyncExecutor
from pgqueue.link import Link
from pgqueue.options import EnqueueOptions
from pgqueue.statements import Finish, Statement

T = TypeVar("T")
Run = Callable[[Statement[Any]], Awaitable[Any]]
SCHEMA = "pgqueue"


def _sync(executor: SyncExecutor) -> Run:
    async def run(stmt: Statement[Any]) -> Any:
        return await asyncio.to_thread(executor.execute, stmt)
    return run


def _async(executor: AsyncExecutor) -> Run:
    return executor.execute


@pytest.fixture(params=["client", "async_client", "link"])
def run(request: pytest.FixtureRequest, dsn: str) -> Iterator[Run]:
    kind = request.param
    if kind == "client":
        client = Client(lambda: dsn, 2, 5)
        yield _sync(client)
        client.close()
    elif kind == "async_client":
        yield _async(AsyncClient(lambda: dsn, 2, 5))
    else:
        yield _async(Link(dsn, "conformance"))


def _request(task: str, *args: Any, **options: Any) -> statements.EnqueueRequest:
    return statements.make_request(task, args, None, EnqueueOptions(**options))


def go(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_enqueue_read_claim_finish(run: Run) -> None:
    async def case() -> None:
        ids = await run(statements.enqueue(SCHEMA, [_request("add", 1, 2, queue="q"),
                                                    _request("add", 3, 4, queue="q")]))
        assert len(ids) == 2 and ids[0] < ids[1]
        info = await run(statements.get_job(SCHEMA, ids[0]))
        assert (info.task, info.queue, info.state) == ("add", "q", JobState.QUEUED)
        worker = await run(statements.register_worker(
            SCHEMA, name="w", host="h", pid=1, queues=["q"], pool="threads", concurrency=1))
        claimed = await run(statements.claim(SCHEMA, worker, ["q"], 10, 30))
        assert [j.id for j in claimed] == ids and claimed[0].args_json == "[1, 2]"
        done = await run(statements.finish(SCHEMA, worker, [
            Finish(claimed[0].id, claimed[0].lease, JobState.SUCCEEDED, value_json="3",
                   queue=claimed[0].queue)]))
        assert done == {ids[0]}
        again = await run(statements.finish(SCHEMA, worker, [
            Finish(claimed[0].id, claimed[0].lease, JobState.SUCCEEDED, value_json="3",
                   queue=claimed[0].queue)]))
        assert again == set()  # the lease is spent: a repeat changes nothing
        assert (await run(statements.get_job(SCHEMA, ids[0]))).result == 3
    go(case())


def test_cancel_retry_and_missing_rows(run: Run) -> None:
    async def case() -> None:
        (job,) = await run(statements.enqueue(SCHEMA, [_request("add", 1, countdown=60)]))
        assert await run(statements.cancel_job(SCHEMA, job)) is JobState.CANCELLED
        assert await run(statements.cancel_job(SCHEMA, job)) is None
        assert await run(statements.retry_jobs(SCHEMA)) == []  # bulk: failed only
        assert await run(statements.retry_jobs(SCHEMA, ids=[job])) == [job]
        assert await run(statements.get_job(SCHEMA, 10**12)) is None
        # due since just now: counted when the last claim began before it
        due = await run(statements.seconds_until_next_job(SCHEMA, ["default"], 5.0))
        assert due is not None and due <= 0.5
        # due before the last claim began: left by it (held back), not counted
        assert await run(statements.seconds_until_next_job(SCHEMA, ["default"])) is None
    go(case())
