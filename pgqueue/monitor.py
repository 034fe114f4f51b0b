"""Monitor: what is happening, read straight from Postgres, for people and tools.

One read-only view of queues, workers, tasks and jobs (plus the few actions
operators take) shared by ``pgq status`` / ``pgq jobs``, the dashboard and
/metrics. Everything comes back as frozen dataclasses; :func:`to_json` makes
them JSON-safe. Arguments a task marks with ``redact=`` never leave here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pgqueue import encoding, statements
from pgqueue.job import JobState
from pgqueue.schedule import Rule, next_after
from pgqueue.spans import bucket_for
from pgqueue.sql import channels, queries
from pgqueue.statements import Row, Statement

if TYPE_CHECKING:
    from pgqueue.app import App

REDACTED = "•••"
HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class QueueStats:
    queue: str
    queued: int
    scheduled: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    oldest_waiting_seconds: float | None
    throughput_per_min: float
    paused: bool


@dataclass(frozen=True)
class WorkerInfo:
    id: int
    name: str
    host: str
    pid: int
    queues: list[str]
    pool: str
    concurrency: int
    running: int
    jobs_done: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    heartbeat_age_seconds: float
    uptime_seconds: float
    status: str


@dataclass(frozen=True)
class TaskStats:
    task: str
    succeeded: int
    failed: int
    retried: int
    mean_runtime_ms: float | None
    p95_runtime_ms: float | None


@dataclass(frozen=True)
class Bucket:
    at: dt.datetime
    succeeded: int
    failed: int


@dataclass(frozen=True)
class JobRow:
    id: int
    task: str
    queue: str
    state: str
    priority: int
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    worker: str | None


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRow]
    next_before_id: int | None


@dataclass(frozen=True)
class Attempt:
    attempt: int
    type: str
    message: str
    traceback: str
    created_at: dt.datetime


@dataclass(frozen=True)
class JobDetail(JobRow):
    args: list[Any]
    kwargs: dict[str, Any]
    result: Any
    run_at: dt.datetime
    rescues: int
    cancel_requested: bool
    lease_expires_at: dt.datetime | None
    worker_host: str | None
    worker_pid: int | None
    max_attempts: int
    attempts_history: list[Attempt]


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    task: str
    rule: str
    tz: str
    queue: str
    paused: bool
    last_fire_at: dt.datetime | None
    next_fire_at: dt.datetime | None


def to_json(value: Any) -> Any:
    """Dataclasses, lists and dicts of them, with datetimes as ISO 8601 strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    return value


def _rows(schema: str, query: str, /, **params: Any) -> Statement[list[Row]]:
    return Statement(queries(schema)[query], params, lambda rows: rows)


class Monitor:
    def __init__(self, app: App) -> None:
        self.app = app
        self.schema = app.settings.schema

    def _run(self, query: str, /, **params: Any) -> list[Row]:
        return self.app.client.execute(_rows(self.schema, query, **params))

    # -- reading --------------------------------------------------------------
    def queues(self, window: dt.timedelta = HOUR) -> list[QueueStats]:
        minutes = window.total_seconds() / 60
        return [QueueStats(q, queued, scheduled, running, ok, failed, cancelled, oldest,
                           round((ok + failed + cancelled) / minutes, 2), paused)
                for q, queued, scheduled, running, ok, failed, cancelled, oldest, paused
                in self._run("queue_stats", window=window.total_seconds())]

    def workers(self) -> list[WorkerInfo]:
        return [WorkerInfo(*row) for row in self._run("worker_list")]

    def task_stats(self, window: dt.timedelta = HOUR) -> list[TaskStats]:
        return [TaskStats(*row) for row in self._run("task_stats",
                                                     window=window.total_seconds())]

    def series(self, window: dt.timedelta = HOUR,
               bucket: dt.timedelta = dt.timedelta(minutes=1)) -> list[Bucket]:
        return [Bucket(*row) for row in self._run("throughput_series",
                                                  window=window.total_seconds(),
                                                  bucket=bucket.total_seconds())]

    def overview(self, window: dt.timedelta = HOUR) -> dict[str, Any]:
        bucket = bucket_for(window)
        return {
            "now": dt.datetime.now(dt.UTC),
            "window_seconds": window.total_seconds(),
            "queues": self.queues(window),
            "workers": self.workers(),
            "tasks": self.task_stats(window),
            "series": self.series(window, bucket),
        }

    def jobs(self, state: str | None = None, queue: str | None = None, task: str | None = None,
             since: dt.datetime | None = None, until: dt.datetime | None = None,
             before_id: int | None = None, limit: int = 50) -> JobPage:
        if state is not None:
            JobState(state)  # a clear ValueError for a typo, not an SQL error
        limit = max(1, min(limit, 500))
        rows = self._run("job_list", state=state, queue=queue, task=task, since=since,
                         until=until, before_id=before_id, limit=limit + 1)
        jobs = [JobRow(*row) for row in rows[:limit]]
        return JobPage(jobs, jobs[-1].id if len(rows) > limit else None)

    def job(self, job_id: int) -> JobDetail | None:
        rows = self._run("job_detail", id=job_id)
        if not rows:
            return None
        (id_, task, queue, state, priority, attempts, created, started, finished, worker,
         args, kwargs, result, run_at, rescues, cancel_requested, lease_expires, host, pid,
         max_attempts) = rows[0]
        history = [Attempt(*r) for r in self._run("job_attempts", id=job_id)]
        args_v, kwargs_v = self._redacted(task, encoding.loads(args), encoding.loads(kwargs))
        return JobDetail(id_, task, queue, state, priority, attempts, created, started, finished,
                         worker, args_v, kwargs_v,
                         encoding.loads(result) if result is not None else None, run_at,
                         rescues, cancel_requested, lease_expires, host, pid, max_attempts,
                         history)

    def _redacted(self, task_name: str, args: list[Any], kwargs: dict[str, Any]
                  ) -> tuple[list[Any], dict[str, Any]]:
        task = self.app.tasks.get(task_name)
        hidden = set(task.redact) if task is not None else set()
        if not hidden:
            return args, kwargs
        names: Sequence[str] = []
        try:
            params = list(inspect.signature(task.fn).parameters)  # type: ignore[union-attr]
            names = params[1:] if task.bind else params  # type: ignore[union-attr]
        except (TypeError, ValueError):
            pass
        args = [REDACTED if i < len(names) and names[i] in hidden else v
                for i, v in enumerate(args)]
        kwargs = {k: REDACTED if k in hidden else v for k, v in kwargs.items()}
        return args, kwargs

    def schedules(self) -> list[ScheduleRow]:
        out = []
        now = dt.datetime.now(dt.UTC)
        for name, task, cron, every, tz, queue, _, paused, last, nxt in self.app.client.execute(
                statements.list_schedules(self.schema)):
            if nxt is None and not paused:  # no scheduler has run yet: work it out here
                every_td = dt.timedelta(seconds=every) if every else None
                nxt = next_after(Rule(cron=cron, every=every_td, tz=tz), now)
            rule = cron if cron else f"every {every:g}s"
            out.append(ScheduleRow(name, task, rule, tz, queue, paused, last, nxt))
        return out

    def jobs_enqueued_total(self) -> int:
        rows = self._run("jobs_enqueued_total", jobs_table=f'"{self.schema}".jobs')
        return int(rows[0][0])

    # -- acting ---------------------------------------------------------------
    def retry_job(self, job_id: int) -> bool:
        return self.app.AsyncResult(job_id).retry()

    def cancel_job(self, job_id: int) -> str | None:
        state = self.app.AsyncResult(job_id).cancel()
        return state.value if state is not None else None

    def retry_failed(self, task: str | None = None, queue: str | None = None) -> list[int]:
        return self.app.retry_failed(task=task, queue=queue)

    def _set_paused(self, name: str, paused: bool) -> None:
        self._run("set_queue_paused", name=name, paused=paused,
                  jobs_channel=channels(self.schema)["jobs_channel"])

    def pause_queue(self, name: str) -> None:
        self._set_paused(name, True)

    def resume_queue(self, name: str) -> None:
        self._set_paused(name, False)

    def _schedule(self, action: str, name: str) -> Any:
        return self.app.client.execute(statements.schedule_action(self.schema, action, name))

    def pause_schedule(self, name: str) -> bool:
        return self._schedule("pause", name) is not None

    def resume_schedule(self, name: str) -> bool:
        return self._schedule("resume", name) is not None

    def trigger_schedule(self, name: str) -> int | None:
        job_id: int | None = self._schedule("trigger", name)
        return job_id
