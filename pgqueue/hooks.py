"""Hooks: user code that runs around enqueues and task executions.

``app.hooks`` collects them; the worker calls them in the thread (or child
process, or event loop) that runs the job, so context they set — a tracing
span, a logging context — is the task's own. A hook that raises is logged and
otherwise ignored: observing a job must never fail it.

    @app.hooks.before_task
    def log_start(ctx): ...              # ctx: JobContext (job_id, task, attempt, headers)
    @app.hooks.after_task
    def log_end(ctx, outcome, value): ...  # outcome: succeeded|failed|retry|timed_out|cancelled
    @app.hooks.task_failure
    def alert(ctx, exc): ...             # the task raised (whether or not it will retry)
    @app.hooks.task_retry
    def note(ctx, exc): ...              # ...and it will run again
    @app.hooks.around_task
    def span(ctx): return tracer.start_as_current_span(ctx.task)   # a context manager
    @app.hooks.before_enqueue
    def headers(task_name): return {"traceparent": ...}  # headers to send with the job
    @app.hooks.worker_started
    def ready(worker): ...               # a worker registered and listens (its event loop)
    @app.hooks.worker_stopping
    def bye(worker): ...                 # a worker that served is stopping
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pgqueue.context import JobContext

log = logging.getLogger("pgqueue.hooks")
F = TypeVar("F", bound=Callable[..., Any])


class Hooks:
    def __init__(self) -> None:
        self._before: list[Callable[[JobContext], object]] = []
        self._after: list[Callable[[JobContext, str, Any], object]] = []
        self._failure: list[Callable[[JobContext, BaseException], object]] = []
        self._retry: list[Callable[[JobContext, BaseException], object]] = []
        self._around: list[Callable[[JobContext], contextlib.AbstractContextManager[Any]]] = []
        self._enqueue: list[Callable[[str], Mapping[str, str] | None]] = []
        self._worker_started: list[Callable[[Any], object]] = []
        self._worker_stopping: list[Callable[[Any], object]] = []

    # -- registering (decorators) ----------------------------------------------
    def before_task(self, fn: F) -> F:
        self._before.append(fn)
        return fn

    def after_task(self, fn: F) -> F:
        self._after.append(fn)
        return fn

    def task_failure(self, fn: F) -> F:
        self._failure.append(fn)
        return fn

    def task_retry(self, fn: F) -> F:
        self._retry.append(fn)
        return fn

    def around_task(self, fn: F) -> F:
        self._around.append(fn)
        return fn

    def before_enqueue(self, fn: F) -> F:
        self._enqueue.append(fn)
        return fn

    def worker_started(self, fn: F) -> F:
        self._worker_started.append(fn)
        return fn

    def worker_stopping(self, fn: F) -> F:
        self._worker_stopping.append(fn)
        return fn

    # -- calling ---------------------------------------------------------------
    @property
    def any_task_hooks(self) -> bool:
        return bool(self._before or self._after or self._failure or self._retry or self._around)

    @property
    def any_enqueue_hooks(self) -> bool:
        return bool(self._enqueue)

    def _call(self, hook: Callable[..., object], *args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            log.exception("hook %s failed (ignored)", getattr(hook, "__qualname__", hook))

    @contextlib.contextmanager
    def around(self, ctx: JobContext) -> Iterator[None]:
        """Enter every around_task context, then the before_task hooks."""
        with contextlib.ExitStack() as stack:
            for factory in self._around:
                try:
                    stack.enter_context(factory(ctx))
                except Exception:
                    log.exception("around_task hook %s failed (ignored)", factory)
            for hook in self._before:
                self._call(hook, ctx)
            yield

    def finished(self, ctx: JobContext, outcome: str, value: Any,
                 exc: BaseException | None = None, retrying: bool = False) -> None:
        if exc is not None:
            for failure in self._failure:
                self._call(failure, ctx, exc)
            if retrying:
                for retry in self._retry:
                    self._call(retry, ctx, exc)
        for after in self._after:
            self._call(after, ctx, outcome, value)

    def worker_event(self, started: bool, worker: Any) -> None:
        """A worker started serving (``started``) or is stopping: its hooks, each guarded."""
        for hook in self._worker_started if started else self._worker_stopping:
            self._call(hook, worker)

    def headers(self, task: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for hook in self._enqueue:
            try:
                out.update(hook(task) or {})
            except Exception:
                log.exception("before_enqueue hook %s failed (ignored)", hook)
        return out
