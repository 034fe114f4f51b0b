"""Monitor: what is happening, read straight from Postgres, for people and tools.

One read-only view of queues, workers, tasks and jobs (plus the few actions
operators take) shared by ``pgq status`` / ``pgq jobs``, the dashboard and
/metrics. Everything comes back as frozen dataclasses (:mod:`pgqueue.monitor_rows`);
:func:`to_json` makes them JSON-safe. The queries are statements of
:mod:`pgqueue.monitor_statements`; this class executes them. Arguments a task
marks with ``redact=`` never leave here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pgqueue import monitor_statements as ms
from pgqueue import statements
from pgqueue.monitor_rows import (
    REDACTED,
    Attempt,
    Bucket,
    JobDetail,
    JobPage,
    JobRow,
    QueueStats,
    RawValue,
    ScheduleRow,
    TaskStats,
    WorkerInfo,
    to_json,
)
from pgqueue.spans import bucket_for
from pgqueue.statements import Statement

if TYPE_CHECKING:
    from pgqueue.app import App

__all__ = [
    "HOUR", "REDACTED", "Attempt", "Bucket", "JobDetail", "JobPage", "JobRow", "Monitor",
    "QueueStats", "RawValue", "ScheduleRow", "TaskStats", "WorkerInfo", "to_json",
]

HOUR = dt.timedelta(hours=1)
T = TypeVar("T")


class Monitor:
    def __init__(self, app: App) -> None:
        self.app = app
        self.schema = app.settings.schema

    def _run(self, statement: Statement[T]) -> T:
        return self.app.client.execute(statement)

    # -- reading --------------------------------------------------------------
    def queues(self, window: dt.timedelta = HOUR) -> list[QueueStats]:
        return self._run(ms.queue_stats(self.schema, window))

    def workers(self) -> list[WorkerInfo]:
        return self._run(ms.worker_list(self.schema))

    def task_stats(self, window: dt.timedelta = HOUR) -> list[TaskStats]:
        return self._run(ms.task_stats(self.schema, window))

    def series(self, window: dt.timedelta = HOUR,
               bucket: dt.timedelta = dt.timedelta(minutes=1)) -> list[Bucket]:
        return self._run(ms.throughput_series(self.schema, window, bucket))

    def overview(self, window: dt.timedelta = HOUR) -> dict[str, Any]:
        return {
            "now": dt.datetime.now(dt.UTC),
            "window_seconds": window.total_seconds(),
            "queues": self.queues(window),
            "workers": self.workers(),
            "tasks": self.task_stats(window),
            "series": self.series(window, bucket_for(window)),
        }

    def jobs(self, state: str | None = None, queue: str | None = None, task: str | None = None,
             since: dt.datetime | None = None, until: dt.datetime | None = None,
             before_id: int | None = None, limit: int = 50) -> JobPage:
        return self._run(ms.job_list(self.schema, state=state, queue=queue, task=task,
                                     since=since, until=until, before_id=before_id,
                                     limit=limit))

    def job(self, job_id: int) -> JobDetail | None:
        detail = self._run(ms.job_detail(self.schema, job_id))
        if detail is None:
            return None
        args, kwargs = self._redacted(detail.task, detail.args, detail.kwargs)
        return dataclasses.replace(detail, args=args, kwargs=kwargs,
                                   attempts_history=self._run(ms.job_attempts(self.schema,
                                                                              job_id)))

    def _redacted(self, task_name: str, args: list[Any] | RawValue,
                  kwargs: dict[str, Any] | RawValue
                  ) -> tuple[list[Any] | RawValue, dict[str, Any] | RawValue]:
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
        # Stored text that can't be decoded may hold the secret anywhere: none of it shows.
        if isinstance(args, RawValue):
            args = RawValue(REDACTED, args.error)
        else:
            args = [REDACTED if i < len(names) and names[i] in hidden else v
                    for i, v in enumerate(args)]
        if isinstance(kwargs, RawValue):
            kwargs = RawValue(REDACTED, kwargs.error)
        else:
            kwargs = {k: REDACTED if k in hidden else v for k, v in kwargs.items()}
        return args, kwargs

    def schedules(self) -> list[ScheduleRow]:
        return self._run(ms.schedule_list(self.schema))

    def jobs_enqueued_total(self) -> int:
        return self._run(ms.jobs_enqueued_total(self.schema))

    # -- acting ---------------------------------------------------------------
    def retry_job(self, job_id: int) -> bool:
        return self.app.AsyncResult(job_id).retry()

    def cancel_job(self, job_id: int) -> str | None:
        state = self.app.AsyncResult(job_id).cancel()
        return state.value if state is not None else None

    def retry_failed(self, task: str | None = None, queue: str | None = None) -> list[int]:
        return self.app.retry_failed(task=task, queue=queue)

    def pause_queue(self, name: str) -> None:
        self._run(ms.set_queue_paused(self.schema, name, True))

    def resume_queue(self, name: str) -> None:
        self._run(ms.set_queue_paused(self.schema, name, False))

    def _schedule(self, action: str, name: str) -> Any:
        return self._run(statements.schedule_action(self.schema, action, name))

    def pause_schedule(self, name: str) -> bool:
        return self._schedule("pause", name) is not None

    def resume_schedule(self, name: str) -> bool:
        return self._schedule("resume", name) is not None

    def trigger_schedule(self, name: str) -> int | None:
        job_id: int | None = self._schedule("trigger", name)
        return job_id
