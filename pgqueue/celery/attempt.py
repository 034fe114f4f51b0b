"""One attempt of a Celery task in the worker: its request, signals, handlers, retries.

The task's ``fn`` (what pgqueue's worker calls, with its context first) is
:func:`run_sync` or :func:`run_async` bound to the task. Each attempt builds
``self.request`` (:mod:`pgqueue.celery.request`), sends ``task_prerun``, calls
``before_start``, runs the function (``self`` first with ``bind=True``), then
calls ``on_success`` / ``on_retry`` / ``on_failure`` and ``after_return`` and
sends ``task_success`` / ``task_retry`` / ``task_failure`` (``task_revoked``
when stopped by ``revoke(terminate=True)``) and ``task_postrun``, in the thread
or process that ran it. ``autoretry_for`` is applied here, with Celery's
backoff. Handlers and receivers that raise are logged, never the job's failure.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pgqueue import errors
from pgqueue.celery import calling, signals, states
from pgqueue.celery import request as requests
from pgqueue.celery.exceptions import Ignore, Reject, Retry
from pgqueue.celery.reading import exception_of
from pgqueue.celery.request import ExceptionInfo, Request
from pgqueue.context import JobContext
from pgqueue.job import JobError
from pgqueue.result import JobResult
from pgqueue.retry import FOREVER

if TYPE_CHECKING:
    from pgqueue.celery.task import Task

log = logging.getLogger("pgqueue.celery")
RETRY_FOREVER = FOREVER - 1  # max_retries=None: a budget no job reaches


def backoff(factor: float, retries: int, maximum: float, jitter: bool,
            rng: random.Random | None = None) -> float:
    """Celery's exponential backoff: ``factor * 2**retries``, capped, jittered to [0, it]."""
    countdown = min(float(maximum), float(factor) * 2 ** retries)
    if jitter:
        countdown = (rng or random).uniform(0, countdown)
    return max(0.0, float(countdown))


def errback_arguments(task: Task, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A ``link_error`` callback gets pgqueue's ``(job_id, {type, message, traceback},
    *own)``; a Celery errback takes ``(request, exc, traceback, *own)`` (or, old
    style, ``(task_id, *own)``): given those when its signature asks for them."""
    if len(args) < 2 or not isinstance(args[0], int) or not isinstance(args[1], dict) \
            or not {"type", "message", "traceback"} <= args[1].keys():
        return args
    sig = task.signature_of_run()
    if sig is None:
        return args
    params = list(sig.parameters)[1 if task.celery_bind else 0:]
    if params[:1] == ["request"]:
        job_id, err = args[0], args[1]
        error = JobError(str(err["type"]), str(err["message"]), str(err["traceback"]))
        name = None
        with contextlib.suppress(Exception):  # the failed job's own record, if kept
            info = JobResult(task.app, job_id).info()
            error, name = info.error or error, info.task
        request = Request(id=str(job_id), task=name, called_directly=False)
        return (request, exception_of(error, job_id), error.traceback, *args[2:])
    bound = (None,) if task.celery_bind else ()
    try:
        sig.bind(*bound, *args)
    except TypeError:
        try:
            sig.bind(*bound, str(args[0]), *args[2:])
        except TypeError:
            return args
        return (str(args[0]), *args[2:])
    return args

def begin(task: Task, ctx: JobContext, args: tuple[Any, ...], kwargs: dict[str, Any]
           ) -> Request:
    task_id = ctx.headers.get(calling.TASK_ID_HEADER) or str(ctx.job_id)
    req = requests.from_context(ctx, task, args, kwargs, task_id)
    req.task_object = task
    signals.task_prerun.send(sender=task, task_id=req.id, task=task, args=args,
                             kwargs=kwargs)
    guard(task, "before_start", task.before_start, req.id, args, kwargs)
    return req

def call(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return task.run(task, *args, **kwargs) if task.celery_bind else \
        task.run(*args, **kwargs)

def run_sync(task: Task, ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
    args = errback_arguments(task, args)
    req = begin(task, ctx, args, kwargs)
    token = requests.push(req)
    try:
        try:
            value = call(task, args, kwargs)
            if req.pending_retry is not None:
                raise req.pending_retry
        except BaseException as exc:
            raised = failed(task, req, exc)
            if raised is None:
                return req.stored_result
            raise raised from (None if raised is exc else exc)
        return succeeded(task, req, value)
    finally:
        requests.pop(token)

async def run_async(task: Task, ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
    args = errback_arguments(task, args)
    req = begin(task, ctx, args, kwargs)
    token = requests.push(req)
    try:
        try:
            value = await call(task, args, kwargs)
            if req.pending_retry is not None:
                raise req.pending_retry
        except BaseException as exc:
            raised = failed(task, req, exc)
            if raised is None:
                return req.stored_result
            raise raised from (None if raised is exc else exc)
        return succeeded(task, req, value)
    finally:
        requests.pop(token)

def guard(task: Task, what: str, fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("task %s: %s raised (ignored)", task.name, what)

def succeeded(task: Task, req: Request, value: Any) -> Any:
    guard(task, "on_success", task.on_success, value, req.id, req.args, req.kwargs)
    signals.task_success.send(sender=task, result=value)
    finish(task, req, states.SUCCESS, value, None)
    return value

def finish(task: Task, req: Request, state: str, retval: Any,
            einfo: ExceptionInfo | None) -> None:
    guard(task, "after_return", task.after_return, state, retval, req.id, req.args,
                req.kwargs, einfo)
    signals.task_postrun.send(sender=task, task_id=req.id, task=task, args=req.args,
                              kwargs=req.kwargs, retval=retval, state=state)

def retrying(task: Task, req: Request, retry: errors.Retry) -> errors.Retry:
    cause = retry.exc if retry.exc is not None else retry
    einfo = ExceptionInfo(cause)
    guard(task, "on_retry", task.on_retry, cause, req.id, req.args, req.kwargs, einfo)
    signals.task_retry.send(sender=task, request=req, reason=cause, einfo=einfo)
    finish(task, req, states.RETRY, retry, einfo)
    return retry

def failed(task: Task, req: Request, exc: BaseException) -> BaseException | None:
    """What to raise for what the function raised (None: end with no result)."""
    if isinstance(exc, Ignore):
        signals.task_postrun.send(sender=task, task_id=req.id, task=task, args=req.args,
                                  kwargs=req.kwargs, retval=None, state=states.IGNORED)
        return None  # the job ends succeeded: with the meta of update_state(SUCCESS)
    if isinstance(exc, errors.JobCancelled) and req.context is not None and \
            req.context.is_cancelled():  # revoked with terminate=True
        signals.task_revoked.send(sender=task, request=req, terminated=True, signum=None,
                                  expired=False)
        signals.task_postrun.send(sender=task, task_id=req.id, task=task, args=req.args,
                                  kwargs=req.kwargs, retval=exc, state=states.REVOKED)
        return exc
    if isinstance(exc, Reject) and exc.requeue:
        return retrying(task, req, Retry(exc=exc, when=0, max_retries=RETRY_FOREVER))
    if isinstance(exc, errors.Retry):
        return retrying(task, req, exc)
    if autoretries(task, exc):
        try:
            autoretry(task, req, exc)
        except errors.Retry as retry:
            return retrying(task, req, retry)
        except BaseException as spent:  # retries spent: the exception itself
            exc = spent
    einfo = ExceptionInfo(exc)
    guard(task, "on_failure", task.on_failure, exc, req.id, req.args, req.kwargs, einfo)
    signals.task_failure.send(sender=task, task_id=req.id, exception=exc, args=req.args,
                              kwargs=req.kwargs, traceback=exc.__traceback__, einfo=einfo)
    finish(task, req, states.FAILURE, exc, einfo)
    return exc

def autoretries(task: Task, exc: BaseException) -> bool:
    return bool(task.autoretry_for) and isinstance(exc, tuple(task.autoretry_for)) and \
        not isinstance(exc, tuple(task.dont_autoretry_for or ()))

def autoretry(task: Task, req: Request, exc: BaseException) -> None:
    options = dict(task.retry_kwargs or {})
    if task.retry_backoff:
        factor = 1 if task.retry_backoff is True else float(task.retry_backoff)
        options["countdown"] = backoff(factor, req.retries, task.retry_backoff_max,
                                       bool(task.retry_jitter))
    task.retry(exc=exc, **options)
