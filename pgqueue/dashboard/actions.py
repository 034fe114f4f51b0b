"""The POST endpoints that change state: retry, cancel, pause, resume, limit, trigger.

One handler per action serves both the API (JSON) and the pages' forms (a redirect
back), see :mod:`pgqueue.dashboard.responses`. Authentication and CSRF are
checked before these run, by the middleware, for every POST.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from pgqueue.dashboard import params, state
from pgqueue.dashboard.responses import action_result, error, form
from pgqueue.monitor import to_json

READ_ONLY = ("this dashboard's database role may only read (pgqueue_monitor?): to act, run "
             "the dashboard as a user granted pgqueue_worker (every action) or "
             "pgqueue_producer (cancel only), e.g. GRANT pgqueue_worker TO dashboard_user")


def _may_act(handler: Callable[[Request], Awaitable[Response]]
             ) -> Callable[[Request], Awaitable[Response]]:
    """A role without the right to act (a read-only monitor) is told so: a 403 that
    says which role to grant, not a 500."""
    @functools.wraps(handler)
    async def act(request: Request) -> Response:
        try:
            return await handler(request)
        except psycopg.errors.InsufficientPrivilege:
            return error(READ_ONLY, 403)
    return act


def _job_id(request: Request) -> int:
    job_id: int = request.path_params["job_id"]
    return job_id


@_may_act
async def retry_job(request: Request) -> Response:
    job_id, monitor = _job_id(request), state.monitor(request)
    next_page = f"/jobs/{job_id}"
    if await run_in_threadpool(monitor.retry_job, job_id):
        return await action_result(request, {"id": job_id, "state": "queued"},
                                   notice="retried", default_next=next_page)
    job = await run_in_threadpool(monitor.job, job_id)
    if job is None:
        return error(f"no job {job_id}", 404)
    return await action_result(
        request, {"error": f"job {job_id} is {job.state}: only a failed or cancelled job "
                           "can be retried", "id": job_id, "state": job.state},
        status=409, notice="not-retryable", default_next=next_page)


@_may_act
async def cancel_job(request: Request) -> Response:
    job_id, monitor = _job_id(request), state.monitor(request)
    next_page = f"/jobs/{job_id}"
    outcome = await run_in_threadpool(monitor.cancel_job, job_id)
    if outcome is not None:
        # "running" means its worker was told to stop it; it ends as cancelled shortly.
        return await action_result(request, {"id": job_id, "state": outcome},
                                   notice="stopping" if outcome == "running" else "cancelled",
                                   default_next=next_page)
    job = await run_in_threadpool(monitor.job, job_id)
    if job is None:
        return error(f"no job {job_id}", 404)
    return await action_result(
        request, {"error": f"job {job_id} is {job.state}: only a queued or running job can "
                           "be cancelled", "id": job_id, "state": job.state},
        status=409, notice="not-cancellable", default_next=next_page)


@_may_act
async def retry_failed(request: Request) -> Response:
    task: str = request.path_params["task"]
    fields = await form(request)
    queue = params.text(fields, "queue") or params.text(request.query_params, "queue")
    ids = await run_in_threadpool(state.monitor(request).retry_failed, task=task, queue=queue)
    return await action_result(request, {"task": task, "queue": queue, "count": len(ids),
                                         "ids": ids},
                               notice="retried-failed", default_next="/jobs")


@_may_act
async def pause_queue(request: Request) -> Response:
    return await _queue(request, paused=True)


@_may_act
async def resume_queue(request: Request) -> Response:
    return await _queue(request, paused=False)


async def _queue(request: Request, *, paused: bool) -> Response:
    name: str = request.path_params["queue"]
    monitor = state.monitor(request)
    await run_in_threadpool(monitor.pause_queue if paused else monitor.resume_queue, name)
    return await action_result(request, {"queue": name, "paused": paused},
                               notice="paused" if paused else "resumed")


@_may_act
async def set_queue_limits(request: Request) -> Response:
    name: str = request.path_params["queue"]
    fields = await form(request)
    try:
        change = params.queue_limits(name, {**request.query_params, **fields})
    except params.BadRequest as exc:
        if "next" in fields:  # a person at the page's form: say why, as a page does
            return PlainTextResponse(f"400 Bad Request: {exc}", status_code=400)
        raise
    now = await run_in_threadpool(state.monitor(request).set_queue_limits, name,
                                  rate=change.rate, concurrency=change.concurrency)
    return await action_result(request, to_json(now), notice="limits-set")


@_may_act
async def pause_schedule(request: Request) -> Response:
    return await _schedule(request, paused=True)


@_may_act
async def resume_schedule(request: Request) -> Response:
    return await _schedule(request, paused=False)


async def _schedule(request: Request, *, paused: bool) -> Response:
    name: str = request.path_params["schedule"]
    monitor = state.monitor(request)
    found = await run_in_threadpool(
        monitor.pause_schedule if paused else monitor.resume_schedule, name)
    if not found:
        return error(f"no schedule named {name!r}", 404)
    return await action_result(request, {"schedule": name, "paused": paused},
                               notice="schedule-paused" if paused else "schedule-resumed",
                               default_next="/schedules")


@_may_act
async def trigger_schedule(request: Request) -> Response:
    name: str = request.path_params["schedule"]
    job_id = await run_in_threadpool(state.monitor(request).trigger_schedule, name)
    if job_id is None:
        return error(f"no schedule named {name!r}", 404)
    return await action_result(request, {"schedule": name, "job_id": job_id},
                               notice="triggered", default_next="/schedules")
