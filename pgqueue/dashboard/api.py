"""The read side of the JSON API (``GET /api/...``), documented in API.md.

Plain ``def`` handlers: Starlette runs them in its thread pool, where the
Monitor's blocking database calls belong. The state-changing POSTs are in
:mod:`pgqueue.dashboard.actions`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pgqueue.dashboard import csrf, params, state, windows
from pgqueue.dashboard.responses import JSON, error
from pgqueue.monitor import Monitor

# Bounds of the workflow endpoints' parameters: what one response may carry.
MAX_RELATED = 500
MAX_TREE = 10_000


def series_data(monitor: Monitor, window: params.Window) -> dict[str, Any]:
    """The chart data: one bucket per step over the window, zeros included."""
    now = dt.datetime.now(dt.UTC)
    buckets = monitor.series(window.span, window.bucket)
    return {"window_seconds": window.span.total_seconds(),
            "bucket_seconds": window.bucket.total_seconds(),
            "buckets": windows.dense(buckets, window.span, window.bucket, now)}


def overview(request: Request) -> Response:
    """What ``Monitor.overview`` gives, with the series dense and binned as /api/series bins
    it (``bucket=`` is honoured), so the charts can be drawn from either."""
    window = params.window(request.query_params)
    monitor = state.monitor(request)
    chart = series_data(monitor, window)
    return JSON({"now": dt.datetime.now(dt.UTC), "window_seconds": window.span.total_seconds(),
                 "queues": monitor.queues(window.span), "workers": monitor.workers(),
                 "tasks": monitor.task_stats(window.span),
                 "task_limits": monitor.task_limits(), "series": chart["buckets"],
                 "bucket_seconds": chart["bucket_seconds"],
                 "xmin_horizon": monitor.xmin_horizon()})


def queues(request: Request) -> Response:
    return JSON(state.monitor(request).queues(params.window(request.query_params).span))


def workers(request: Request) -> Response:
    return JSON(state.monitor(request).workers())


def tasks(request: Request) -> Response:
    return JSON(state.monitor(request).task_stats(params.window(request.query_params).span))


def task_limits(request: Request) -> Response:
    return JSON(state.monitor(request).task_limits())


def series(request: Request) -> Response:
    return JSON(series_data(state.monitor(request), params.window(request.query_params)))


def jobs(request: Request) -> Response:
    filters = params.job_filters(request.query_params)
    page = state.monitor(request).jobs(state=filters.state, queue=filters.queue, task=filters.task,
                                  since=filters.since, until=filters.until,
                                  before_id=filters.before_id, limit=filters.limit)
    root = request.scope.get("root_path", "")
    older = (f"{root}/api/jobs?{filters.query(before_id=page.next_before_id)}"
             if page.next_before_id is not None else None)
    return JSON({"jobs": page.jobs, "next_before_id": page.next_before_id, "next": older})


def job(request: Request) -> Response:
    job_id: int = request.path_params["job_id"]
    detail = state.monitor(request).job(job_id)
    if detail is None:
        return error(f"no job {job_id}", 404)
    return JSON(detail)


def job_workflow(request: Request) -> Response:
    """The job's place in its workflow (lists of related steps cut at ``cap``, 1 to 500,
    default 50), and the whole workflow when it has at most ``tree_up_to`` jobs."""
    job_id: int = request.path_params["job_id"]
    monitor = state.monitor(request)
    cap = params.bounded(request.query_params, "cap", 50, MAX_RELATED)
    tree_up_to = params.bounded(request.query_params, "tree_up_to", 100, MAX_TREE, least=0)
    found = monitor.workflow_of_job(job_id, cap=cap, tree_up_to=tree_up_to)
    if found is None:
        return error(f"job {job_id} is not part of a workflow" if monitor.job(job_id)
                     else f"no job {job_id}", 404)
    return JSON(found)


def workflows(request: Request) -> Response:
    limit = params.bounded(request.query_params, "limit", params.PAGE_SIZE,
                           params.MAX_PAGE_SIZE)
    return JSON(state.monitor(request).workflows(limit))


def workflow(request: Request) -> Response:
    workflow_id: int = request.path_params["workflow_id"]
    detail = state.monitor(request).workflow(workflow_id)
    if detail is None:
        return error(f"no workflow {workflow_id}", 404)
    return JSON(detail)


def schedules(request: Request) -> Response:
    return JSON(state.monitor(request).schedules())


def csrf_token(request: Request) -> Response:
    """For scripts: the token to echo in X-CSRF-Token (the cookie comes with this response)."""
    return JSON({"csrf_token": csrf.token(request.scope), "header": "X-CSRF-Token",
                 "cookie": csrf.COOKIE})
