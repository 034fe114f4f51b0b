"""Workflows as the Monitor and `pgq workflows list|show` see them: real chains, groups
and chords run by a real worker, and rows only SQL could write."""

from __future__ import annotations

import json

import psycopg
import pytest

from pgqueue.canvas import chain, chord, group
from pgqueue.errors import ChordError
from pgqueue.monitor import Monitor, to_json
from pgqueue.monitor_rows import GroupNode, StepNode
from pgqueue.monitor_tree import walk
from tests.conftest import pgq_run, running_worker, wait_for


def _finished(app, workflow_id: int) -> bool:
    detail = Monitor(app).workflow(workflow_id)
    return detail is not None and detail.workflow.finished


@pytest.fixture
def failed_chord(app):
    """chord([add(1, 1), div(1, 0)], tsum) with an errback: the callback is cancelled,
    its errback runs. Returns (header results, callback result)."""
    add, div, tsum, on_error = (app.tasks[n] for n in ("add", "div", "tsum", "on_error"))
    c = chord([add.s(1, 1), div.s(1, 0)], tsum.s())
    c.link_error(on_error.s(label="chord"))
    with running_worker(app):
        r = c.delay()
        with pytest.raises(ChordError):
            r.get(timeout=10)
        assert wait_for(lambda: _finished(app, r.workflow_id), 10)
    return r.parent.results, r


@pytest.fixture
def good_chain(app):
    add, mul, tsum = app.tasks["add"], app.tasks["mul"], app.tasks["tsum"]
    with running_worker(app, concurrency=4):
        r = chain(add.s(1, 1), mul.s(3), group(mul.s(2), mul.s(5)), tsum.s()).delay()
        assert r.get(timeout=20) == 42
    return r


def test_monitor_reads_a_failed_chord_as_a_tree(app, failed_chord):
    (ok, bad), callback = failed_chord
    detail = Monitor(app).workflow(callback.workflow_id)
    w = detail.workflow
    assert (w.kind, w.jobs, w.succeeded, w.failed, w.cancelled, w.finished) == \
        ("chord", 4, 2, 1, 1, True)  # the errback succeeded
    (branch,) = detail.tree
    group_node, cb = branch
    assert isinstance(group_node, GroupNode) and isinstance(cb, StepNode)
    g = group_node.group
    assert (g.size, g.succeeded, g.failed) == (2, 1, 1) and g.finished_at is not None
    assert [[n.step.id for n in m] for m in group_node.members] == [[ok.id], [bad.id]]
    failed = group_node.members[1][0].step
    assert (failed.state, failed.error_type, failed.error_message) == \
        ("failed", "ZeroDivisionError", "division by zero")
    assert (cb.step.id, cb.step.state, cb.step.error_type) == \
        (callback.id, "cancelled", "ChordError")
    assert cb.step.error_from_job == bad.id
    ((errback,),) = cb.errbacks
    assert errback.step.task == "on_error" and errback.step.errback_of == callback.id
    json.dumps(to_json(detail), allow_nan=False)


def test_a_jobs_place_in_its_workflow(app, failed_chord):
    (ok, bad), callback = failed_chord
    m = Monitor(app)
    member = m.workflow_of_job(bad.id)
    assert member.workflow.id == callback.workflow_id and member.step.group_index == 1
    assert [s.id for s in member.siblings.steps] == [ok.id] and member.siblings.more == 0
    assert [s.id for s in member.callbacks.steps] == [callback.id]  # waits on its group
    assert member.group.size == 2 and member.parents.total == 0
    assert member.tree is not None  # small: the whole workflow comes with it
    cb = m.workflow_of_job(callback.id)
    assert [s.id for s in cb.parents.steps] == [ok.id, bad.id]  # the chord's header
    assert cb.parent_group.id == member.group.id and cb.group is None
    (errback,) = cb.errbacks.steps
    eb = m.workflow_of_job(errback.id)
    assert eb.errback_of.id == callback.id and eb.parents.total == 0
    assert m.workflow_of_job(callback.id, tree_up_to=3).tree is None
    plain = app.tasks["add"].delay(1, 2)
    assert m.workflow_of_job(plain.id) is None and m.workflow_id_of_job(plain.id) is None


def test_big_groups_are_cut_and_counted(app):
    add, tsum = app.tasks["add"], app.tasks["tsum"]
    c = chord([add.s(i, i) for i in range(60)], tsum.s()).delay()  # no worker: all wait
    m = Monitor(app)
    member = m.workflow_of_job(c.parent.results[0].id, cap=50)
    assert len(member.siblings.steps) == 50 and member.siblings.total == 59
    assert member.siblings.more == 9 and member.tree is not None  # 61 jobs: drawn
    cb = m.workflow_of_job(c.id, cap=10, tree_up_to=50)
    assert [s.group_index for s in cb.parents.steps] == list(range(10))
    assert cb.parents.more == 50 and cb.tree is None
    assert cb.step.state == "waiting"


def test_list_newest_first(app, good_chain, failed_chord):
    rows = Monitor(app).workflows()
    assert [r.id for r in rows] == sorted((r.id for r in rows), reverse=True)
    assert [r.kind for r in rows] == ["chord", "chain"]
    assert Monitor(app).workflows(limit=1)[0].kind == "chord"


def test_pgq_workflows_show_and_list(app, dsn, failed_chord, good_chain):
    (ok, bad), callback = failed_chord
    out = pgq_run(dsn, "workflows", "show", str(callback.workflow_id))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"workflow {callback.workflow_id} (chord), created ")
    assert "4 jobs, 2 succeeded, 1 failed, 1 cancelled; finished" in lines[0]
    group_id = Monitor(app).workflow_of_job(ok.id).group.id
    assert lines[1:4] == [
        f"group {group_id}: 1/2 succeeded, 1 failed",
        f"├─ {ok.id}  add  succeeded",
        f"└─ {bad.id}  div  failed  ZeroDivisionError: division by zero",
    ]
    assert lines[4].startswith(f"{callback.id}  tsum  cancelled  ChordError: member 2 of group")
    assert lines[4].endswith(f"(from job {bad.id})")
    assert lines[5].startswith("└─ on error: ") and lines[5].endswith("on_error  succeeded")
    assert len(lines) == 6

    chained = pgq_run(dsn, "workflows", "show", str(good_chain.workflow_id)).stdout
    detail = Monitor(app).workflow(good_chain.workflow_id)
    first, second, m1, m2, last = sorted(n.step.id for n in walk(detail.tree)
                                         if isinstance(n, StepNode))
    (g,) = detail.groups
    assert chained.splitlines()[1:] == [
        f"{first}  add  succeeded", f"{second}  mul  succeeded",
        f"group {g.id}: 2/2 succeeded", f"├─ {m1}  mul  succeeded", f"└─ {m2}  mul  succeeded",
        f"{last}  tsum  succeeded"]

    marked = pgq_run(dsn, "workflows", "show", "--job", str(bad.id)).stdout
    assert f"{bad.id}  div  failed" in marked and marked.count("<- this job") == 1
    assert "<- this job" in next(x for x in marked.splitlines() if f"{bad.id}  div" in x)

    data = json.loads(pgq_run(dsn, "workflows", "show", str(callback.workflow_id),
                              "--json").stdout)
    assert data["workflow"]["kind"] == "chord" and data["groups"][0]["failed"] == 1
    (branch,) = data["tree"]
    assert [n["kind"] for n in branch] == ["group", "step"]
    assert branch[1]["step"]["error_type"] == "ChordError"

    listed = pgq_run(dsn, "workflows", "list")
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == [
        "ID", "KIND", "CREATED", "JOBS", "WAITING", "QUEUED", "RUNNING", "SUCCEEDED",
        "FAILED", "CANCELLED", "FINISHED"]
    assert len(listed.stdout.splitlines()) == 3
    rows = json.loads(pgq_run(dsn, "workflows", "list", "--limit", "1", "--json").stdout)
    assert [(r["kind"], r["jobs"], r["finished"]) for r in rows] == [("chain", 5, True)]


def test_pgq_workflows_not_found(app, dsn):
    plain = app.tasks["add"].delay(1, 2)
    for args, message in [
        (("999999",), "no workflow with id 999999"),
        (("--job", "999999"), "no job with id 999999"),
        (("--job", str(plain.id)), f"job {plain.id} is not part of a workflow"),
    ]:
        out = pgq_run(dsn, "workflows", "show", *args)
        assert out.returncode == 1 and message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
    empty = pgq_run(dsn, "workflows", "list")
    assert empty.returncode == 0 and "no workflows" in empty.stdout
    usage = pgq_run(dsn, "workflows", "--help").stdout
    assert "list  The newest workflows" in usage and "show  Show workflow ID" in usage
    assert "workflows  List workflows" in pgq_run(dsn, "--help").stdout


def test_jobs_list_filters_waiting_steps(app, dsn):
    add, mul = app.tasks["add"], app.tasks["mul"]
    r = (add.s(1, 1) | mul.s(2)).delay()  # no worker: the second step waits
    listed = json.loads(pgq_run(dsn, "jobs", "list", "--state", "waiting", "--json").stdout)
    assert [j["id"] for j in listed["jobs"]] == [r.id]


def test_rows_only_sql_could_write(app, dsn):
    """Steps that wait for a missing job, a cycle, a group without its row, an errback of
    nothing: the Monitor, the CLI and the JSON all still answer, every step shown once."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        (wf,) = conn.execute("INSERT INTO pgqueue.workflows (kind) VALUES ('chain') "
                             "RETURNING id").fetchone()
        ids = [conn.execute("INSERT INTO pgqueue.jobs (queue, task, args, kwargs, state, "
                            "workflow_id) VALUES ('default', 'add', '[]', '{}', %s, %s) "
                            "RETURNING id", (state, wf)).fetchone()[0]
               for state in ("succeeded", "waiting", "waiting", "waiting", "failed",
                             "cancelled")]
        a, b, c, d, e, f = ids
        steps = [(a, None, None, None, None, None), (b, 99999999, None, None, None, None),
                 (c, d, None, None, None, None), (d, c, None, None, None, None),
                 (e, None, None, 424242, None, None), (f, None, None, None, None, 88888888)]
        for job, after_job, after_group, group_id, index, errback_of in steps:
            conn.execute("INSERT INTO pgqueue.workflow_steps (job_id, workflow_id, after_job, "
                         "after_group, group_id, group_index, errback_of) "
                         "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                         (job, wf, after_job, after_group, group_id, index, errback_of))
        conn.execute("INSERT INTO pgqueue.job_errors (job_id, attempt, type, message, "
                     "traceback) VALUES (%s, 1, 'E', %s, '')", (e, "x" * 5000 + "\nline 2"))
    detail = Monitor(app).workflow(wf)
    shown = sorted(n.step.id for n in walk(detail.tree) if isinstance(n, StepNode))
    assert shown == sorted(ids)
    json.dumps(to_json(detail), allow_nan=False)
    for job in ids:
        place = Monitor(app).workflow_of_job(job)
        assert place is not None and place.step.id == job
        json.dumps(to_json(place), allow_nan=False)
    out = pgq_run(dsn, "workflows", "show", str(wf))
    assert out.returncode == 0 and not out.stderr, out.stderr
    assert "(after job 99999999)" in out.stdout and "(errback of job 88888888)" in out.stdout
    assert "group 424242: 0/1 succeeded, 1 failed" in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) < 300
    assert pgq_run(dsn, "workflows", "show", str(wf), "--json").returncode == 0
    assert pgq_run(dsn, "workflows", "list").returncode == 0
