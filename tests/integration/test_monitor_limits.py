"""The Monitor's view of limits: a queue's own (set at run time), the tasks', and the
due jobs each holds back."""

from __future__ import annotations

import psycopg
import pytest

from pgqueue.monitor import Monitor, QueueLimits
from tests.conftest import count, running_worker


def _declare_task_limits(app) -> None:
    """What a worker writes when it starts: its tasks' limits."""
    with running_worker(app):
        pass


def test_setting_one_limit_keeps_the_other(app):
    m = Monitor(app)
    assert m.set_queue_limits("emails", rate="600/m") == QueueLimits(
        "emails", "600/m", 600, 60.0, None)
    both = m.set_queue_limits("emails", concurrency=20)
    assert both == QueueLimits("emails", "600/m", 600, 60.0, 20)
    assert both.describe() == "at most 600 starts a minute, 20 running at once"
    assert m.set_queue_limits("emails", rate="5/10s").describe() == (
        "at most 5 starts in any 10 seconds, 20 running at once")
    assert m.set_queue_limits("emails", rate=None).describe() == "at most 20 running at once"
    assert m.set_queue_limits("emails").concurrency_limit == 20  # nothing given: as it was
    cleared = m.set_queue_limits("emails", rate=None, concurrency=None)
    assert cleared.describe() == "no limits"
    row = {q.queue: q for q in m.queues()}["emails"]
    assert (row.rate_limit, row.concurrency_limit, row.held_back) == (None, None, 0)


@pytest.mark.parametrize("kwargs, error", [
    ({"rate": "10"}, ValueError),
    ({"rate": "0/m"}, ValueError),
    ({"rate": 10}, TypeError),
    ({"concurrency": 0}, ValueError),
    ({"concurrency": "5"}, TypeError),
    ({"concurrency": True}, TypeError),
])
def test_bad_limits_are_refused_before_any_sql(app, dsn, kwargs, error):
    with pytest.raises(error):
        Monitor(app).set_queue_limits("emails", **kwargs)
    assert count(dsn, "SELECT count(*) FROM pgqueue.queues") == 0


def test_a_bad_queue_name_is_refused(app):
    with pytest.raises(ValueError, match="invalid queue name"):
        Monitor(app).set_queue_limits("no spaces", concurrency=1)


def test_changing_limits_leaves_a_pause_and_its_start_alone(app, dsn):
    m = Monitor(app)
    m.pause_queue("emails")
    since = count(dsn, "SELECT extract(epoch FROM paused_since) * 1e6 "
                       "FROM pgqueue.paused_queues")
    m.set_queue_limits("emails", concurrency=2)
    assert {q.queue: q.paused for q in m.queues()}["emails"] is True
    assert count(dsn, "SELECT extract(epoch FROM paused_since) * 1e6 "
                      "FROM pgqueue.paused_queues") == since


def test_held_back_counts_due_jobs_under_a_limit(app):
    m = Monitor(app)
    _declare_task_limits(app)  # metered: 60/m, one_of_three: 3 at once, per_tenant: 3/s
    add, metered = app.tasks["add"], app.tasks["metered"]
    for i in range(3):
        add.delay(i, i)  # default: no queue limit, and add has none
    metered.delay(1)  # default too, but metered is limited
    metered.apply_async((2,), countdown=3600)  # not due: waits on its time, not a limit
    for i in range(4):
        add.apply_async((i, i), queue="bulk")
    add.apply_async((9, 9), queue="bulk", countdown=3600)
    m.set_queue_limits("bulk", rate="1/h")
    m.set_queue_limits("quiet", concurrency=5)  # limited, but nothing waits
    queues = {q.queue: q for q in m.queues()}
    assert (queues["default"].queued, queues["default"].held_back) == (4, 1)
    assert queues["default"].rate_limit is None
    assert (queues["bulk"].queued, queues["bulk"].held_back) == (4, 4)
    assert (queues["bulk"].rate_limit, queues["bulk"].rate,
            queues["bulk"].rate_window_seconds) == ("1/h", 1, 3600.0)
    assert (queues["quiet"].concurrency_limit, queues["quiet"].held_back) == (5, 0)


def test_task_limits_as_declared_with_what_they_hold_back(app, dsn):
    m = Monitor(app)
    assert m.task_limits() == []
    _declare_task_limits(app)
    metered = app.tasks["metered"]
    for i in range(3):
        metered.delay(i)
    metered.apply_async((9,), countdown=3600)
    with psycopg.connect(dsn, autocommit=True) as conn:  # one running, as a worker holds it
        conn.execute("UPDATE pgqueue.jobs SET state = 'running', started_at = now(), "
                     "lease_expires_at = now() + interval '1 minute' WHERE id = "
                     "(SELECT min(id) FROM pgqueue.jobs)")
    limits = {t.task: t for t in m.task_limits()}
    assert set(limits) == {"metered", "one_of_three", "per_tenant"}
    t = limits["metered"]
    assert (t.rate_limit, t.rate, t.rate_window_seconds, t.concurrency_limit) == (
        "60/m", 60, 60.0, None)
    assert (t.held_back, t.running) == (2, 1)
    assert t.declared_at is not None
    assert (limits["one_of_three"].rate_limit, limits["one_of_three"].concurrency_limit,
            limits["one_of_three"].held_back) == (None, 3, 0)
    assert limits["per_tenant"].rate_limit == "3/s"
    assert m.overview()["task_limits"] == m.task_limits()
