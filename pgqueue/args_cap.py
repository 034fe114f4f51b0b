"""The cap on a job's arguments (``PGQ_MAX_ARGS_BYTES``), checked in one place.

Every way of enqueueing (``delay``, ``apply_async``, ``enqueue_many``, ``map``,
canvases, sync or async, eager or not) reaches the App's enqueuer, so the App wraps
its enqueuer in :class:`CappedEnqueuer`: a job over the cap raises
:class:`~pgqueue.errors.ArgumentsTooLarge` before any SQL is sent, which leaves the
caller's transaction usable. The arguments are already encoded by then (encoding
errors come first); measuring them costs a ``len`` unless they are near the cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pgqueue import encoding
from pgqueue.errors import ArgumentsTooLarge
from pgqueue.statements import EnqueueRequest

if TYPE_CHECKING:
    import psycopg

    from pgqueue.enqueuer import Enqueuer
    from pgqueue.group_result import GroupResult
    from pgqueue.plan import Plan
    from pgqueue.result import JobResult
    from pgqueue.task import Task
    from pgqueue.workflow import Written


def json_bytes(*texts: str) -> int:
    """UTF-8 bytes of the texts (pgqueue's JSON is ASCII but for non-ASCII strings)."""
    return sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass"))
               for t in texts)


def check_request(request: EnqueueRequest, limit: int) -> None:
    chars = len(request.args_json) + len(request.kwargs_json)
    if chars * 4 <= limit:  # no character takes more than 4 bytes: surely fits
        return
    size = json_bytes(request.args_json, request.kwargs_json)
    if size > limit:
        raise ArgumentsTooLarge(request.task, size, limit)


def check_requests(requests: Iterable[EnqueueRequest], limit: int) -> None:
    for r in requests:
        check_request(r, limit)


def check_arglists(task: str, encoded: str, arglists: Sequence[Sequence[Any]],
                   limit: int) -> None:
    """``map()``'s arguments, encoded as one array: only if that whole array is over
    the cap can one job be, and only then is each encoded on its own to find it."""
    if len(encoded) * 4 <= limit or json_bytes(encoded) <= limit:
        return
    for args in arglists:
        size = json_bytes(encoding.dumps(list(args), "args"))
        if size > limit:
            raise ArgumentsTooLarge(task, size, limit)


def check_plan(plan: Plan, limit: int) -> None:
    for step in plan.steps:
        check_request(step.request, limit)
        check_requests(step.errbacks, limit)


class CappedEnqueuer:
    """An enqueuer that refuses jobs over the cap, then hands the rest to ``inner``.
    (``map()`` on the database path is checked where its array is encoded:
    :meth:`pgqueue.enqueuer.DatabaseEnqueuer._same`; its other paths come back here.)"""

    def __init__(self, inner: Enqueuer, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    def enqueue(self, batch: list[EnqueueRequest],
                connection: psycopg.Connection[Any] | None) -> list[JobResult]:
        check_requests(batch, self.limit)
        return self.inner.enqueue(batch, connection)

    async def enqueue_async(self, batch: list[EnqueueRequest],
                            connection: psycopg.AsyncConnection[Any] | None
                            ) -> list[JobResult]:
        check_requests(batch, self.limit)
        return await self.inner.enqueue_async(batch, connection)

    def enqueue_same(self, task: Task[..., Any], arglists: list[Sequence[Any]],
                     connection: psycopg.Connection[Any] | None) -> list[JobResult]:
        return self.inner.enqueue_same(task, arglists, connection)

    async def enqueue_same_async(self, task: Task[..., Any], arglists: list[Sequence[Any]],
                                 connection: psycopg.AsyncConnection[Any] | None
                                 ) -> list[JobResult]:
        return await self.inner.enqueue_same_async(task, arglists, connection)

    def enqueue_workflow(self, plan: Plan, connection: psycopg.Connection[Any] | None
                         ) -> Written:
        check_plan(plan, self.limit)
        return self.inner.enqueue_workflow(plan, connection)

    async def enqueue_workflow_async(self, plan: Plan,
                                     connection: psycopg.AsyncConnection[Any] | None
                                     ) -> Written:
        check_plan(plan, self.limit)
        return await self.inner.enqueue_workflow_async(plan, connection)

    def lookup(self, job_id: int) -> JobResult | None:
        return self.inner.lookup(job_id)

    def lookup_group(self, group_id: int) -> GroupResult | None:
        return self.inner.lookup_group(group_id)
