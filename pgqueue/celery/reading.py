"""How a job's row reads in Celery's terms: its state, and its value or exception.

States, from pgqueue's: waiting/queued -> ``PENDING``, or ``RETRY`` when an
earlier attempt failed; running -> ``REVOKED`` once a revoke was asked for, else
the state the task set with ``update_state``, else ``STARTED`` with
``track_started``, else ``RETRY`` after a failed attempt, else ``PENDING``;
succeeded -> ``SUCCESS``; failed -> ``FAILURE`` (also a workflow step that never
ran because an earlier one failed: its error is that step's); cancelled or
expired -> ``REVOKED``.

A failed task's exception comes back as its own type when the caller can have
it: a built-in exception, or an ``Exception`` subclass importable by the module
and name the worker recorded, built from its recorded args (JSON) or its
message. Nothing else is ever called or unpickled. Otherwise it is
:class:`pgqueue.errors.TaskError` (the fallback), whose ``.type``, ``.message``
and ``.traceback`` are the remote exception's; a chord's own failure is
:class:`pgqueue.errors.ChordError`; a revoked task's :class:`TaskRevokedError`.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
from typing import TYPE_CHECKING, Any

from pgqueue import encoding, errors
from pgqueue.celery import calling, states
from pgqueue.celery.exceptions import TaskRevokedError
from pgqueue.job import JobError, JobInfo, JobState
from pgqueue.result import JobResult

if TYPE_CHECKING:
    from pgqueue.app import App


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


# Errors pgqueue's worker records by name only (no exception object was raised there).
_RECORDED_BY_NAME: dict[str, type[Exception]] = {
    "TimeLimitExceeded": errors.TimeLimitExceeded,
    "SoftTimeLimitExceeded": errors.SoftTimeLimitExceeded,
}


def exception_of(err: JobError | None, job_id: int) -> BaseException:
    """A failed job's exception, as its own type where possible (see the module doc)."""
    if err is None:
        return errors.TaskError(job_id, "UnknownError",
                                "the job failed without a recorded error", "")
    fallback = errors.TaskError(job_id, err.type, err.message, err.traceback)
    if err.type == "ChordError" and err.module is None:  # a chord's own, recorded by SQL
        return errors.ChordError(err.cause_job or job_id, err.type, err.message,
                                 err.traceback)
    own = _RECORDED_BY_NAME.get(err.type) if err.module is None else None
    if own is not None:  # what the worker itself records (a hard time limit)
        return own(err.message)
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


def cause_of(app: App, info: JobInfo) -> tuple[JobError | None, int]:
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


def revoked(info: JobInfo, propagate: bool) -> Any:
    exc = TaskRevokedError(f"task {info.task} [{info.id}] was revoked")
    if propagate:
        raise exc
    return exc


def settle(app: App, info: JobInfo, propagate: bool) -> Any:
    """The value of a finished job, or its exception raised (Celery's way)."""
    if info.state is JobState.SUCCEEDED:
        return info.result
    own = info.error
    err, job_id = cause_of(app, info)
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
def custom_state(info: JobInfo) -> tuple[str, Any] | None:
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
        custom = custom_state(info)
        if custom is not None:
            return custom[0]
        if _tracks_started(app, info.task):
            return states.STARTED
    return states.RETRY if info.attempts > 0 and info.error is not None else states.PENDING
