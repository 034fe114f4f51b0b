"""Hooks around enqueues and executions, and the OpenTelemetry integration built on them."""

from __future__ import annotations

import threading

import psycopg
import pytest

from pgqueue import TaskError
from tests.conftest import running_worker


def test_task_hooks_see_every_outcome_in_the_task_thread(app):
    seen: list[tuple[str, ...]] = []
    threads: set[int] = set()

    @app.hooks.before_task
    def before(ctx):
        threads.add(threading.get_ident())
        seen.append(("before", ctx.task))

    @app.hooks.after_task
    def after(ctx, outcome, value):
        seen.append(("after", ctx.task, outcome, repr(value)))

    @app.hooks.task_failure
    def failure(ctx, exc):
        seen.append(("failure", ctx.task, type(exc).__name__))

    @app.hooks.task_retry
    def retry(ctx, exc):
        seen.append(("retry", ctx.task))

    @app.hooks.before_task
    def broken(ctx):
        raise RuntimeError("a broken hook must not fail the job")

    with running_worker(app, concurrency=1):
        assert app.tasks["add"].delay(1, 2).get(timeout=10) == 3
        assert app.tasks["flaky"].delay(1).get(timeout=10) == 2
        with pytest.raises(TaskError):
            app.tasks["boom"].delay("x").get(timeout=10)
        assert app.tasks["async_add"].delay(2, 2).get(timeout=10) == 4
    assert ("after", "add", "succeeded", "3") in seen
    assert ("retry", "flaky") in seen and ("after", "flaky", "retry", "None") in seen
    assert ("after", "flaky", "succeeded", "2") in seen
    assert ("failure", "boom", "ValueError") in seen and ("after", "boom", "failed", "None") in seen
    assert ("after", "async_add", "succeeded", "4") in seen
    assert threading.get_ident() not in threads  # hooks ran where the task ran


def test_enqueue_hooks_add_headers_that_reach_the_task(app, dsn):
    @app.hooks.before_enqueue
    def correlate(task):
        return {"x-request-id": "req-42"}

    seen = []

    @app.hooks.before_task
    def read(ctx):
        seen.append(ctx.headers.get("x-request-id"))

    with running_worker(app):
        app.tasks["add"].delay(1, 1).get(timeout=10)
    assert seen == ["req-42"]
    with psycopg.connect(dsn) as conn:
        (headers,) = conn.execute("SELECT headers FROM pgqueue.jobs").fetchone()
    assert headers == {"x-request-id": "req-42"}


def test_opentelemetry_span_is_a_child_of_the_producers_trace(app):
    trace = pytest.importorskip("opentelemetry.trace")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pgqueue.contrib.opentelemetry import instrument

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(app, tracer_provider=provider)
    tracer = provider.get_tracer("test")
    with running_worker(app):
        with tracer.start_as_current_span("web request") as request_span:
            ok = app.tasks["add"].delay(1, 2)
            bad = app.tasks["boom"].delay("x")
        ok.get(timeout=10)
        with pytest.raises(TaskError):
            bad.get(timeout=10)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    run = spans["pgqueue.run add"]
    assert run.context.trace_id == request_span.get_span_context().trace_id
    assert run.parent.span_id == request_span.get_span_context().span_id
    assert run.attributes["messaging.message.id"] == str(ok.id)
    failed = spans["pgqueue.run boom"]
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert any(e.name == "exception" for e in failed.events)


def test_worker_hooks_run_when_the_worker_serves_and_when_it_stops(app):
    seen: list[tuple[str, int]] = []

    @app.hooks.worker_started
    def started(worker):
        seen.append(("started", worker.worker_id))

    @app.hooks.worker_stopping
    def stopping(worker):
        seen.append(("stopping", worker.worker_id))

    @app.hooks.worker_started
    def broken(worker):
        raise RuntimeError("a broken hook must not stop the worker")

    with running_worker(app, concurrency=1) as worker:
        assert seen == [("started", worker.worker_id)]
        assert app.tasks["add"].delay(1, 2).get(timeout=10) == 3
    assert seen == [("started", worker.worker_id), ("stopping", worker.worker_id)]
