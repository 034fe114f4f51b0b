"""Task: what ``@app.task`` makes of a function; ``delay`` / ``apply_async`` enqueue it.

Calling the task object itself runs the function here and now, as in Celery,
which keeps tasks easy to unit-test.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from pgqueue import statements
from pgqueue.canvas import Canvas, Signature
from pgqueue.options import EnqueueOptions, TaskOptions
from pgqueue.result import JobResult

if TYPE_CHECKING:
    import psycopg

    from pgqueue.app import App

P = ParamSpec("P")
R = TypeVar("R")


class Task(Generic[P, R]):
    """A registered function. Its options are one :class:`TaskOptions`; each call's
    options are one :class:`EnqueueOptions`, merged over the task's defaults."""

    def __init__(self, app: App, fn: Callable[P, R], options: TaskOptions | None = None, /,
                 **given: Any) -> None:
        options = options if options is not None else TaskOptions.from_kwargs(given)
        name = options.name or getattr(fn, "__name__", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{fn!r} has no __name__: register it with @app.task(name=...)")
        self.app = app
        self.fn = fn
        self.options = options
        self.name: str = name
        self.queue = options.queue
        self.priority = options.priority
        self.policy = options.policy
        self.bind = options.bind
        self.time_limit = options.time_limit
        self.soft_time_limit = options.soft_time_limit
        self.is_async = inspect.iscoroutinefunction(fn)
        if options.atomic and self.is_async:
            raise ValueError(f"task {self.name!r}: atomic=True needs a plain function (its "
                             "transaction runs on a sync connection in the worker's pool)")
        self.atomic = options.atomic
        self.redact = tuple(options.redact)  # argument names monitoring shows as •••
        # Complete already (queue, priority, attempts): make_request adds nothing to it.
        self.defaults = options.enqueue_defaults()
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no queue). A bound task needs its context first."""
        return self.fn(*args, **kwargs)

    def _request(self, args: Sequence[Any], kwargs: Mapping[str, Any] | None,
                 options: Mapping[str, Any] | EnqueueOptions) -> statements.EnqueueRequest:
        """The one place a call's options meet the task's defaults."""
        if not isinstance(options, EnqueueOptions):
            options = EnqueueOptions.from_kwargs(options)
        given = options.over(self.defaults)
        request = statements.make_request(self.name, args, kwargs, given)
        if self.options.unique and request.options.unique_key is None:
            return statements.with_unique_key(request)
        return request

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        """A signature: this task with these arguments, not sent yet (``.delay()``, ``|``,
        ``group``, ``chord``, ``app.enqueue_many([...])``). Encoded now, so a bad
        argument raises here."""
        return Signature(self.name, args, kwargs, task_object=self)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        """An immutable signature: in a chain it ignores the previous step's result."""
        return Signature(self.name, args, kwargs, immutable=True, task_object=self)

    def signature(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                  *, immutable: bool = False, **options: Any) -> Signature:
        """Like :meth:`s`, with options (those of :class:`EnqueueOptions`)."""
        return Signature(self.name, args, kwargs, options, immutable=immutable,
                         task_object=self)

    def map(self, arguments: Iterable[Sequence[Any]], *,
            connection: psycopg.Connection[Any] | None = None) -> list[JobResult]:
        """Enqueue one job per argument tuple, all in one statement."""
        return self.app.enqueuer.enqueue_same(self, list(arguments), connection)

    async def map_async(self, arguments: Iterable[Sequence[Any]], *,
                        connection: psycopg.AsyncConnection[Any] | None = None
                        ) -> list[JobResult]:
        return await self.app.enqueuer.enqueue_same_async(self, list(arguments), connection)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> JobResult:
        """Enqueue with these arguments and the task's default options."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    *, connection: psycopg.Connection[Any] | None = None,
                    link: Canvas | Sequence[Canvas] | None = None,
                    link_error: Canvas | Sequence[Canvas] | None = None,
                    **options: Any) -> JobResult:
        """Enqueue with options (``queue``, ``priority``, ``countdown``, ``eta``,
        ``headers``: :class:`EnqueueOptions`). With ``connection=`` the job joins
        that transaction. ``link`` callbacks run after it succeeds (with its result
        first), ``link_error`` ones if it fails (with its id and error first)."""
        if link is not None or link_error is not None:
            result: JobResult = Signature(self.name, args, kwargs, task_object=self).apply_async(
                connection=connection, link=link, link_error=link_error, **options)
            return result
        return self.app.enqueue(self._request(args, kwargs, options), connection=connection)

    async def delay_async(self, *args: P.args, **kwargs: P.kwargs) -> JobResult:
        return await self.apply_async_async(args, kwargs)

    async def apply_async_async(self, args: Sequence[Any] = (),
                                kwargs: Mapping[str, Any] | None = None, *,
                                connection: psycopg.AsyncConnection[Any] | None = None,
                                link: Canvas | Sequence[Canvas] | None = None,
                                link_error: Canvas | Sequence[Canvas] | None = None,
                                **options: Any) -> JobResult:
        """``apply_async`` for asyncio code; ``connection=`` takes an AsyncConnection."""
        if link is not None or link_error is not None:
            sig = Signature(self.name, args, kwargs, task_object=self)
            result: JobResult = await sig.apply_async_async(
                connection=connection, link=link, link_error=link_error, **options)
            return result
        return await self.app.enqueue_async(self._request(args, kwargs, options),
                                            connection=connection)

