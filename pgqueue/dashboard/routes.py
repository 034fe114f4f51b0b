"""The URL map: every path the dashboard answers, in one table.

GET routes only read; every state change is a POST (checked for authentication
and CSRF by the middleware in :mod:`pgqueue.dashboard.factory`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pgqueue.dashboard import actions, api, login, pages, state
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


def _post(path: str, endpoint: object, name: str) -> Route:
    return Route(path, endpoint, methods=["POST"], name=name)  # type: ignore[arg-type]


ROUTES: list[BaseRoute] = [
    # pages, and the fragments that keep them live
    Route("/", pages.overview, name="overview"),
    Route("/jobs", pages.jobs, name="jobs"),
    Route("/jobs/{job_id:int}", pages.job, name="job"),
    Route("/schedules", pages.schedules, name="schedules"),
    Route("/workflows/{workflow_id:int}", pages.workflow, name="workflow"),
    Route("/fragments/workers", pages.workers_fragment),
    Route("/fragments/queues", pages.queues_fragment),
    Route("/fragments/tasks", pages.tasks_fragment),
    Route("/fragments/jobs", pages.jobs_fragment),
    Route("/fragments/jobs/{job_id:int}", pages.job_fragment),
    Route("/fragments/schedules", pages.schedules_fragment),
    Route("/fragments/jobs/{job_id:int}/workflow", pages.job_workflow_fragment),
    Route("/fragments/workflows/{workflow_id:int}", pages.workflow_fragment),
    Route("/login", login.login_form, methods=["GET"]),
    _post("/login", login.login, "login"),
    _post("/logout", login.logout, "logout"),
    # JSON API: reads
    Route("/api/overview", api.overview),
    Route("/api/queues", api.queues),
    Route("/api/workers", api.workers),
    Route("/api/tasks", api.tasks),
    Route("/api/task-limits", api.task_limits),
    Route("/api/series", api.series),
    Route("/api/jobs", api.jobs),
    Route("/api/jobs/{job_id:int}", api.job),
    Route("/api/schedules", api.schedules),
    Route("/api/jobs/{job_id:int}/workflow", api.job_workflow),
    Route("/api/workflows", api.workflows),
    Route("/api/workflows/{workflow_id:int}", api.workflow),
    Route("/api/csrf", api.csrf_token),
    # JSON API: actions (also the pages' form targets)
    _post("/api/jobs/{job_id:int}/retry", actions.retry_job, "retry_job"),
    _post("/api/jobs/{job_id:int}/cancel", actions.cancel_job, "cancel_job"),
    _post("/api/tasks/{task:path}/retry-failed", actions.retry_failed, "retry_failed"),
    _post("/api/queues/{queue:path}/pause", actions.pause_queue, "pause_queue"),
    _post("/api/queues/{queue:path}/resume", actions.resume_queue, "resume_queue"),
    _post("/api/queues/{queue:path}/limits", actions.set_queue_limits, "set_queue_limits"),
    _post("/api/schedules/{schedule:path}/pause", actions.pause_schedule, "pause_schedule"),
    _post("/api/schedules/{schedule:path}/resume", actions.resume_schedule, "resume_schedule"),
    _post("/api/schedules/{schedule:path}/trigger", actions.trigger_schedule, "trigger_schedule"),
    Route("/metrics", metrics),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]
