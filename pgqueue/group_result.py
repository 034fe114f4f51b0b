"""GroupResult: a handle on a group's members, to wait for all their results at once.

Counting is the database's: a group's row holds how many members succeeded
and failed (the workflow trigger updates it as each member ends), so
``ready()`` or ``completed_count()`` is one small read however many members
there are, and ``get()`` waits for one notification, the group's, not one per
member. Members are read in one query when the values are needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pgqueue import statements, waiters
from pgqueue.errors import JobNotFound
from pgqueue.job import JobInfo, JobState
from pgqueue.result import RECHECK_SECONDS, JobResult, settle

if TYPE_CHECKING:
    from pgqueue.app import App


class GroupResult:
    """Celery's GroupResult: ``g.get()``, ``g.ready()``, ``g.successful()``,
    ``g.failed()``, ``g.completed_count()``, ``g.results``, ``g.id``.

    Restore one from its id with ``app.GroupResult(id)``.
    """

    def __init__(self, app: App, group_id: int, results: list[JobResult] | None = None) -> None:
        self.app = app
        self.id = int(group_id)
        self._results = results
        self.parent: JobResult | GroupResult | None = None
        self.children: list[JobResult | GroupResult] = []
        self.workflow_id: int | None = None

    def __repr__(self) -> str:
        return f"<GroupResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("group", self.id))

    @property
    def _schema(self) -> str:
        return self.app.settings.schema

    # -- members ------------------------------------------------------------
    @property
    def results(self) -> list[JobResult]:
        """A JobResult per member, in member order."""
        if self._results is None:
            self._results = [JobResult(self.app, i.id) for i in self._infos()]
        return self._results

    def __iter__(self) -> Iterator[JobResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def _infos(self) -> list[JobInfo]:
        return self.app.client.execute(statements.group_members(self._schema, self.id))

    async def _infos_async(self) -> list[JobInfo]:
        return await self.app.async_client.execute(
            statements.group_members(self._schema, self.id))

    def _counts(self) -> tuple[int, int, int]:
        counts = self.app.client.execute(statements.group_status(self._schema, self.id))
        return self._found(counts)

    async def _counts_async(self) -> tuple[int, int, int]:
        counts = await self.app.async_client.execute(
            statements.group_status(self._schema, self.id))
        return self._found(counts)

    def _found(self, counts: tuple[int, int, int] | None) -> tuple[int, int, int]:
        if counts is None:
            raise JobNotFound(f"no group with id {self.id} (never created, or already pruned)")
        return counts

    # -- reading ------------------------------------------------------------
    def ready(self) -> bool:
        """Whether every member has ended (succeeded, failed or cancelled)."""
        size, ok, bad = self._counts()
        return ok + bad >= size

    def successful(self) -> bool:
        size, ok, _ = self._counts()
        return ok == size

    def failed(self) -> bool:
        """Whether any member failed (or was cancelled)."""
        return self._counts()[2] > 0

    def waiting(self) -> bool:
        return not self.ready()

    def completed_count(self) -> int:
        """How many members succeeded."""
        return self._counts()[1]

    async def ready_async(self) -> bool:
        size, ok, bad = await self._counts_async()
        return ok + bad >= size

    async def successful_async(self) -> bool:
        size, ok, _ = await self._counts_async()
        return ok == size

    async def failed_async(self) -> bool:
        return (await self._counts_async())[2] > 0

    async def completed_count_async(self) -> int:
        return (await self._counts_async())[1]

    # -- acting -------------------------------------------------------------
    def cancel(self) -> list[JobState | None]:
        """Cancel every member (each as ``JobResult.cancel`` does)."""
        return [r.cancel() for r in self.results]

    async def cancel_async(self) -> list[JobState | None]:
        return [await r.cancel_async() for r in await self._results_async()]

    async def _results_async(self) -> list[JobResult]:
        if self._results is None:
            self._results = [JobResult(self.app, i.id) for i in await self._infos_async()]
        return self._results

    revoke = cancel

    # -- waiting ------------------------------------------------------------
    def _step(self, counts: tuple[int, int, int], deadline: float | None,
              timeout: float | None, propagate: bool) -> float | None:
        """None when the values can be read; else how long to wait for a notification."""
        size, ok, bad = counts
        if ok + bad >= size or (bad and propagate):
            return None
        wait = RECHECK_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError(f"group {self.id}: {ok + bad} of {size} members have "
                                   f"ended after {timeout}s; are workers running for their "
                                   "queues?")
        return wait

    def _values(self, infos: list[JobInfo], propagate: bool) -> list[Any]:
        # The first failure in member order is raised (Celery's join does the same).
        return [settle(i, propagate) if i.state.finished else None for i in infos]

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> list[Any]:
        """Wait for every member and return their results in member order; with
        ``propagate`` (the default) a failed member's error is raised as soon as one
        has failed. Raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with waiters.waiting(self.app, -self.id) as waiter:  # groups notify as -id
            while True:
                waiter.clear()
                wait = self._step(self._counts(), deadline, timeout, propagate)
                if wait is None:
                    return self._values(self._infos(), propagate)
                waiter.wait(wait)

    join = get

    async def get_async(self, timeout: float | None = None, *,
                        propagate: bool = True) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        async with waiters.waiting_async(self.app, -self.id) as waiter:
            while True:
                waiter.clear()
                wait = self._step(await self._counts_async(), deadline, timeout, propagate)
                if wait is None:
                    return self._values(await self._infos_async(), propagate)
                await waiter.wait(wait)

    join_async = get_async
