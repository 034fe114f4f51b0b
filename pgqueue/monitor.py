"""Monitor: what is happening, read straight from Postgres, for people and tools.

One read-only view of queues, workers, tasks, jobs, limits and workflows (plus the few
actions operators take) shared by ``pgq status`` / ``pgq jobs``, the dashboard and
/metrics. Reads go to ``PGQ_MONITOR_DSN`` when it is set (a read replica, so that
watching never loads the primary); actions, and the xmin horizon (which only the
primary's sessions hold), always go to ``PGQ_DSN``. Everything comes back as frozen
dataclasses (:mod:`pgqueue.monitor_rows`); :func:`to_json` makes them JSON-safe.
The queries are statements of :mod:`pgqueue.monitor_statements`; this class
executes them. Arguments a task marks with ``redact=`` never leave here.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import inspect
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pgqueue import monitor_statements as ms
from pgqueue import statements
from pgqueue.client import Client
from pgqueue.limits import KEEP, Keep, check_concurrency, parse_rate
from pgqueue.monitor_rows import (
    REDACTED,
    Attempt,
    Bucket,
    JobDetail,
    JobPage,
    JobRow,
    JobWorkflow,
    QueueLimits,
    QueueStats,
    RawValue,
    ScheduleRow,
    TaskLimit,
    TaskStats,
    WorkerInfo,
    WorkflowDetail,
    WorkflowSummary,
    XminHolder,
    XminHorizon,
    to_json,
)
from pgqueue.monitor_tree import build_tree
from pgqueue.options import check_queue
from pgqueue.spans import bucket_for
from pgqueue.statements import Statement

if TYPE_CHECKING:
    from pgqueue.app import App

__all__ = [
    "HOUR",
    "REDACTED",
    "Attempt",
    "Bucket",
    "JobDetail",
    "JobPage",
    "JobRow",
    "JobWorkflow",
    "Monitor",
    "QueueLimits",
    "QueueStats",
    "RawValue",
    "ScheduleRow",
    "TaskLimit",
    "TaskStats",
    "WorkerInfo",
    "WorkflowDetail",
    "WorkflowSummary",
    "XminHolder",
    "XminHorizon",
    "to_json",
]

HOUR = dt.timedelta(hours=1)
T = TypeVar("T")


# One pool on the monitor DSN per app, however many Monitors are made of it.
_readers: weakref.WeakKeyDictionary[App, tuple[str, Client]] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()


def reader(app: App) -> Client:
    """The client reads go through: the app's own, or one on ``monitor_dsn``."""
    dsn = app.settings.monitor_dsn
    if not dsn:
        return app.client
    with _readers_lock:
        found = _readers.get(app)
        if found is None or found[0] != dsn:
            client = Client(lambda: dsn, app.settings.pool_size, app.settings.pool_timeout)
            atexit.register(client.close)
            _readers[app] = found = (dsn, client)
    return found[1]


def close_reader(app: App) -> None:
    """Close the app's pool on the monitor DSN, if it has one (else at exit)."""
    with _readers_lock:
        found = _readers.pop(app, None)
    if found is not None:
        found[1].close()


class Monitor:
    def __init__(self, app: App) -> None:
        self.app = app
        self.schema = app.settings.schema

    def _run(self, statement: Statement[T]) -> T:
        """A read: on the monitor DSN when there is one."""
        return reader(self.app).execute(statement)

    def _act(self, statement: Statement[T]) -> T:
        """A change, or what only the primary knows: always on the app's DSN."""
        return self.app.client.execute(statement)

    # -- reading --------------------------------------------------------------
    def queues(self, window: dt.timedelta = HOUR) -> list[QueueStats]:
        return self._run(ms.queue_stats(self.schema, window))

    def workers(self) -> list[WorkerInfo]:
        return self._run(ms.worker_list(self.schema))

    def task_stats(self, window: dt.timedelta = HOUR) -> list[TaskStats]:
        return self._run(ms.task_stats(self.schema, window))

    def task_limits(self) -> list[TaskLimit]:
        """Every task's limits as the workers' code declares them, with the due jobs each
        holds back. (A queue's own limits are on its :meth:`queues` row.)"""
        return self._run(ms.task_limit_list(self.schema))

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
            "task_limits": self.task_limits(),
            "series": self.series(window, bucket_for(window)),
            "xmin_horizon": self.xmin_horizon(),
        }

    def xmin_horizon(self, limit: int = 5) -> XminHorizon:
        """The oldest transactions (and slots, standbys, prepared transactions) holding
        back vacuum on the primary, with ``warning`` set past ``PGQ_XMIN_WARN``."""
        return self._act(ms.xmin_horizon(self.schema, self.app.settings.xmin_warn, limit))

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

    # -- workflows ------------------------------------------------------------
    def workflows(self, limit: int = 50) -> list[WorkflowSummary]:
        """The newest workflows, with their jobs counted by state."""
        return self._run(ms.workflow_list(self.schema, limit))

    def workflow(self, workflow_id: int, tree_up_to: int | None = None
                 ) -> WorkflowDetail | None:
        """A whole workflow, its steps drawn as a tree (:mod:`pgqueue.monitor_tree`);
        the tree is None, and no step is read, if it has more than ``tree_up_to`` jobs."""
        summary = self._run(ms.workflow_summary(self.schema, workflow_id))
        return self._detail(summary, tree_up_to) if summary is not None else None

    def _detail(self, summary: WorkflowSummary, tree_up_to: int | None) -> WorkflowDetail:
        groups = self._run(ms.workflow_groups(self.schema, summary.id))
        if tree_up_to is not None and summary.jobs > tree_up_to:
            return WorkflowDetail(summary, groups, None)
        steps = self._run(ms.workflow_steps(self.schema, summary.id))
        return WorkflowDetail(summary, groups, build_tree(steps, groups))

    def workflow_id_of_job(self, job_id: int) -> int | None:
        """None for a job that is not part of a workflow, or no such job."""
        return self._run(ms.workflow_of_job(self.schema, job_id))

    def workflow_of_job(self, job_id: int, cap: int = 50,
                        tree_up_to: int = 100) -> JobWorkflow | None:
        """A job's place in its workflow: what it waits for, the rest of its group, what
        waits for it, its errbacks (each list cut at ``cap``), and the whole workflow
        when it has at most ``tree_up_to`` jobs. None: not part of a workflow."""
        found = self._run(ms.workflow_neighbours(self.schema, job_id, cap))
        if found is None:
            return None
        step = found.step
        wanted = [g for g in (step.group_id, step.after_group) if g is not None]
        groups = ({g.id: g for g in self._run(ms.workflow_groups_by_id(self.schema, wanted))}
                  if wanted else {})
        summary = self._run(ms.workflow_summary(self.schema, found.workflow_id))
        tree = (self._detail(summary, tree_up_to)
                if summary is not None and summary.jobs <= tree_up_to else None)
        return dataclasses.replace(
            found, workflow=summary, tree=tree,
            group=groups.get(step.group_id) if step.group_id is not None else None,
            parent_group=groups.get(step.after_group) if step.after_group is not None
            else None)

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
        self._act(ms.set_queue_paused(self.schema, name, True))

    def resume_queue(self, name: str) -> None:
        self._act(ms.set_queue_paused(self.schema, name, False))

    def set_queue_limits(self, name: str, *, rate: str | Keep | None = KEEP,
                         concurrency: int | Keep | None = KEEP) -> QueueLimits:
        """Limit the queue's job starts, across all workers: ``rate`` like ``"600/m"``
        (at most 600 starts in any minute), ``concurrency`` (at most that many running
        at once). None removes a limit; KEEP (the default) leaves it as it is. Workers
        apply the change within a heartbeat; running jobs are never stopped by it.
        Returns the limits now in force."""
        check_queue(name)
        parsed = rate if rate is None or rate is KEEP else parse_rate(rate)
        if concurrency is not None and concurrency is not KEEP:
            check_concurrency(concurrency)
        return self._act(ms.set_queue_limits(self.schema, name, parsed, concurrency))

    def _schedule(self, action: str, name: str) -> Any:
        return self._act(statements.schedule_action(self.schema, action, name))

    def pause_schedule(self, name: str) -> bool:
        return self._schedule("pause", name) is not None

    def resume_schedule(self, name: str) -> bool:
        return self._schedule("resume", name) is not None

    def trigger_schedule(self, name: str) -> int | None:
        job_id: int | None = self._schedule("trigger", name)
        return job_id
