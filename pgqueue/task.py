"""Task: what ``@app.task`` makes of a function; ``delay`` / ``apply_async`` enqueue it.

Calling the task object itself runs the function here and now, as in Celery,
which keeps tasks easy to unit-test.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from pgqueue import statements
from pgqueue.result import JobResult
from pgqueue.retry import RetryPolicy

if TYPE_CHECKING:
    import psycopg

    from pgqueue.app import App

P = ParamSpec("P")
R = TypeVar("R")


class Task(Generic[P, R]):
    def __init__(self, app: App, fn: Callable[P, R], *, name: str, queue: str,
                 priority: int, policy: RetryPolicy | None = None, bind: bool = False,
                 time_limit: float | None = None,
                 soft_time_limit: float | None = None, atomic: bool = False,
                 redact: Sequence[str] = ()) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue
        self.priority = priority
        self.policy = policy or RetryPolicy()
        self.bind = bind
        for label, limit in (("time_limit", time_limit), ("soft_time_limit", soft_time_limit)):
            if limit is not None and limit <= 0:
                raise ValueError(f"{label} must be positive seconds, not {limit}")
        if time_limit and soft_time_limit and soft_time_limit >= time_limit:
            raise ValueError("soft_time_limit must be shorter than time_limit")
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit
        self.is_async = inspect.iscoroutinefunction(fn)
        if atomic and self.is_async:
            raise ValueError(f"task {name!r}: atomic=True needs a plain function (its "
                             "transaction runs on a sync connection in the worker's pool)")
        self.atomic = atomic
        self.redact = tuple(redact)  # argument names monitoring shows as •••
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no queue). A bound task needs its context first."""
        return self.fn(*args, **kwargs)

    def _request(self, args: Sequence[Any], kwargs: Mapping[str, Any] | None,
                 queue: str | None, priority: int | None, countdown: float | None,
                 eta: dt.datetime | None) -> statements.EnqueueRequest:
        return statements.make_request(
            self.name, args, kwargs,
            queue=queue or self.queue,
            priority=self.priority if priority is None else priority,
            countdown=countdown,
            eta=eta,
            max_attempts=self.policy.max_attempts,
        )

    def s(self, *args: P.args, **kwargs: P.kwargs) -> statements.EnqueueRequest:
        """A job ready to enqueue (encoded now), for ``app.enqueue_many([...])``."""
        return self._request(args, kwargs, None, None, None, None)

    def signature(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *,
                  queue: str | None = None, priority: int | None = None,
                  countdown: float | None = None,
                  eta: dt.datetime | None = None) -> statements.EnqueueRequest:
        """Like :meth:`s`, with options."""
        return self._request(args, kwargs, queue, priority, countdown, eta)

    def map(self, arguments: Iterable[Sequence[Any]], *,
            connection: psycopg.Connection[Any] | None = None) -> list[JobResult]:
        """Enqueue one job per argument tuple, all in one statement."""
        arglists = list(arguments)
        stmt = self._same(arglists)
        if stmt is None:
            return self.app.enqueue_many([self._request(a, None, None, None, None, None)
                                          for a in arglists], connection=connection)
        return self.app.results(self.app.client.execute(stmt, connection))

    async def map_async(self, arguments: Iterable[Sequence[Any]], *,
                        connection: psycopg.AsyncConnection[Any] | None = None
                        ) -> list[JobResult]:
        arglists = list(arguments)
        stmt = self._same(arglists)
        if stmt is None:
            return await self.app.enqueue_many_async(
                [self._request(a, None, None, None, None, None) for a in arglists],
                connection=connection)
        return self.app.results(await self.app.async_client.execute(stmt, connection))

    def _same(self, arglists: list[Sequence[Any]]) -> statements.Statement[list[int]] | None:
        """The one-task batch statement, or None where the general path is needed
        (eager mode runs jobs inline; enqueue hooks add headers to each job)."""
        if not arglists or self.app.settings.eager or self.app.hooks.any_enqueue_hooks:
            return None
        return statements.enqueue_same(self.app.settings.schema, self.name, self.queue,
                                       self.priority, self.policy.max_attempts, arglists)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> JobResult:
        """Enqueue with these arguments and the task's default options."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        countdown: float | None = None,
        eta: dt.datetime | None = None,
        connection: psycopg.Connection[Any] | None = None,
    ) -> JobResult:
        """Enqueue with options. With ``connection=`` the job joins that transaction."""
        request = self._request(args, kwargs, queue, priority, countdown, eta)
        return self.app.enqueue(request, connection=connection)

    async def delay_async(self, *args: P.args, **kwargs: P.kwargs) -> JobResult:
        return await self.apply_async_async(args, kwargs)

    async def apply_async_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        countdown: float | None = None,
        eta: dt.datetime | None = None,
        connection: psycopg.AsyncConnection[Any] | None = None,
    ) -> JobResult:
        """``apply_async`` for asyncio code; ``connection=`` takes an AsyncConnection."""
        request = self._request(args, kwargs, queue, priority, countdown, eta)
        return await self.app.enqueue_async(request, connection=connection)
