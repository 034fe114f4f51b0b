"""Prometheus metrics: database gauges (any process) and a worker's own counters."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from pgqueue import TaskError
from pgqueue.metrics import render
from pgqueue.monitor import Monitor
from tests.conftest import running_worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_database_metrics(app):
    app.tasks["add"].delay(1, 2)
    app.tasks["send_email"].delay("a@b.c")
    body, content_type = render(Monitor(app))
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'pgqueue_jobs{queue="default",state="queued"} 1.0' in text
    assert 'pgqueue_jobs{queue="emails",state="queued"} 1.0' in text
    assert "pgqueue_jobs_enqueued_total 2.0" in text
    assert 'pgqueue_workers{status="up"} 0.0' in text


def test_worker_serves_its_counters_and_runtime_histogram(app):
    port = _free_port()
    with running_worker(app, metrics_port=port):
        app.tasks["add"].delay(1, 2).get(timeout=10)
        app.tasks["flaky"].delay(1).get(timeout=10)
        with pytest.raises(TaskError):
            app.tasks["boom"].delay("x").get(timeout=10)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'pgqueue_worker_jobs_total{outcome="succeeded",queue="default",task="add"} 1.0' in text
    assert 'pgqueue_worker_jobs_total{outcome="retried",queue="default",task="flaky"} 1.0' in text
    assert 'pgqueue_worker_jobs_total{outcome="failed",queue="default",task="boom"} 1.0' in text
    assert 'pgqueue_worker_job_runtime_seconds_count{queue="default",task="add"} 1.0' in text


def test_limit_metrics(app):
    with running_worker(app):  # declares its tasks' limits
        pass
    monitor = Monitor(app)
    app.tasks["metered"].delay(1)  # 60/m
    for i in range(3):
        app.tasks["add"].apply_async((i, i), queue="bulk")
    monitor.set_queue_limits("bulk", rate="600/m", concurrency=20)
    text = render(monitor)[0].decode()
    assert 'pgqueue_limit_waiting{name="bulk",scope="queue"} 3.0' in text
    assert 'pgqueue_limit_waiting{name="metered",scope="task"} 1.0' in text
    assert 'pgqueue_limit_waiting{name="one_of_three",scope="task"} 0.0' in text
    assert 'pgqueue_limit_running{name="bulk",scope="queue"} 0.0' in text
    assert 'pgqueue_limit_rate_per_second{name="bulk",scope="queue"} 10.0' in text
    assert 'pgqueue_limit_rate_per_second{name="metered",scope="task"} 1.0' in text
    assert 'pgqueue_limit_rate_per_second{name="per_tenant",scope="task"} 3.0' in text
    assert 'pgqueue_limit_concurrency{name="bulk",scope="queue"} 20.0' in text
    assert 'pgqueue_limit_concurrency{name="one_of_three",scope="task"} 3.0' in text
    # A limit that is not set has no series; a queue without limits has none at all.
    assert 'pgqueue_limit_concurrency{name="metered"' not in text
    assert 'name="default"' not in text
    monitor.set_queue_limits("bulk", rate=None, concurrency=None)
    assert 'name="bulk"' not in render(monitor)[0].decode()
