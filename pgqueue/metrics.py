"""Prometheus metrics, two kinds (``pip install -e '.[metrics]'``).

- From the database (the dashboard's ``/metrics``, :func:`render`): gauges of
  jobs by queue and state, oldest waiting age, paused queues, workers by status,
  jobs enqueued so far, and each rate or concurrency limit with the jobs it holds
  back. Any one process can serve them for the whole system.
- From a worker process (``pgq worker --metrics-port``, :class:`WorkerMetrics`):
  counters of the outcomes it recorded and a run-time histogram per task.
  Prometheus sums them over workers; counters never go down when jobs are pruned.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pgqueue.errors import ConfigurationError

if TYPE_CHECKING:
    from pgqueue.monitor import Monitor, QueueStats, TaskLimit

WINDOW = dt.timedelta(minutes=5)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError("metrics need prometheus-client: pip install -e "
                                 "'.[metrics]' in pgqueue's checkout") from None
    return prometheus_client


class _DatabaseCollector:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        queues = self.monitor.queues(WINDOW)
        jobs = GaugeMetricFamily("pgqueue_jobs", "Jobs by queue and state (finished states: "
                                 "those finished in the last 5 minutes)", labels=["queue", "state"])
        oldest = GaugeMetricFamily("pgqueue_oldest_waiting_seconds",
                                   "Age of the oldest due job waiting", labels=["queue"])
        paused = GaugeMetricFamily("pgqueue_queue_paused", "1 if the queue is paused",
                                   labels=["queue"])
        for q in queues:
            for state in ("queued", "scheduled", "running", "succeeded", "failed", "cancelled"):
                jobs.add_metric([q.queue, state], getattr(q, state))
            oldest.add_metric([q.queue], q.oldest_waiting_seconds or 0.0)
            paused.add_metric([q.queue], 1.0 if q.paused else 0.0)
        workers = GaugeMetricFamily("pgqueue_workers", "Workers by status", labels=["status"])
        counts = {"up": 0, "down": 0, "stopped": 0}
        for w in self.monitor.workers():
            counts[w.status] = counts.get(w.status, 0) + 1
        for status, n in counts.items():
            workers.add_metric([status], n)
        enqueued = CounterMetricFamily("pgqueue_jobs_enqueued", "Jobs enqueued so far")
        enqueued.add_metric([], self.monitor.jobs_enqueued_total())
        yield from (jobs, oldest, paused, workers, enqueued)
        yield from _limits(queues, self.monitor.task_limits())


def _limits(queues: Sequence[QueueStats], tasks: Sequence[TaskLimit]) -> Iterator[Any]:
    """One series per limit, labelled by its scope (queue or task) and name: a queue's own
    limits (pgq queues limit) and each task's. A job may be under both."""
    from prometheus_client.core import GaugeMetricFamily

    labels = ["scope", "name"]
    waiting = GaugeMetricFamily("pgqueue_limit_waiting", "Due jobs under the limit, held "
                                "back until it has room", labels=labels)
    running = GaugeMetricFamily("pgqueue_limit_running", "Jobs under the limit running now",
                                labels=labels)
    rate = GaugeMetricFamily("pgqueue_limit_rate_per_second", "The rate limit: starts "
                             "allowed per second, all workers together", labels=labels)
    concurrency = GaugeMetricFamily("pgqueue_limit_concurrency", "The concurrency limit: "
                                    "jobs allowed to run at once, all workers together",
                                    labels=labels)
    found = [("queue", q.queue, q.rate, q.rate_window_seconds, q.concurrency_limit,
              q.held_back, q.running)
             for q in queues if q.rate is not None or q.concurrency_limit is not None]
    found += [("task", t.task, t.rate, t.rate_window_seconds, t.concurrency_limit,
               t.held_back, t.running) for t in tasks]
    for scope, name, count, window, most, held_back, busy in found:
        waiting.add_metric([scope, name], held_back)
        running.add_metric([scope, name], busy)
        if count is not None and window:
            rate.add_metric([scope, name], count / window)
        if most is not None:
            concurrency.add_metric([scope, name], most)
    yield from (waiting, running, rate, concurrency)


def render(monitor: Monitor) -> tuple[bytes, str]:
    """The database metrics in Prometheus' text format: (body, content type)."""
    prom = _prometheus()
    registry = prom.CollectorRegistry(auto_describe=False)
    registry.register(_DatabaseCollector(monitor))
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST


class WorkerMetrics:
    """Counters and histograms of one worker process, served over HTTP."""

    def __init__(self) -> None:
        prom = _prometheus()
        self.registry = prom.CollectorRegistry()
        labels = ["queue", "task"]
        self.outcomes = prom.Counter("pgqueue_worker_jobs", "Outcomes recorded by this worker",
                                     [*labels, "outcome"], registry=self.registry)
        self.runtime = prom.Histogram(
            "pgqueue_worker_job_runtime_seconds", "Run time of jobs", labels,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800),
            registry=self.registry)
        self._lock = threading.Lock()

    def observe(self, queue: str, task: str, outcome: str, seconds: float) -> None:
        self.outcomes.labels(queue, task, outcome).inc()
        self.runtime.labels(queue, task).observe(seconds)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        _prometheus().start_http_server(port, addr=host, registry=self.registry)
