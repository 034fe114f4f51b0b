"""The HTML pages and the fragments htmx polls to keep them live.

Each page is rendered whole on first load (it works without JavaScript); its live
parts are ``templates/fragments/*`` that the page re-fetches every two seconds
from ``/fragments/...`` and swaps in place. Plain ``def`` handlers: Starlette runs
them in its thread pool, where the Monitor's blocking calls belong.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pgqueue.dashboard import params, state


def _render(request: Request, template: str, context: dict[str, Any],
            status: int = 200) -> Response:
    # Pages change every two seconds: a cached copy would only mislead.
    return state.templates(request).TemplateResponse(
        request, template, context, status_code=status, headers={"Cache-Control": "no-store"})


# -- overview ------------------------------------------------------------------
def _overview_context(request: Request, *parts: str) -> dict[str, Any]:
    window = params.window(request.query_params)
    monitor = state.monitor(request)
    context: dict[str, Any] = {"window": window}
    if "workers" in parts:
        context["workers"] = monitor.workers()
    if "queues" in parts:
        context["queues"] = monitor.queues(window.span)
        context["task_limits"] = monitor.task_limits()
    if "tasks" in parts:
        context["tasks"] = monitor.task_stats(window.span)
    return context


def overview(request: Request) -> Response:
    context = _overview_context(request, "workers", "queues", "tasks")
    context["xmin_horizon"] = state.monitor(request).xmin_horizon()
    return _render(request, "overview.html", context)


def workers_fragment(request: Request) -> Response:
    return _render(request, "fragments/workers.html", _overview_context(request, "workers"))


def queues_fragment(request: Request) -> Response:
    return _render(request, "fragments/queues.html", _overview_context(request, "queues"))


def tasks_fragment(request: Request) -> Response:
    return _render(request, "fragments/tasks.html", _overview_context(request, "tasks"))


# -- jobs ----------------------------------------------------------------------
def _jobs_context(request: Request) -> dict[str, Any]:
    filters = params.job_filters(request.query_params)
    monitor = state.monitor(request)
    page = monitor.jobs(state=filters.state, queue=filters.queue, task=filters.task,
                        since=filters.since, until=filters.until,
                        before_id=filters.before_id, limit=filters.limit)
    return {"filters": filters, "page": page}


def jobs(request: Request) -> Response:
    context = _jobs_context(request)
    monitor = state.monitor(request)
    # Suggestions for the filter inputs; any name may still be typed.
    context["known_queues"] = sorted({q.queue for q in monitor.queues()})
    context["known_tasks"] = sorted(set(monitor.app.tasks))
    return _render(request, "jobs.html", context)


def jobs_fragment(request: Request) -> Response:
    return _render(request, "fragments/jobs.html", _jobs_context(request))


def _job_context(request: Request) -> tuple[dict[str, Any], int]:
    job_id: int = request.path_params["job_id"]
    job = state.monitor(request).job(job_id)
    return {"job": job, "job_id": job_id}, 200 if job is not None else 404


def job(request: Request) -> Response:
    context, status = _job_context(request)
    context.update(_job_workflow_context(request) if context["job"] is not None
                   else {"workflow": None})
    return _render(request, "job.html", context, status)


def job_fragment(request: Request) -> Response:
    context, status = _job_context(request)
    return _render(request, "fragments/job.html", context, status)


# -- workflows ---------------------------------------------------------------------
# A workflow is drawn whole on its own page up to this many jobs, on a job's page up
# to TREE_ON_JOB_PAGE; past that only its counts (the CLI and the API give any size).
TREE_ON_PAGE = 1000
TREE_ON_JOB_PAGE = 100
RELATED_SHOWN = 50


def _job_workflow_context(request: Request) -> dict[str, Any]:
    job_id: int = request.path_params["job_id"]
    return {"job_id": job_id, "workflow": state.monitor(request).workflow_of_job(
        job_id, cap=RELATED_SHOWN, tree_up_to=TREE_ON_JOB_PAGE)}


def job_workflow_fragment(request: Request) -> Response:
    """The job page's Workflow section (empty for a job that is not in one)."""
    return _render(request, "fragments/job_workflow.html", _job_workflow_context(request))


def _workflow_context(request: Request) -> tuple[dict[str, Any], int]:
    workflow_id: int = request.path_params["workflow_id"]
    detail = state.monitor(request).workflow(workflow_id, tree_up_to=TREE_ON_PAGE)
    return ({"detail": detail, "workflow_id": workflow_id, "tree_limit": TREE_ON_PAGE},
            200 if detail is not None else 404)


def workflow(request: Request) -> Response:
    context, status = _workflow_context(request)
    return _render(request, "workflow.html", context, status)


def workflow_fragment(request: Request) -> Response:
    context, status = _workflow_context(request)
    return _render(request, "fragments/workflow.html", context, status)


# -- schedules -------------------------------------------------------------------
def schedules(request: Request) -> Response:
    return _render(request, "schedules.html", {"schedules": state.monitor(request).schedules()})


def schedules_fragment(request: Request) -> Response:
    return _render(request, "fragments/schedules.html",
                   {"schedules": state.monitor(request).schedules()})
