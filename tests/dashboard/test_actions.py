"""Actions from the API and from the pages' forms: each changes the database as it says.

Each test has its own database (the ``app`` fixture), so acting can't disturb the
shared ``world`` the read-only tests look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from pgqueue import App, JobState, statements
from pgqueue.dashboard import create_app
from pgqueue.monitor import Monitor
from tests.conftest import running_worker, wait_for
from tests.dashboard.conftest import csrf_token


@pytest.fixture
def web(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://localhost") as c:
        yield c


def _failed_jobs(app: App, n: int = 1, task: str = "boom") -> list[int]:
    with running_worker(app):
        results = [app.tasks[task].delay("disk full") for _ in range(n)]
        for r in results:
            r.get(timeout=10, propagate=False)
    assert all(r.state == JobState.FAILED for r in results)
    return [r.id for r in results]


def _post(web: TestClient, url: str, **kwargs: object):
    return web.post(url, headers={"X-CSRF-Token": csrf_token(web)}, **kwargs)


def _form(web: TestClient, page: str, action: str, **fields: str):
    """Submit the page's form for `action` as a browser would: its hidden fields included."""
    html = web.get(page).text
    form = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', html, re.S)
    assert form, f"no form for {action} on {page}"
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form[0]))
    return web.post(action, data={**data, **fields}, follow_redirects=False)


def test_retry_makes_a_failed_job_queued(app, web):
    (job_id,) = _failed_jobs(app)
    response = _post(web, f"/api/jobs/{job_id}/retry")
    assert response.status_code == 200 and response.json() == {"id": job_id, "state": "queued"}
    assert app.AsyncResult(job_id).state == JobState.QUEUED
    again = _post(web, f"/api/jobs/{job_id}/retry")
    assert again.status_code == 409 and "queued" in again.json()["error"]
    assert _post(web, "/api/jobs/987654/retry").status_code == 404


def test_retry_from_the_job_page_form_redirects_back_with_a_notice(app, web):
    (job_id,) = _failed_jobs(app)
    response = _form(web, f"/jobs/{job_id}", f"/api/jobs/{job_id}/retry")
    assert response.status_code == 303
    assert response.headers["location"] == f"/jobs/{job_id}?notice=retried"
    page = web.get(response.headers["location"]).text
    assert "Job queued again." in page and "state-queued" in page


def test_cancel_a_queued_job_then_a_running_one(app, web):
    queued = app.tasks["add"].delay(1, 1)
    response = _post(web, f"/api/jobs/{queued.id}/cancel")
    assert response.json() == {"id": queued.id, "state": "cancelled"}
    assert queued.state == JobState.CANCELLED
    assert _post(web, f"/api/jobs/{queued.id}/cancel").status_code == 409
    with running_worker(app):
        running = app.tasks["cancellable"].delay()
        assert wait_for(lambda: running.state == JobState.RUNNING, 10)
        response = _form(web, f"/jobs/{running.id}", f"/api/jobs/{running.id}/cancel")
        assert response.headers["location"] == f"/jobs/{running.id}?notice=stopping"
        assert wait_for(lambda: running.state == JobState.CANCELLED, 10)


def test_retry_all_failed_of_a_task(app, web):
    failed = _failed_jobs(app, 3)
    other = _failed_jobs(app, 1, task="only_io_retried")  # ValueError: no retry
    response = _post(web, "/api/tasks/boom/retry-failed")
    assert response.json()["count"] == 3 and sorted(response.json()["ids"]) == sorted(failed)
    assert all(app.AsyncResult(i).state == JobState.QUEUED for i in failed)
    assert app.AsyncResult(other[0]).state == JobState.FAILED
    # Narrowed to a queue that has none: nothing retried.
    response = _post(web, "/api/tasks/only_io_retried/retry-failed",
                     data={"queue": "emails"})
    assert response.json()["count"] == 0


def test_pause_and_resume_a_queue(app, web):
    monitor = Monitor(app)
    app.tasks["add"].delay(1, 1)
    assert _post(web, "/api/queues/default/pause").json() == {"queue": "default",
                                                               "paused": True}
    assert {q.queue: q.paused for q in monitor.queues()}["default"] is True
    response = _form(web, "/", "/api/queues/default/resume")
    assert response.status_code == 303 and response.headers["location"].startswith("/?")
    assert "notice=resumed" in response.headers["location"]
    assert {q.queue: q.paused for q in monitor.queues()}["default"] is False


def test_schedule_pause_resume_trigger(app, web):
    app.add_periodic("every-minute", "add", cron="* * * * *", args=(2, 3))
    app.client.execute(statements.sync_schedule(app.settings.schema,
                                                app.schedules["every-minute"]))
    monitor = Monitor(app)
    assert _post(web, "/api/schedules/every-minute/pause").json()["paused"] is True
    assert monitor.schedules()[0].paused is True
    response = _form(web, "/schedules", "/api/schedules/every-minute/resume")
    assert response.headers["location"] == "/schedules?notice=schedule-resumed"
    assert monitor.schedules()[0].paused is False
    job_id = _post(web, "/api/schedules/every-minute/trigger").json()["job_id"]
    job = monitor.job(job_id)
    assert job is not None and job.task == "add" and job.args == [2, 3]
    assert _post(web, "/api/schedules/nope/trigger").status_code == 404
    assert _post(web, "/api/schedules/nope/pause").status_code == 404


def test_a_form_cannot_redirect_off_site(app, web):
    app.tasks["add"].delay(1, 1)
    token = csrf_token(web)
    response = web.post("/api/queues/default/pause", follow_redirects=False,
                        data={"csrf_token": token, "next": "//evil.example/phish"})
    assert response.status_code == 303 and response.headers["location"] == "/?notice=paused"


def test_get_never_changes_state(app, web):
    (job_id,) = _failed_jobs(app)
    assert web.get(f"/api/jobs/{job_id}/retry").status_code == 405
    assert app.AsyncResult(job_id).state == JobState.FAILED
