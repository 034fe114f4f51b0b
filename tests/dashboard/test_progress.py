"""Job progress on the dashboard: the job page's bar, the list's column, the JSON API.

Each test has its own database; the jobs are claimed by a registered worker row
and their progress written through the worker's own statement, so no worker
process needs to run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from pgqueue import App, JobState, Progress, statements
from pgqueue.dashboard import create_app
from pgqueue.dashboard.templating import progress_short, summary
from pgqueue.job import ClaimedJob

SCHEMA = "pgqueue"


@pytest.fixture
def web(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://localhost") as c:
        yield c


def _running(app: App, n: int) -> list[ClaimedJob]:
    run = app.client.execute
    for i in range(n):
        run(statements.enqueue(SCHEMA, [statements.make_request("add", (i, i))]))
    worker = run(statements.register_worker(SCHEMA, name="w1", host="h", pid=1,
                                            queues=["default"], pool="threads",
                                            concurrency=n))
    return run(statements.claim(SCHEMA, worker, ["default"], n, 60))


def _report(app: App, job: ClaimedJob, done: float, total: float | None = None,
            meta: str | None = None) -> None:
    written = app.client.execute(statements.update_progress(
        SCHEMA, {(job.id, job.lease): (done, total, meta)}))
    assert written == {job.id: True}


def _row(html: str, job_id: int) -> str:
    return re.search(rf'<tr class="job" data-job-id="{job_id}"[^>]*>(.*?)</tr>', html, re.S)[1]


def test_job_page_shows_a_live_progress_bar(app: App, web: TestClient) -> None:
    (job,) = _running(app, 1)
    _report(app, job, 17, 40, '{"file": "orders.csv", "rows": 17000}')
    html = web.get(f"/jobs/{job.id}").text
    assert f'hx-get="/fragments/jobs/{job.id}" hx-trigger="every 2s"' in html  # refreshed
    bar = re.search(r'<div class="progress-report" id="job-progress">(.*?)\n</div>', html,
                    re.S)[1]
    assert '<progress value="17" max="40">42%</progress>' in bar
    assert "<strong>42%</strong> · 17 / 40" in bar
    assert '<div class="progress-meta" title="file: orders.csv · rows: 17000">' \
        "file: orders.csv · rows: 17000</div>" in bar
    assert "reported <time" in bar
    # The fragment htmx polls carries the bar too, and follows new reports.
    _report(app, job, 39, 40)
    fragment = web.get(f"/fragments/jobs/{job.id}").text
    assert '<progress value="39" max="40">97%</progress>' in fragment  # rounded down


def test_a_count_without_a_total_and_a_job_without_progress(app: App,
                                                           web: TestClient) -> None:
    counted, silent = _running(app, 2)
    _report(app, counted, 1234.5)
    html = web.get(f"/jobs/{counted.id}").text
    assert "<progress></progress>" in html  # running, end unknown: indeterminate
    assert "<strong>1,234.5</strong> done" in html
    assert "progress-report" not in web.get(f"/jobs/{silent.id}").text


def test_jobs_list_has_a_progress_column(app: App, web: TestClient) -> None:
    half, counted, silent = _running(app, 3)
    _report(app, half, 1, 2, '{"big": "' + "x" * 1000 + '"}')
    _report(app, counted, 17)
    html = web.get("/jobs").text
    assert "<th class=\"num\">Progress</th>" in html
    assert re.search(r'<td class="num progress" title="1 / 2">50%</td>', _row(html, half.id))
    assert re.search(r'<td class="num progress" title="17">17</td>', _row(html, counted.id))
    assert '<td class="num progress"></td>' in _row(html, silent.id)
    # A finished job keeps the last progress its attempt wrote.
    app.client.execute(statements.finish(SCHEMA, 1, [statements.Finish(
        half.id, half.lease, JobState.SUCCEEDED, value_json="2", queue=half.queue)]))
    assert ">50%</td>" in _row(web.get("/jobs?state=succeeded").text, half.id)


def test_api_gives_progress_on_job_objects(app: App, web: TestClient) -> None:
    job, silent = _running(app, 2)
    _report(app, job, 3, 4, '{"stage": "upload"}')
    detail = web.get(f"/api/jobs/{job.id}").json()
    progress = detail["progress"]
    assert (progress["done"], progress["total"], progress["meta"]) == (3, 4,
                                                                      {"stage": "upload"})
    assert progress["updated_at"].endswith("+00:00")
    assert web.get(f"/api/jobs/{silent.id}").json()["progress"] is None
    listed = {j["id"]: j for j in web.get("/api/jobs").json()["jobs"]}
    assert listed[job.id]["progress"]["done"] == 3
    assert listed[job.id]["progress"]["meta"] is None  # lists leave the meta out
    assert listed[silent.id]["progress"] is None


@pytest.mark.parametrize("progress, text", [
    (None, ""),
    (Progress(17, 40), "42%"),
    (Progress(39.99, 40), "99%"),  # not 100% until done
    (Progress(50, 40), "100%"),  # an estimate passed: the bar stays full
    (Progress(1234), "1,234"),
    (Progress(2.5), "2.5"),
    (Progress(3.0), "3"),
])
def test_progress_in_a_list_cell(progress: Progress | None, text: str) -> None:
    assert progress_short(progress) == text


def test_meta_summary_is_one_short_line() -> None:
    assert summary({"file": "a.csv", "rows": 3, "ok": True, "x": None}) == \
        "file: a.csv · rows: 3 · ok: true · x: null"
    assert summary({"nested": {"a": [1, 2]}}) == '{"nested": {"a": [1, 2]}}'
    assert summary("plain text") == "plain text"
    cut = summary(list(range(100)), limit=20)
    assert len(cut) == 20 and cut.endswith("…")
