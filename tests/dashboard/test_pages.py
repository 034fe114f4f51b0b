"""The HTML pages and the fragments htmx polls, against real jobs in every state."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest

import pgqueue.dashboard

STATIC = Path(pgqueue.dashboard.__file__).parent / "static"


def _rows(html: str, cls: str) -> list[str]:
    return re.findall(rf'<tr class="{cls}"[^>]*>(.*?)</tr>', html, re.S)


def test_overview_shows_workers_queues_tasks_and_polls_live(client, world):
    html = client.get("/?window=5m").text
    (up,) = [r for r in _rows(html, "worker") if "status-up" in r]
    assert str(__import__("os").getpid()) in up and "threads" in up and "1 / 10" in up
    queues = {re.search(r'>([\w-]+)</a></td>', r)[1]: r for r in _rows(html, "queue")}
    assert set(queues) >= {"default", "emails", "idle", "paused-q"}
    assert "status-paused" in queues["paused-q"] and "Resume" in queues["paused-q"]
    assert "Pause" in queues["default"]
    tasks = "".join(_rows(html, "task"))
    assert "always_fails" in tasks and "Retry all failed" in tasks
    # Live parts poll their fragments every 2 s; the chart reads the JSON API.
    assert 'hx-get="/fragments/workers" hx-trigger="every 2s"' in html
    assert 'hx-get="/fragments/queues?window=5m"' in html
    assert 'data-series="/api/series?window=5m"' in html
    assert 'aria-current="true">5m<' in html


def test_long_windows_refresh_their_statistics_less_often(client, world):
    html = client.get("/?window=7d").text
    assert 'hx-get="/fragments/tasks?window=7d" hx-trigger="every 30s"' in html
    assert 'data-poll="30"' in html and "refreshed every 30 s" in html
    assert 'hx-get="/fragments/workers" hx-trigger="every 2s"' in html  # live as ever


@pytest.mark.parametrize("fragment, needle", [
    ("/fragments/workers", "status-up"),
    ("/fragments/queues?window=24h", "paused-q"),
    ("/fragments/tasks?window=1h", "always_fails"),
    ("/fragments/schedules", "nightly-report"),
])
def test_fragments_are_bare_html(client, world, fragment, needle):
    response = client.get(fragment, headers={"HX-Request": "true"})
    assert response.status_code == 200 and needle in response.text
    assert "<html" not in response.text and response.headers["cache-control"] == "no-store"


def test_jobs_page_filters_and_older_link(client, world):
    html = client.get("/jobs?state=failed").text
    ids = [int(i) for i in re.findall(r'data-job-id="(\d+)"', html)]
    assert ids == sorted([world.ids["failed"], world.ids["always_fails"]], reverse=True)
    assert '<option value="failed" selected>' in html
    html = client.get("/jobs?queue=emails&task=send_email").text
    assert re.findall(r'data-job-id="(\d+)"', html) == [str(world.ids["queued"])]

    first = client.get("/jobs?limit=2").text
    older = unescape(re.search(r'class="older" href="([^"]+)"', first)[1])
    assert older.startswith("/jobs?") and "before_id=" in older and "limit=2" in older
    second = client.get(older).text
    shown = [int(i) for i in re.findall(r'data-job-id="(\d+)"', first + second)]
    assert len(shown) == 4 and shown == sorted(shown, reverse=True)
    # Only the newest page follows new jobs live; an older page holds still.
    assert 'hx-get="/fragments/jobs?limit=2"' in first and "hx-get" not in second.split(
        'id="job-list"')[1].split(">")[0]
    assert "Newest" in second


def test_jobs_page_offers_retry_all_failed_of_a_task(client, world):
    html = client.get("/jobs?state=failed&task=always_fails").text
    assert 'action="/api/tasks/always_fails/retry-failed"' in html


def test_bad_filter_is_a_400_page(client):
    response = client.get("/jobs?state=exploded")
    assert response.status_code == 400 and "unknown state 'exploded'" in response.text


def test_job_page_shows_every_attempt_with_traceback(client, world):
    html = client.get(f"/jobs/{world.ids['always_fails']}").text
    attempts = re.findall(r'<article class="attempt" id="attempt-(\d)">(.*?)</article>', html,
                          re.S)
    assert [n for n, _ in attempts] == ["1", "2", "3", "4"]
    for _, body in attempts:
        assert "Traceback (most recent call last)" in body and "RuntimeError: nope" in body
    assert "4 of 4" in html and 'action="/api/jobs/' in html and ">Retry<" in html
    assert ">Retry all failed always_fails<" in html
    assert ">Cancel<" not in html  # a failed job can't be cancelled


def test_job_page_of_each_state(client, world):
    ok = client.get(f"/jobs/{world.ids['succeeded']}").text
    assert '<pre class="code result">0</pre>' in ok and "No failed attempt." in ok
    assert ">Retry<" not in ok
    running = client.get(f"/jobs/{world.ids['running']}").text
    assert "state-running" in running and ">Cancel<" in running and "Lease until" in running
    assert 'hx-get="/fragments/jobs/' in running
    queued = client.get(f"/jobs/{world.ids['queued']}").text
    assert "&#34;ada@example.com&#34;" in queued or '"ada@example.com"' in unescape(queued)
    missing = client.get("/jobs/987654321")
    assert missing.status_code == 404 and "no job 987654321" in missing.text.lower()


def test_job_fragment(client, world):
    response = client.get(f"/fragments/jobs/{world.ids['failed']}")
    assert response.status_code == 200 and "ValueError" in response.text
    assert "<html" not in response.text


def test_untrusted_text_is_escaped(client, world):
    r = world.app.tasks["echo"].apply_async(args=("<script>alert(1)</script>",), queue="idle")
    html = client.get(f"/jobs/{r.id}").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_schedules_page(client, world):
    html = client.get("/schedules").text
    (row,) = _rows(html, "schedule")
    assert "nightly-report" in row and "0 3 * * *" in row
    for action in ("pause", "trigger"):
        assert f'action="/api/schedules/nightly-report/{action}"' in row


def test_notice_codes_only_show_known_messages(client, world):
    assert "Job queued again." in client.get("/?notice=retried").text
    assert "<b>owned</b>" not in client.get("/?notice=<b>owned</b>").text


def test_every_script_and_style_is_served_locally(client):
    html = client.get("/").text
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert len(assets) >= 4 and all(a.startswith("/static/") for a in assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000
    for license_file in ("LICENSE.htmx", "LICENSE.uPlot"):
        assert (STATIC / "vendor" / license_file).read_text().strip()


def test_security_headers(client):
    headers = client.get("/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self';" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
