"""Limits on the dashboard: each queue's and each task's on the overview and in the JSON
API, and a queue's set from the API and from the overview's form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from starlette.testclient import TestClient

from pgqueue import App
from pgqueue.dashboard import create_app
from pgqueue.monitor import Monitor
from tests.conftest import running_worker
from tests.dashboard.conftest import csrf_token


@pytest.fixture
def web(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://localhost") as c:
        yield c


@pytest.fixture
def limited(app: App) -> App:
    """Task limits declared (by a worker's start), a limited queue, and jobs held back."""
    with running_worker(app):
        pass
    app.tasks["metered"].delay(1)  # 60/m, queue default
    app.tasks["add"].delay(1, 1)
    for i in range(3):
        app.tasks["add"].apply_async((i, i), queue="bulk")
    Monitor(app).set_queue_limits("bulk", rate="1/h", concurrency=2)
    return app


def _post(web: TestClient, url: str, **kwargs: object):
    return web.post(url, headers={"X-CSRF-Token": csrf_token(web)}, **kwargs)


def _row(html: str, cls: str, attr: str, name: str) -> str:
    found = re.search(rf'<tr class="{cls}" {attr}="{re.escape(name)}">(.*?)</tr>', html, re.S)
    assert found, f"no {cls} row for {name}"
    return found[1]


def _cell(row: str, cls: str) -> str:
    found = re.search(rf'<td class="[^"]*\b{cls}\b[^"]*">(.*?)</td>', row, re.S)
    assert found, f"no {cls} cell"
    return unescape(re.sub(r"<[^>]+>", "", found[1])).strip()


def test_overview_shows_queue_and_task_limits_live(web, limited):
    for html in (web.get("/").text, web.get("/fragments/queues?window=1h").text):
        bulk = _row(html, "queue", "data-queue", "bulk")
        assert (_cell(bulk, "rate-limit"), _cell(bulk, "concurrency-limit"),
                _cell(bulk, "held-back")) == ("1/h", "2", "3")
        default = _row(html, "queue", "data-queue", "default")
        assert (_cell(default, "rate-limit"), _cell(default, "held-back")) == ("—", "1")
        metered = _row(html, "task-limit", "data-task", "metered")
        assert (_cell(metered, "rate-limit"), _cell(metered, "concurrency-limit"),
                _cell(metered, "held-back")) == ("60/m", "—", "1")
        three = _row(html, "task-limit", "data-task", "one_of_three")
        assert _cell(three, "concurrency-limit") == "3"


def test_no_task_limits_section_without_task_limits(web, app):
    app.tasks["add"].delay(1, 1)
    html = web.get("/").text
    assert 'class="queue"' in html and "Task limits" not in html


def test_api_gives_limits(web, limited):
    queues = {q["queue"]: q for q in web.get("/api/queues").json()}
    assert {k: queues["bulk"][k] for k in ("rate_limit", "rate", "rate_window_seconds",
                                           "concurrency_limit", "held_back")} == {
        "rate_limit": "1/h", "rate": 1, "rate_window_seconds": 3600.0,
        "concurrency_limit": 2, "held_back": 3}
    assert queues["default"]["rate_limit"] is None and queues["default"]["held_back"] == 1
    tasks = {t["task"]: t for t in web.get("/api/task-limits").json()}
    assert set(tasks) == {"metered", "one_of_three", "per_tenant"}
    assert (tasks["metered"]["rate_limit"], tasks["metered"]["held_back"],
            tasks["metered"]["running"]) == ("60/m", 1, 0)
    assert tasks["metered"]["declared_at"].endswith("+00:00")
    overview = web.get("/api/overview").json()
    assert [t["task"] for t in overview["task_limits"]] == sorted(tasks)


def test_set_limits_from_the_api_sets_what_is_given(web, app):
    answer = _post(web, "/api/queues/emails/limits", data={"rate": "600/m",
                                                           "concurrency": "20"})
    assert answer.status_code == 200
    assert answer.json() == {"queue": "emails", "rate_limit": "600/m", "rate": 600,
                             "rate_window_seconds": 60.0, "concurrency_limit": 20}
    kept = _post(web, "/api/queues/emails/limits", data={"rate": "5/s"}).json()
    assert (kept["rate_limit"], kept["concurrency_limit"]) == ("5/s", 20)
    one = _post(web, "/api/queues/emails/limits?concurrency=none").json()
    assert (one["rate_limit"], one["concurrency_limit"]) == ("5/s", None)
    cleared = _post(web, "/api/queues/emails/limits", data={"clear": "true"}).json()
    assert (cleared["rate_limit"], cleared["concurrency_limit"]) == (None, None)


@pytest.mark.parametrize("data, message", [
    ({"rate": "10"}, "write N/s, N/m or N/h"),
    ({"concurrency": "0"}, "must be 1 or more"),
    ({"concurrency": "lots"}, "how many jobs may run at once"),
    ({}, "give rate"),
    ({"clear": "true", "rate": "1/s"}, "send it alone"),
    ({"clear": "maybe"}, "clear must be true or false"),
])
def test_bad_limits_are_a_400_saying_why_and_change_nothing(web, app, data, message):
    Monitor(app).set_queue_limits("emails", concurrency=7)
    answer = _post(web, "/api/queues/emails/limits", data=data)
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert {q.queue: q.concurrency_limit for q in Monitor(app).queues()}["emails"] == 7


def test_a_bad_queue_name_is_a_400(web, app):
    answer = _post(web, "/api/queues/no%20spaces/limits", data={"concurrency": "1"})
    assert answer.status_code == 400 and "invalid queue name" in answer.json()["error"]


def test_setting_limits_needs_the_csrf_token(web, app):
    assert web.post("/api/queues/emails/limits", data={"rate": "1/s"}).status_code == 403
    assert web.get("/api/queues/emails/limits").status_code == 405
    assert all(q.queue != "emails" for q in Monitor(app).queues())


def _limits_form(web: TestClient, queue: str) -> tuple[str, dict[str, str]]:
    """The overview's limits form for ``queue``: its action and every field as shown."""
    html = web.get("/?window=5m").text
    form = re.search(rf'<form method="post" action="([^"]+)" class="filters limits" '
                     rf'data-queue="{re.escape(queue)}">(.*?)</form>', html, re.S)
    assert form, f"no limits form for {queue}"
    fields = dict(re.findall(r'<input (?:type="hidden" )?name="([^"]+)"(?: type="number")?'
                             r'[^>]*? value="([^"]*)"', form[2]))
    return form[1], {k: unescape(v) for k, v in fields.items()}


def test_the_overview_form_shows_and_sets_a_queues_limits(web, limited):
    action, fields = _limits_form(web, "bulk")
    assert action == "/api/queues/bulk/limits"
    assert (fields["rate"], fields["concurrency"], fields["next"]) == ("1/h", "2", "/?window=5m")
    response = web.post(action, data={**fields, "rate": "30/m"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/?window=5m&notice=limits-set"
    assert "Queue limits set" in web.get(response.headers["location"]).text
    limits = {q.queue: q for q in Monitor(limited).queues()}["bulk"]
    assert (limits.rate_limit, limits.concurrency_limit) == ("30/m", 2)
    # Both fields emptied: no limits.
    emptied = web.post(action, data={**fields, "rate": "", "concurrency": ""},
                       follow_redirects=False)
    assert emptied.status_code == 303
    limits = {q.queue: q for q in Monitor(limited).queues()}["bulk"]
    assert (limits.rate_limit, limits.concurrency_limit) == (None, None)


def test_a_bad_value_in_the_form_is_a_page_saying_why(web, limited):
    action, fields = _limits_form(web, "bulk")
    response = web.post(action, data={**fields, "rate": "fast"}, follow_redirects=False)
    assert response.status_code == 400 and "invalid rate limit 'fast'" in response.text
    assert response.headers["content-type"].startswith("text/plain")
