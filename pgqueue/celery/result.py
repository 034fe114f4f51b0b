"""``celery.result``: ``AsyncResult``, ``GroupResult``, ``EagerResult``, in Celery's terms.

An :class:`AsyncResult` names a job by the id a caller kept: the job's id (an
int, or its text), or a task id the producer chose (``apply_async(task_id=...)``,
looked up in ``celery_task_ids``). An id that names no job, or can't be one,
reads ``PENDING`` (as in Celery) and never raises.

States and exceptions are read as :mod:`pgqueue.celery.reading` says: Celery's
state names, and ``get()`` raising the task's own exception type where the caller
can have it (else :class:`pgqueue.errors.TaskError`); a revoked task raises
:class:`TaskRevokedError`, a timeout the built-in ``TimeoutError``.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pgqueue import errors
from pgqueue.app import App as NativeApp
from pgqueue.celery import calling, states
from pgqueue.celery.reading import (
    cause_of,
    custom_state,
    exception_of,
    revoked,
    settle,
    state_of,
)
from pgqueue.celery.request import current as current_request
from pgqueue.eager import EagerResult as NativeEagerResult
from pgqueue.group_result import GroupResult as NativeGroupResult
from pgqueue.job import JobInfo, JobState
from pgqueue.result import JobResult

if TYPE_CHECKING:
    from pgqueue.app import App

_POLL = 0.5  # how often get() looks again for an id that names no job yet
_joins_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pgqueue_celery_joins_allowed", default=False)


def assert_will_not_block() -> None:
    """Celery's rule: a task in a worker must not wait for another task's result (a
    pool of such tasks waiting for each other deadlocks). ``get(disable_sync_subtasks=
    False)`` or ``with allow_join_result():`` waives it."""
    req = current_request()
    if req is not None and not req.called_directly and not req.is_eager \
            and not _joins_allowed.get():
        raise RuntimeError("Never call result.get() within a task! See "
                           "https://docs.celeryq.dev/en/latest/userguide/tasks.html"
                           "#avoid-launching-synchronous-subtasks")


@contextlib.contextmanager
def allow_join_result() -> Iterator[None]:
    """Let ``get()`` wait inside a task, as Celery's ``allow_join_result``."""
    token = _joins_allowed.set(True)
    try:
        yield
    finally:
        _joins_allowed.reset(token)


def _app(app: App | None) -> App:
    if app is not None:
        return app
    from pgqueue import current

    return current.current()


# -- AsyncResult --------------------------------------------------------------------
class AsyncResult:
    """Celery's ``AsyncResult(id)``: ``state``/``status``, ``result``/``info``,
    ``traceback``, ``get()``, ``ready()``, ``successful()``, ``failed()``,
    ``forget()``, ``revoke()``, ``id`` (always a str), ``parent``, ``children``.
    Every read asks the database: nothing is cached but the id's job."""

    def __init__(self, id: Any, backend: Any = None, task_name: str | None = None,
                 app: App | None = None, parent: Any = None) -> None:
        self.app = _app(app)
        self.id = str(id) if id is not None else ""
        self.task_id = self.id
        self.task_name = task_name
        self.backend = backend
        self.parent: Any = parent
        self._children: list[Any] | None = None
        self._job: JobResult | None = None
        self._resolved = False
        self.ignored = False  # sent with ignore_result=True: get() returns None at once
        if isinstance(id, int) and not isinstance(id, bool):
            self._set_job(JobResult(self.app, id))

    @classmethod
    def _of(cls, app: App, job: JobResult, task_id: str | None = None) -> AsyncResult:
        made = cls(task_id if task_id is not None else job.id, app=app)
        made._set_job(job)
        made.parent = wrap(app, job.parent) if job.parent is not None else None
        made._children = [wrap(app, c) for c in job.children]
        return made

    def _set_job(self, job: JobResult) -> None:
        self._job, self._resolved = job, True

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __str__(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __copy__(self) -> AsyncResult:
        return self

    # -- the job ------------------------------------------------------------
    def _resolve(self) -> JobResult | None:
        if self._resolved:
            return self._job
        if self.app.settings.eager:
            self._resolved = True
            self._job = _eager_ids.get((id(self.app), self.id)) or (
                self.app.enqueuer.lookup(int(self.id)) if self.id.isdigit() else None)
            return self._job
        job_id = calling.job_of_task_id(self.app, self.id) if self.id else None
        if job_id is None and self.id.isdigit() and len(self.id) < 19:
            job_id = int(self.id)
        if job_id is not None:
            self._set_job(JobResult(self.app, job_id))
        return self._job

    def _info(self) -> JobInfo | None:
        job = self._resolve()
        if job is None:
            return None
        try:
            return job.info()
        except errors.JobNotFound:
            return None

    @property
    def job_id(self) -> int | None:
        job = self._resolve()
        return job.id if job is not None else None

    # -- reading ------------------------------------------------------------
    @property
    def state(self) -> str:
        return state_of(self.app, self._info())

    status = state

    @property
    def name(self) -> str | None:
        info = self._info()
        return info.task if info is not None else self.task_name

    @property
    def queue(self) -> str | None:
        info = self._info()
        return info.queue if info is not None else None

    @property
    def retries(self) -> int | None:
        info = self._info()
        return max(info.attempts - 1, 0) if info is not None else None

    def _arguments(self) -> tuple[Any, Any] | None:
        job = self._resolve()
        if job is None or self.app.settings.eager:
            return None
        return calling.job_arguments(self.app, job.id)

    @property
    def args(self) -> Any:
        """The job's positional arguments (Celery's ``result_extended``); None if gone."""
        found = self._arguments()
        return tuple(found[0]) if found is not None else None

    @property
    def kwargs(self) -> Any:
        found = self._arguments()
        return found[1] if found is not None else None

    @property
    def date_done(self) -> Any:
        info = self._info()
        return info.finished_at if info is not None else None

    @property
    def result(self) -> Any:
        """The value (SUCCESS), the exception (FAILURE, RETRY, REVOKED), the meta a
        task set with ``update_state``, or None."""
        return self._result_of(self._info())

    info = result

    def _result_of(self, info: JobInfo | None) -> Any:
        if info is None:
            return None
        state = state_of(self.app, info)
        if info.state.finished:
            return settle(self.app, info, propagate=False)
        custom = custom_state(info) if info.state is JobState.RUNNING else None
        if custom is not None:
            return custom[1]
        if state == states.RETRY:
            return exception_of(info.error, info.id)
        if state == states.STARTED:
            return {"hostname": None, "pid": None}
        return None

    @property
    def traceback(self) -> str | None:
        return self._traceback_of(self._info())

    def _traceback_of(self, info: JobInfo | None) -> str | None:
        if info is None or info.error is None or info.state is JobState.SUCCEEDED:
            return None
        err, _ = cause_of(self.app, info)
        return err.traceback if err is not None and err.traceback else None

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def maybe_throw(self, propagate: bool = True, callback: Any = None) -> None:
        info = self._info()
        if info is not None and info.state.finished and info.state is not JobState.SUCCEEDED:
            settle(self.app, info, propagate)

    throw = maybe_throw

    # -- waiting ------------------------------------------------------------
    def get(self, timeout: float | None = None, propagate: bool = True,
            interval: float = 0.5, no_ack: bool = True, follow_parents: bool = True,
            callback: Any = None, on_message: Any = None, on_interval: Any = None,
            disable_sync_subtasks: bool = True, **kwargs: Any) -> Any:
        """Wait for the task; its value, or its exception raised (``propagate=False``:
        returned). ``TimeoutError`` after ``timeout`` seconds. An id with no job yet
        is waited for too, as in Celery."""
        if self.ignored:  # sent with ignore_result=True: nothing will be stored
            return None
        if disable_sync_subtasks:
            assert_will_not_block()
        deadline = None if timeout is None else time.monotonic() + timeout
        if on_message is not None:
            return self._get_with_messages(deadline, timeout, propagate, interval,
                                           on_message, callback)
        job = self._resolve()
        while job is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {self.id} is still PENDING after {timeout}s "
                                   "(no job has this id yet)")
            time.sleep(_POLL)
            self._resolved = False
            job = self._resolve()
        info = self._info()
        if info is not None and info.state is JobState.RUNNING and info.cancel_requested:
            value = revoked(info, propagate)  # revoked: Celery's get() doesn't wait for it
        else:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                job.get(left, propagate=False)
            except errors.JobNotFound:
                return None
            value = settle(self.app, job.info(), propagate)
        if callback is not None:
            callback(self.id, value)
        return value

    wait = get

    def _message(self, info: JobInfo | None) -> dict[str, Any]:
        """What Celery's result backend would send for this state (``on_message``),
        all read from one ``info``: a second read could see the job a state further."""
        state = state_of(self.app, info)
        result = self._result_of(info) if state != states.PENDING else None
        return {"task_id": self.id, "status": state, "result": result,
                "traceback": self._traceback_of(info) if state in states.EXCEPTION_STATES
                else None,
                "children": [], "date_done": info.finished_at if info is not None else None}

    def _get_with_messages(self, deadline: float | None, timeout: float | None,
                           propagate: bool, interval: float, on_message: Any,
                           callback: Any) -> Any:
        """get(on_message=fn): ``fn`` gets each new state as Celery's message dict while
        the task runs (read every ``interval`` seconds, at most 0.1), the final one too."""
        last: tuple[str, Any] | None = None
        while True:
            info = self._info()
            message = self._message(info)
            seen = (message["status"], repr(message["result"]))
            if seen != last:
                last = seen
                if message["status"] != states.PENDING:  # no backend sends a PENDING one
                    on_message(message)
            if message["status"] in states.READY_STATES:
                assert info is not None
                value = settle(self.app, info, propagate) if info.state.finished else \
                    revoked(info, propagate)
                if callback is not None:
                    callback(self.id, value)
                return value
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {self.id} is still {message['status']} after "
                                   f"{timeout}s")
            time.sleep(max(0.02, min(interval, 0.1)))  # short states: update_state writes at once

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """``(result, value)`` for this task and then its children (link callbacks,
        a chain's next steps), depth first, waiting for each."""
        yield self, self.get(**kwargs)
        for child in self.children:
            yield from child.collect(intermediate, **kwargs)

    # -- acting -------------------------------------------------------------
    def forget(self) -> None:
        """Remove a finished task's job and result now (it then reads PENDING)."""
        job = self._resolve()
        if job is not None and not self.app.settings.eager:
            calling.forget(self.app, job.id)

    def revoke(self, connection: Any = None, terminate: bool = False, signal: Any = None,
               wait: bool = False, timeout: float | None = None) -> None:
        """Cancel the job: a queued one never runs; a running one is stopped only with
        ``terminate=True`` (as in Celery). ``signal`` is not used: the worker stops
        the job as its pool allows (see pgqueue's cancel)."""
        job = self._resolve()
        if job is None:
            return
        info = self._info()
        if info is None or info.state.finished:
            return
        if info.state is JobState.RUNNING and not terminate:
            return
        job.cancel()
        if wait:
            job.get(timeout, propagate=False)

    # -- relations ----------------------------------------------------------
    @property
    def children(self) -> list[Any]:
        return list(self._children or [])

    def then(self, callback: Any, on_error: Any = None, weak: bool = False) -> None:
        raise NotImplementedError("AsyncResult.then(): pgqueue results have no promise "
                                  "callbacks; use link= on the call")

    def as_tuple(self) -> tuple[Any, Any]:
        parent = self.parent
        return (self.id, None), parent.as_tuple() if parent is not None else None

    def iterdeps(self) -> Iterator[tuple[Any, Any]]:
        for child in self.children:
            yield self, child


class EagerResult(AsyncResult):
    """What ``apply()`` (and ``task_always_eager``) returns: a task run here, finished."""

    def __init__(self, app: App, native: NativeEagerResult, task_id: str | None = None
                 ) -> None:
        super().__init__(task_id if task_id is not None else native.id, app=app)
        self._set_job(native)
        self._native = native
        if task_id is not None:  # a numeric id is pgqueue's eager lookup's already
            _eager_ids[(id(app), self.id)] = native
            if len(_eager_ids) > _EAGER_KEEP:
                del _eager_ids[next(iter(_eager_ids))]  # the oldest

    def _info(self) -> JobInfo | None:
        return self._native.job.info

    def get(self, timeout: float | None = None, propagate: bool = True,
            interval: float = 0.5, no_ack: bool = True, follow_parents: bool = True,
            callback: Any = None, on_message: Any = None, on_interval: Any = None,
            disable_sync_subtasks: bool = True, **kwargs: Any) -> Any:
        """The value, or the exception raised (never waits: it has run)."""
        return settle(self.app, self._native.job.info, propagate)

    wait = get

    def forget(self) -> None:
        _eager_ids.pop((id(self.app), self.id), None)

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        return None


# Eager results by (app, chosen task id), so AsyncResult(task_id) finds them in eager
# mode; bounded like pgqueue's own eager results (an app left eager, a dev server).
_eager_ids: dict[tuple[int, str], JobResult] = {}
_EAGER_KEEP = 10_000


# -- groups -------------------------------------------------------------------------
class GroupResult:
    """Celery's ``GroupResult``: ``get()``/``join()``, ``ready()``, ``successful()``,
    ``failed()``, ``completed_count()``, ``results`` (AsyncResults), ``id`` (str).
    ``GroupResult.restore(id)`` finds a group by its id; ``save()`` has nothing to
    do (a group is stored when it is enqueued)."""

    def __init__(self, id: Any = None, results: list[AsyncResult] | None = None,
                 parent: Any = None, app: App | None = None, *,
                 native: NativeGroupResult | None = None) -> None:
        self.app = _app(app)
        if native is None:  # pgqueue's own lookup (an app may override GroupResult)
            native = NativeApp.GroupResult(self.app, int(id))
        self._native = native
        self.id = str(native.id)
        self.parent = parent
        self._results = results
        self.children: list[Any] = []

    @classmethod
    def restore(cls, id: Any, backend: Any = None, app: App | None = None
                ) -> GroupResult | None:
        try:
            group = cls(id, app=app)
            group._native.completed_count()  # an unknown group: None, as in Celery
        except (TypeError, ValueError, errors.JobNotFound):
            return None
        return group

    def save(self, backend: Any = None) -> GroupResult:
        return self

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("group", self.id))

    @property
    def results(self) -> list[AsyncResult]:
        if self._results is None:
            self._results = [wrap(self.app, r) for r in self._native.results]
        return self._results

    def __iter__(self) -> Iterator[AsyncResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> AsyncResult:
        return self.results[index]

    def ready(self) -> bool:
        return self._native.ready()

    def successful(self) -> bool:
        return self._native.successful()

    def failed(self) -> bool:
        return self._native.failed()

    def waiting(self) -> bool:
        return not self._native.ready()

    def completed_count(self) -> int:
        return self._native.completed_count()

    def get(self, timeout: float | None = None, propagate: bool = True,
            **kwargs: Any) -> list[Any]:
        """The members' values in order; the first failure raised as its own type."""
        if kwargs.get("disable_sync_subtasks", True):
            assert_will_not_block()
        # A failure is read below, and raised as the member's own exception.
        with contextlib.suppress(errors.TaskError, errors.JobCancelled):
            self._native.get(timeout, propagate=propagate)
        infos = self._infos()
        values: list[Any] = []
        for info in infos:
            if not info.state.finished:
                values.append(None)
                continue
            values.append(settle(self.app, info, propagate))
        return values

    join = get
    join_native = get

    def _infos(self) -> list[JobInfo]:
        if isinstance(self._native, NativeGroupResult) and hasattr(self._native, "_infos") \
                and not self.app.settings.eager:
            return self._native._infos()
        return [r.info() for r in self._native.results]

    def revoke(self, connection: Any = None, terminate: bool = False, **kwargs: Any) -> None:
        for r in self.results:
            r.revoke(terminate=terminate)

    def forget(self) -> None:
        for r in self.results:
            r.forget()


def wrap(app: App, made: Any, task_id: str | None = None) -> Any:
    """pgqueue's result handle as Celery's: JobResult -> AsyncResult (EagerResult when it
    ran inline), GroupResult -> GroupResult, with parents and children."""
    if isinstance(made, (AsyncResult, GroupResult)):
        return made
    if isinstance(made, NativeEagerResult):
        result: AsyncResult = EagerResult(app, made, task_id)
        result.parent = wrap(app, made.parent) if made.parent is not None else None
        result._children = [wrap(app, c) for c in made.children]
        return result
    if isinstance(made, JobResult):
        return AsyncResult._of(app, made, task_id)
    if isinstance(made, NativeGroupResult):
        group = GroupResult(app=app, native=made)
        group.parent = wrap(app, made.parent) if made.parent is not None else None
        group.children = [wrap(app, c) for c in made.children]
        return group
    return made
