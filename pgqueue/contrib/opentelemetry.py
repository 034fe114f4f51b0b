"""OpenTelemetry for pgqueue (``pip install -e '.[opentelemetry]'``).

``instrument(app)`` makes every enqueue carry the caller's trace context in the
job's headers (W3C ``traceparent``), and every execution a span, a child of
that context, wherever the worker runs: ``pgqueue.run <task>``, with the job's
id, queue and attempt, and the exception if the task raised. Call it where the
app is defined, so producers and workers (and process-pool children) all get it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.context import JobContext


def instrument(app: App, tracer_provider: Any = None) -> None:
    tracer = trace.get_tracer("pgqueue", tracer_provider=tracer_provider)

    @app.hooks.before_enqueue
    def inject(task: str) -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    @app.hooks.around_task
    @contextmanager
    def span(ctx: JobContext) -> Iterator[None]:
        parent = propagate.extract(ctx.headers)
        attributes: dict[str, str | int] = {
            "messaging.system": "pgqueue", "messaging.destination.name": ctx.queue,
            "messaging.message.id": str(ctx.job_id), "pgqueue.task": ctx.task,
            "pgqueue.attempt": ctx.attempt}
        with tracer.start_as_current_span(f"pgqueue.run {ctx.task}", context=parent,
                                          kind=trace.SpanKind.CONSUMER,
                                          attributes=attributes):
            yield
