"""Where ``App`` sends the jobs it enqueues: the database (this module) or, in eager
mode, inline runs (:class:`pgqueue.eager.EagerEnqueuer`).

The App is given one enqueuer when it is built (and a new one by
``configure(eager=...)``) instead of checking a flag on every call, so the
enqueue path has one shape and eager mode is a client like any other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pgqueue import args_cap, statements
from pgqueue.group_result import GroupResult
from pgqueue.result import JobResult
from pgqueue.statements import EnqueueRequest, Statement
from pgqueue.workflow import Written

if TYPE_CHECKING:
    import psycopg

    from pgqueue.app import App
    from pgqueue.plan import Plan
    from pgqueue.task import Task


class Enqueuer(Protocol):
    def enqueue(self, batch: list[EnqueueRequest],
                connection: psycopg.Connection[Any] | None) -> list[JobResult]: ...

    async def enqueue_async(self, batch: list[EnqueueRequest],
                            connection: psycopg.AsyncConnection[Any] | None
                            ) -> list[JobResult]: ...

    def enqueue_same(self, task: Task[..., Any], arglists: list[Sequence[Any]],
                     connection: psycopg.Connection[Any] | None) -> list[JobResult]: ...

    async def enqueue_same_async(self, task: Task[..., Any], arglists: list[Sequence[Any]],
                                 connection: psycopg.AsyncConnection[Any] | None
                                 ) -> list[JobResult]: ...

    def enqueue_workflow(self, plan: Plan, connection: psycopg.Connection[Any] | None
                         ) -> Written: ...

    async def enqueue_workflow_async(self, plan: Plan,
                                     connection: psycopg.AsyncConnection[Any] | None
                                     ) -> Written: ...

    def lookup(self, job_id: int) -> JobResult | None:
        """A result this enqueuer keeps itself (eager mode), else None."""
        ...

    def lookup_group(self, group_id: int) -> GroupResult | None:
        """A group result this enqueuer keeps itself (eager mode), else None."""
        ...


class DatabaseEnqueuer:
    """Writes jobs as rows: on the caller's connection (its transaction) or the pool."""

    def __init__(self, app: App) -> None:
        self.app = app

    def _results(self, written: list[tuple[int, dt.datetime]]) -> list[JobResult]:
        return [JobResult(self.app, job_id, enqueued_at=at) for job_id, at in written]

    def _write(self, batch: list[EnqueueRequest]) -> Statement[list[JobResult]]:
        if any(r.options.unique_key is not None for r in batch):
            return self._write_unique(batch)
        stmt = statements.enqueue(self.app.settings.schema, batch)
        return statements.mapped(statements.timed(stmt), self._results)

    def _write_unique(self, batch: list[EnqueueRequest]) -> Statement[list[JobResult]]:
        """A batch with unique keys: a key given twice is written once, and both get
        that job (the second as deduplicated)."""
        first: dict[str, int] = {}  # key -> place in the statement's batch
        sent: list[EnqueueRequest] = []
        places: list[tuple[int, bool]] = []  # per request: (place sent, repeated here)
        for r in batch:
            key = r.options.unique_key
            if key is not None and key in first:
                places.append((first[key], True))
                continue
            if key is not None:
                first[key] = len(sent)
            places.append((len(sent), False))
            sent.append(r)

        def results(rows: list[tuple[int, dt.datetime | None, bool]]) -> list[JobResult]:
            return [JobResult(self.app, rows[i][0], enqueued_at=None if again else rows[i][1],
                              deduplicated=again or rows[i][2])
                    for i, again in places]

        return statements.mapped(statements.enqueue_unique(self.app.settings.schema, sent),
                                 results)

    def _same(self, task: Task[..., Any], arglists: list[Sequence[Any]]
              ) -> Statement[list[JobResult]] | None:
        """The one-task batch statement, or None where each job needs its own row
        parameters (enqueue hooks add headers to each job)."""
        if not arglists or self.app.hooks.any_enqueue_hooks or task.options.unique:
            return None
        stmt = statements.enqueue_same(self.app.settings.schema, task.name, task.defaults,
                                       arglists)
        args_cap.check_arglists(task.name, stmt.params["args"], arglists,
                                self.app.settings.max_args_bytes)
        return statements.mapped(statements.timed(stmt), self._results)

    def enqueue(self, batch: list[EnqueueRequest],
                connection: psycopg.Connection[Any] | None) -> list[JobResult]:
        return self.app.client.execute(self._write(batch), connection) if batch else []

    async def enqueue_async(self, batch: list[EnqueueRequest],
                            connection: psycopg.AsyncConnection[Any] | None
                            ) -> list[JobResult]:
        if not batch:
            return []
        return await self.app.async_client.execute(self._write(batch), connection)

    def enqueue_same(self, task: Task[..., Any], arglists: list[Sequence[Any]],
                     connection: psycopg.Connection[Any] | None) -> list[JobResult]:
        stmt = self._same(task, arglists)
        if stmt is None:
            return self.app.enqueue_many(each(task, arglists), connection=connection)
        return self.app.client.execute(stmt, connection)

    async def enqueue_same_async(self, task: Task[..., Any], arglists: list[Sequence[Any]],
                                 connection: psycopg.AsyncConnection[Any] | None
                                 ) -> list[JobResult]:
        stmt = self._same(task, arglists)
        if stmt is None:
            return await self.app.enqueue_many_async(each(task, arglists),
                                                     connection=connection)
        return await self.app.async_client.execute(stmt, connection)

    def _workflow(self, plan: Plan) -> Statement[Written]:
        def written(decoded: tuple[list[tuple[int, dt.datetime]], list[int], list[int]]
                    ) -> Written:
            jobs, groups, workflows = decoded
            return Written(self._results(jobs), groups, workflows)

        return statements.mapped(statements.enqueue_workflow(self.app.settings.schema, plan),
                                 written)

    def enqueue_workflow(self, plan: Plan, connection: psycopg.Connection[Any] | None
                         ) -> Written:
        return self.app.client.execute(self._workflow(plan), connection)

    async def enqueue_workflow_async(self, plan: Plan,
                                     connection: psycopg.AsyncConnection[Any] | None
                                     ) -> Written:
        return await self.app.async_client.execute(self._workflow(plan), connection)

    def lookup(self, job_id: int) -> JobResult | None:
        return None

    def lookup_group(self, group_id: int) -> GroupResult | None:
        return None


def each(task: Task[..., Any], arglists: list[Sequence[Any]]) -> list[EnqueueRequest]:
    """``map()``'s jobs one by one, for the paths that write each row on its own."""
    # The task's own _request: the one place its defaults meet a call's options.
    return [task._request(args, None, {}) for args in arglists]
