"""``self.request`` of a Celery task, and the ``einfo`` its handlers get.

The request is built from the worker's :class:`pgqueue.context.JobContext` for
each attempt and kept in a context variable, so threads and coroutines running
jobs side by side each see their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import traceback as tb
from dataclasses import dataclass, field
from typing import Any

from pgqueue.context import JobContext


@dataclass
class Request:
    """Celery's task request: ``id`` (str), ``retries``, ``args``, ``kwargs``,
    ``delivery_info``, ``hostname``, ``called_directly``... ``context`` is pgqueue's
    own (``update_progress``, ``is_cancelled``)."""

    id: str | None = None
    task: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    is_eager: bool = False
    called_directly: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    delivery_info: dict[str, Any] = field(default_factory=dict)
    hostname: str | None = None
    eta: Any = None
    expires: Any = None
    timelimit: tuple[float | None, float | None] = (None, None)
    root_id: str | None = None
    parent_id: str | None = None
    chord: Any = None
    callbacks: Any = None
    errbacks: Any = None
    correlation_id: str | None = None
    reply_to: str | None = None
    origin: str | None = None
    ignore_result: bool = False
    utc: bool = True
    context: JobContext | None = field(default=None, repr=False)
    # A retry asked for with throw=False: raised when the task returns.
    pending_retry: BaseException | None = field(default=None, repr=False)
    # What update_state(state=SUCCESS, meta=...) stored: the job's value if it then
    # raises Ignore (Celery's "store the result yourself" idiom).
    stored_result: Any = field(default=None, repr=False)
    task_object: Any = field(default=None, repr=False)  # the Task running (current_task)

    _group: str | None = field(default=None, repr=False)
    _group_read: bool = field(default=False, repr=False)

    @property
    def group(self) -> str | None:
        """The id of the group this task is a member of (read once, when asked)."""
        if not self._group_read:
            self._group_read = True
            task = self.task_object
            ctx = self.context
            if task is not None and ctx is not None and ctx.lease is not None:
                from pgqueue.celery.calling import group_of_job

                with contextlib.suppress(Exception):  # advisory, like Celery's field
                    found = group_of_job(task.app, ctx.job_id)
                    self._group = str(found) if found is not None else None
        return self._group

    @group.setter
    def group(self, value: str | None) -> None:
        self._group, self._group_read = value, True

    @property
    def job_id(self) -> int | None:
        return self.context.job_id if self.context is not None else None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


_current: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "pgqueue_celery_request", default=None)
_HOST = socket.gethostname()


def from_context(ctx: JobContext, task: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any], task_id: str) -> Request:
    return Request(
        id=task_id, task=ctx.task, args=args, kwargs=kwargs, retries=ctx.retries,
        is_eager=ctx.lease is None, called_directly=False, headers=dict(ctx.headers),
        delivery_info={"exchange": "", "routing_key": ctx.queue, "priority": None,
                       "redelivered": ctx.attempt > 1},
        hostname=f"celery@{_HOST}", root_id=task_id,
        timelimit=(getattr(task, "time_limit", None), getattr(task, "soft_time_limit", None)),
        ignore_result=bool(getattr(task, "ignore_result", False)), context=ctx)


def current() -> Request | None:
    return _current.get()


def push(request: Request) -> contextvars.Token[Request | None]:
    return _current.set(request)


def pop(token: contextvars.Token[Request | None]) -> None:
    _current.reset(token)


class ExceptionInfo:
    """Celery's ``einfo``: ``.exception``, ``.type``, ``.tb``, ``.traceback`` (text)."""

    def __init__(self, exc: BaseException) -> None:
        self.exception = exc
        self.type = type(exc)
        self.tb = exc.__traceback__
        self.traceback = "".join(tb.format_exception(exc))
        self.internal = False

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"
