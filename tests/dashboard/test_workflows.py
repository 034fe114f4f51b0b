"""Workflows on the dashboard: the Workflow section of a job's page, the workflow's own
page and the JSON API, over chords a real worker ran (each test on a fresh database)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from pgqueue.canvas import chord
from pgqueue.dashboard import create_app
from pgqueue.errors import ChordError
from pgqueue.monitor import Monitor
from tests.conftest import running_worker, wait_for


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://localhost") as c:
        yield c


@pytest.fixture
def failed_chord(app):
    """chord([add(1, 1), div(1, 0)], tsum) with an errback; returns the job ids."""
    add, div, tsum, on_error = (app.tasks[n] for n in ("add", "div", "tsum", "on_error"))
    c = chord([add.s(1, 1), div.s(1, 0)], tsum.s())
    c.link_error(on_error.s())
    with running_worker(app):
        r = c.delay()
        with pytest.raises(ChordError):
            r.get(timeout=10)
        assert wait_for(lambda: Monitor(app).workflow(r.workflow_id).workflow.finished, 10)
    ok, bad = r.parent.results
    (errback,) = Monitor(app).workflow_of_job(r.id).errbacks.steps
    return {"ok": ok.id, "bad": bad.id, "callback": r.id, "errback": errback.id,
            "workflow": r.workflow_id}


def _section(html: str) -> str:
    found = re.search(r'<section id="job-workflow"(.*?)</section>', html, re.S)
    assert found, "no Workflow section"
    return found[1]


def _facts(section: str) -> dict[str, str]:
    return {dt: dd for dt, dd in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", section, re.S)}


def _links(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/jobs/(\d+)"', html)]


def test_a_members_page_shows_its_group_the_callback_and_the_tree(client, failed_chord):
    ids = failed_chord
    html = client.get(f"/jobs/{ids['bad']}").text
    section = _section(html)
    assert f'hx-get="/fragments/jobs/{ids["bad"]}/workflow" hx-trigger="every 10s"' in html
    assert f'<a href="/workflows/{ids["workflow"]}">{ids["workflow"]}</a>' in section
    assert "chord · 4 jobs, 2 succeeded, 1 failed, 1 cancelled · finished" in section
    facts = _facts(section)
    assert facts["Member of"].startswith("group ") and "member 2 of 2: 1/2 succeeded" in \
        facts["Member of"]
    assert _links(facts["Rest of group"]) == [ids["ok"]]
    assert "state-succeeded" in facts["Rest of group"]
    # the callback, cancelled with a ChordError that links the member that failed
    assert _links(facts["Then"]) == [ids["callback"], ids["bad"]]
    assert "ChordError" in facts["Then"]
    tree = section.split('class="wf-tree"')[1]
    assert [int(i) for i in re.findall(r'data-job-id="(\d+)"', tree)] == [
        ids["ok"], ids["bad"], ids["callback"], ids["errback"]]
    assert re.search(rf'wf-here" data-job-id="{ids["bad"]}"', tree)
    assert "ZeroDivisionError: division by zero" in tree and "on error" in tree


def test_the_callbacks_and_the_errbacks_pages(client, failed_chord):
    ids = failed_chord
    facts = _facts(_section(client.get(f"/jobs/{ids['callback']}").text))
    assert "every member of group" in facts["Waits for"]
    assert _links(facts["Waits for"]) == [ids["ok"], ids["bad"]]
    assert _links(facts["Errbacks"]) == [ids["errback"]]
    assert "Member of" not in facts and "Then" not in facts
    facts = _facts(_section(client.get(f"/jobs/{ids['errback']}").text))
    assert _links(facts["Errback of"]) == [ids["callback"], ids["bad"]]
    fragment = client.get(f"/fragments/jobs/{ids['ok']}/workflow")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Rest of group" in fragment.text


def test_a_plain_job_has_no_workflow_section(client, app):
    r = app.tasks["add"].delay(1, 2)
    html = client.get(f"/jobs/{r.id}").text
    assert 'id="job-workflow"' not in html and "Workflow" not in html
    empty = client.get(f"/fragments/jobs/{r.id}/workflow")
    assert empty.status_code == 200 and not empty.text.strip()


def test_the_workflow_page(client, failed_chord):
    ids = failed_chord
    response = client.get(f"/workflows/{ids['workflow']}")
    assert response.status_code == 200
    html = response.text
    assert "Workflow " + str(ids["workflow"]) in html and ">chord<" in html
    assert re.search(r"<dt>Group \d+</dt><dd>1/2 succeeded, <span class=\"bad\">1 failed", html)
    assert sorted(int(i) for i in re.findall(r'data-job-id="(\d+)"', html)) == sorted(
        ids[k] for k in ("ok", "bad", "callback", "errback"))
    assert f'hx-get="/fragments/workflows/{ids["workflow"]}"' in html
    fragment = client.get(f"/fragments/workflows/{ids['workflow']}")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    missing = client.get("/workflows/987654")
    assert missing.status_code == 404 and "no workflow 987654" in missing.text.lower()


def test_a_big_group_is_cut_and_not_drawn(client, app):
    add, tsum = app.tasks["add"], app.tasks["tsum"]
    c = chord([add.s(i, i) for i in range(120)], tsum.s()).delay()  # no worker: all wait
    first = c.parent.results[0].id
    section = _section(client.get(f"/jobs/{first}").text)
    facts = _facts(section)
    assert len(_links(facts["Rest of group"])) == 50 and "and 69 more" in facts["Rest of group"]
    assert "121 jobs: too many to draw here" in section and "wf-tree" not in section
    assert 'hx-trigger="every 2s"' in client.get(f"/jobs/{first}").text  # not finished
    facts = _facts(_section(client.get(f"/jobs/{c.id}").text))
    assert len(_links(facts["Waits for"])) == 50 and "and 70 more" in facts["Waits for"]
    assert "state-waiting" in client.get(f"/workflows/{c.workflow_id}").text  # drawn there


def test_api(client, app, failed_chord):
    ids = failed_chord
    place = client.get(f"/api/jobs/{ids['bad']}/workflow").json()
    assert place["workflow_id"] == ids["workflow"] and place["workflow"]["kind"] == "chord"
    assert [s["id"] for s in place["siblings"]["steps"]] == [ids["ok"]]
    assert place["siblings"]["total"] == 1 and place["group"]["size"] == 2
    assert [s["id"] for s in place["callbacks"]["steps"]] == [ids["callback"]]
    assert place["tree"]["tree"][0][0]["kind"] == "group"
    assert client.get(f"/api/jobs/{ids['bad']}/workflow?tree_up_to=0").json()["tree"] is None
    cut = client.get(f"/api/jobs/{ids['callback']}/workflow?cap=1").json()["parents"]
    assert len(cut["steps"]) == 1 and cut["total"] == 2
    whole = client.get(f"/api/workflows/{ids['workflow']}").json()
    assert whole["workflow"]["jobs"] == 4 and len(whole["tree"]) == 1
    assert whole["tree"][0][1]["errbacks"][0][0]["step"]["id"] == ids["errback"]
    listed = client.get("/api/workflows?limit=5").json()
    assert [w["id"] for w in listed] == [ids["workflow"]]
    plain = app.tasks["add"].delay(1, 2)
    for path, message in [(f"/api/jobs/{plain.id}/workflow", "not part of a workflow"),
                          ("/api/jobs/987654/workflow", "no job 987654"),
                          ("/api/workflows/987654", "no workflow 987654")]:
        response = client.get(path)
        assert response.status_code == 404 and message in response.json()["error"], path
    bad = client.get(f"/api/jobs/{ids['bad']}/workflow?cap=0")
    assert bad.status_code == 400 and "cap must be between 1 and 500" in bad.json()["error"]
    assert client.get("/api/workflows?limit=x").status_code == 400
