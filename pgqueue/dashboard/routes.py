"""The URL map: every path the dashboard answers, in one table.

GET routes only read; every state change is a POST (checked for authentication
and CSRF by the middleware in :mod:`pgqueue.dashboard.factory`). A name in a path is
``{name:segment}``: exactly one segment, decoded once (see
:mod:`pgqueue.dashboard.paths`); an id is ``{name:int}``, checked to be a bigint
before the handler runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pgqueue.dashboard import actions, api, login, pages, params, state
from pgqueue.dashboard import paths as _paths  # noqa: F401  (registers {name:segment})
from pgqueue.dashboard.templating import HERE
from pgqueue.errors import ConfigurationError


def metrics(request: Request) -> Response:
    """Prometheus exposition, rendered by :mod:`pgqueue.metrics` from the same Monitor."""
    try:
        from pgqueue import metrics as prometheus

        body, content_type = prometheus.render(state.monitor(request))
    except (ImportError, ConfigurationError) as exc:  # prometheus-client is not installed
        return PlainTextResponse(f"/metrics is not available: {exc}", status_code=501)
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


def _ids_checked(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """``endpoint``, answering 400 first if an id in its path is beyond bigint (the
    database would refuse it with an error, not an answer)."""
    def check(request: Request) -> None:
        for key, value in request.path_params.items():
            if isinstance(value, int):
                params.check_id(key, value)

    if inspect.iscoroutinefunction(endpoint):
        @functools.wraps(endpoint)
        async def checked_async(request: Request) -> Any:
            check(request)
            return await endpoint(request)
        return checked_async

    @functools.wraps(endpoint)
    def checked(request: Request) -> Any:
        check(request)
        return endpoint(request)
    return checked


def _get(path: str, endpoint: Callable[[Request], Any], name: str | None = None) -> Route:
    return Route(path, _ids_checked(endpoint), name=name)


def _post(path: str, endpoint: Callable[[Request], Any], name: str) -> Route:
    return Route(path, _ids_checked(endpoint), methods=["POST"], name=name)


ROUTES: list[BaseRoute] = [
    # pages, and the fragments that keep them live
    _get("/", pages.overview, name="overview"),
    _get("/jobs", pages.jobs, name="jobs"),
    _get("/jobs/{job_id:int}", pages.job, name="job"),
    _get("/schedules", pages.schedules, name="schedules"),
    _get("/workflows/{workflow_id:int}", pages.workflow, name="workflow"),
    _get("/fragments/workers", pages.workers_fragment),
    _get("/fragments/queues", pages.queues_fragment),
    _get("/fragments/tasks", pages.tasks_fragment),
    _get("/fragments/jobs", pages.jobs_fragment),
    _get("/fragments/jobs/{job_id:int}", pages.job_fragment),
    _get("/fragments/schedules", pages.schedules_fragment),
    _get("/fragments/jobs/{job_id:int}/workflow", pages.job_workflow_fragment),
    _get("/fragments/workflows/{workflow_id:int}", pages.workflow_fragment),
    Route("/login", login.login_form, methods=["GET"]),
    _post("/login", login.login, "login"),
    _post("/logout", login.logout, "logout"),
    # JSON API: reads
    _get("/api/overview", api.overview),
    _get("/api/queues", api.queues),
    _get("/api/workers", api.workers),
    _get("/api/tasks", api.tasks),
    _get("/api/task-limits", api.task_limits),
    _get("/api/series", api.series),
    _get("/api/jobs", api.jobs),
    _get("/api/jobs/{job_id:int}", api.job),
    _get("/api/schedules", api.schedules),
    _get("/api/jobs/{job_id:int}/workflow", api.job_workflow),
    _get("/api/workflows", api.workflows),
    _get("/api/workflows/{workflow_id:int}", api.workflow),
    _get("/api/csrf", api.csrf_token),
    # JSON API: actions (also the pages' form targets)
    _post("/api/jobs/{job_id:int}/retry", actions.retry_job, "retry_job"),
    _post("/api/jobs/{job_id:int}/cancel", actions.cancel_job, "cancel_job"),
    _post("/api/tasks/{task:segment}/retry-failed", actions.retry_failed, "retry_failed"),
    _post("/api/queues/{queue:segment}/pause", actions.pause_queue, "pause_queue"),
    _post("/api/queues/{queue:segment}/resume", actions.resume_queue, "resume_queue"),
    _post("/api/queues/{queue:segment}/limits", actions.set_queue_limits, "set_queue_limits"),
    _post("/api/schedules/{schedule:segment}/pause", actions.pause_schedule, "pause_schedule"),
    _post("/api/schedules/{schedule:segment}/resume", actions.resume_schedule, "resume_schedule"),
    _post("/api/schedules/{schedule:segment}/trigger", actions.trigger_schedule,
          "trigger_schedule"),
    _get("/metrics", metrics),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]
