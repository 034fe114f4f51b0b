"""``celery.result``: ``AsyncResult``, ``GroupResult``, ``EagerResult``, in Celery's terms.

An :class:`AsyncResult` names a job by the id a caller kept: the job's id (an
int, or its text), or a task id the producer chose (``apply_async(task_id=...)``,
looked up in ``celery_task_ids``). An id that names no job, or can't be one,
reads ``PENDING`` (as in Celery) and never raises.

States, from pgqueue's: waiting/queued -> ``PENDING``, or ``RETRY`` when an
earlier attempt failed; running -> the state the task set with
``update_state``, else ``STARTED`` with ``track_started``, else ``RETRY`` after a
failed attempt, else ``PENDING``; succeeded -> ``SUCCESS``; failed -> ``FAILURE``
(also a workflow step that never ran because an earlier one failed: its error
is that step's); cancelled or expired -> ``REVOKED``.

``get()`` raises a failed task's exception as its own type when the caller can
have it: a built-in exception, or an ``Exception`` subclass importable by the
module and name the worker recorded, built from its recorded args (JSON) or
its message. Nothing else is ever called or unpickled. Otherwise it raises
:class:`pgqueue.errors.TaskError` (the fallback), whose ``.type``,
``.message`` and ``.traceback`` are the remote exception's. A revoked task
raises :class:`TaskRevokedError`; a timeout the built-in ``TimeoutError``.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pgqueue import encoding, errors
from pgqueue.app import App as NativeApp
from pgqueue.celery import calling, states
from pgqueue.celery.exceptions import TaskRevokedError
from pgqueue.eager import EagerResult as NativeEagerResult
from pgqueue.group_result import GroupResult as NativeGroupResult
from pgqueue.job import JobError, JobInfo, JobState
from pgqueue.result import JobResult

if TYPE_CHECKING:
    from pgqueue.app import App

_POLL = 0.5  # how often get() looks again for an id that names no job yet


def _app(app: App | None) -> App:
    if app is not None:
        return app
    from pgqueue import current

    return current.current()


# -- exceptions back ----------------------------------------------------------------
def _importable(module: str | None, qualname: str) -> type[BaseException] | None:
    """The exception class by its recorded name, if it is one the caller may build."""
    if module in (None, "builtins"):
        found = getattr(builtins, qualname, None)
        ok = isinstance(found, type) and issubclass(found, Exception)
        return found if ok else None
    if "<" in qualname or module is None or module == "__main__":
        return None
    try:
        found = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:
        return None
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


def exception_of(err: JobError | None, job_id: int) -> BaseException:
    """A failed job's exception, as its own type where possible (see the module doc)."""
    if err is None:
        return errors.TaskError(job_id, "UnknownError",
                                "the job failed without a recorded error", "")
    fallback = errors.TaskError(job_id, err.type, err.message, err.traceback)
    if err.type == "ChordError" and err.module is None:  # a chord's own, recorded by SQL
        return errors.ChordError(err.cause_job or job_id, err.type, err.message,
                                 err.traceback)
    cls = _importable(err.module, err.type)
    if cls is None:
        return fallback
    args: Any = None
    if err.args is not None:
        try:
            args = encoding.loads(err.args)
        except Exception:
            args = None
    if not isinstance(args, list):
        args = [err.message] if err.message else []
    try:
        exc = cls(*args)
    except Exception:
        return fallback
    with contextlib.suppress(Exception):  # a class may not take new attributes
        exc.traceback = err.traceback  # type: ignore[attr-defined]
    return exc


def _cause(app: App, info: JobInfo) -> tuple[JobError | None, int]:
    """The error a failure is about: for a step that never ran, the failed step's own
    (its class and args are recorded there)."""
    err = info.error
    if err is not None and err.cause_job is not None and err.type != "ChordError":
        upstream = JobResult(app, err.cause_job)
        try:
            cause = upstream.info()
        except errors.JobNotFound:
            return err, err.cause_job
        return cause.error or err, err.cause_job
    return err, info.id


def _revoked(info: JobInfo, propagate: bool) -> Any:
    exc = TaskRevokedError(f"task {info.task} [{info.id}] was revoked")
    if propagate:
        raise exc
    return exc


def settle(app: App, info: JobInfo, propagate: bool) -> Any:
    """The value of a finished job, or its exception raised (Celery's way)."""
    if info.state is JobState.SUCCEEDED:
        return info.result
    own = info.error
    err, job_id = _cause(app, info)
    if info.state is JobState.CANCELLED and (own is None or own.cause_job is None):
        exc: BaseException = TaskRevokedError(
            f"task {info.task} [{info.id}] was revoked"
            + (f": {err.message}" if err is not None and err.type == "JobExpired" else ""))
    else:
        exc = exception_of(err, job_id)
    if propagate:
        raise exc
    return exc


# -- states -------------------------------------------------------------------------
def _custom(info: JobInfo) -> tuple[str, Any] | None:
    meta = info.progress.meta if info.progress is not None else None
    if isinstance(meta, dict) and isinstance(meta.get(calling.CUSTOM_STATE), str):
        return meta[calling.CUSTOM_STATE], meta.get(calling.CUSTOM_META)
    return None


def _tracks_started(app: App, task: str) -> bool:
    t = app.tasks.get(task)
    if t is not None and hasattr(t, "track_started"):  # a Celery task: its own, or conf's
        return bool(t.track_started)
    conf = getattr(app, "conf", None)
    return bool(conf.get("task_track_started", False)) if conf is not None else False


def state_of(app: App, info: JobInfo | None) -> str:
    if info is None:
        return states.PENDING
    s = info.state
    if s is JobState.SUCCEEDED:
        return states.SUCCESS
    if s is JobState.FAILED:
        return states.FAILURE
    if s is JobState.CANCELLED:
        cause = info.error.cause_job if info.error is not None else None
        return states.FAILURE if cause is not None else states.REVOKED
    if s is JobState.RUNNING:
        if info.cancel_requested:  # revoked; its worker is stopping it (or it can't)
            return states.REVOKED
        custom = _custom(info)
        if custom is not None:
            return custom[0]
        if _tracks_started(app, info.task):
            return states.STARTED
    return states.RETRY if info.attempts > 0 and info.error is not None else states.PENDING


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

    @property
    def date_done(self) -> Any:
        info = self._info()
        return info.finished_at if info is not None else None

    @property
    def result(self) -> Any:
        """The value (SUCCESS), the exception (FAILURE, RETRY, REVOKED), the meta a
        task set with ``update_state``, or None."""
        info = self._info()
        if info is None:
            return None
        state = state_of(self.app, info)
        if info.state.finished:
            return settle(self.app, info, propagate=False)
        custom = _custom(info) if info.state is JobState.RUNNING else None
        if custom is not None:
            return custom[1]
        if state == states.RETRY:
            return exception_of(info.error, info.id)
        if state == states.STARTED:
            return {"hostname": None, "pid": None}
        return None

    info = result

    @property
    def traceback(self) -> str | None:
        info = self._info()
        if info is None or info.error is None or info.state is JobState.SUCCEEDED:
            return None
        err, _ = _cause(self.app, info)
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
            value = _revoked(info, propagate)  # revoked: Celery's get() doesn't wait for it
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
        """What Celery's result backend would send for this state (``on_message``)."""
        state = state_of(self.app, info)
        result = self.result if state != states.PENDING else None
        return {"task_id": self.id, "status": state, "result": result,
                "traceback": self.traceback if state in states.EXCEPTION_STATES else None,
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
                on_message(message)
            if message["status"] in states.READY_STATES:
                assert info is not None
                value = settle(self.app, info, propagate) if info.state.finished else \
                    _revoked(info, propagate)
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
