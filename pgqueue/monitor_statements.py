"""The monitoring queries as statements: (query, parameters, decoder), no I/O.

What :mod:`pgqueue.statements` is for the producer and the worker, this is for
:class:`pgqueue.monitor.Monitor`: each function builds one query of
``sql/queries/monitor.sql`` and decodes its rows into :mod:`pgqueue.monitor_rows`.
The Monitor only executes them (and hides redacted arguments, which needs the
app's task registry).
"""

from __future__ import annotations

import datetime as dt

from pgqueue import monitor_rows as mr
from pgqueue import progress
from pgqueue.job import JobState
from pgqueue.limits import KEEP, Keep, format_rate
from pgqueue.schedule import Rule, next_after
from pgqueue.sql import channels, queries
from pgqueue.statements import Row, Statement

MAX_PAGE = 500


def _rate_text(rate: int | None, window: float | None) -> str | None:
    return format_rate(rate, window) if rate is not None and window is not None else None


def queue_stats(schema: str, window: dt.timedelta) -> Statement[list[mr.QueueStats]]:
    minutes = window.total_seconds() / 60

    def decode(rows: list[Row]) -> list[mr.QueueStats]:
        return [mr.QueueStats(q, queued, scheduled, running, ok, failed, cancelled, oldest,
                              round((ok + failed + cancelled) / minutes, 2), paused,
                              _rate_text(rate, rate_window), rate, rate_window, concurrency,
                              held_back)
                for (q, queued, scheduled, running, ok, failed, cancelled, oldest, paused,
                     rate, rate_window, concurrency, held_back) in rows]

    return Statement(queries(schema)["queue_stats"], {"window": window.total_seconds()},
                     decode)


def worker_list(schema: str) -> Statement[list[mr.WorkerInfo]]:
    return Statement(queries(schema)["worker_list"], {},
                     lambda rows: [mr.WorkerInfo(*row) for row in rows])


def task_stats(schema: str, window: dt.timedelta) -> Statement[list[mr.TaskStats]]:
    return Statement(queries(schema)["task_stats"], {"window": window.total_seconds()},
                     lambda rows: [mr.TaskStats(*row) for row in rows])


def throughput_series(schema: str, window: dt.timedelta, bucket: dt.timedelta
                      ) -> Statement[list[mr.Bucket]]:
    return Statement(queries(schema)["throughput_series"],
                     {"window": window.total_seconds(), "bucket": bucket.total_seconds()},
                     lambda rows: [mr.Bucket(*row) for row in rows])


def job_list(schema: str, *, state: str | None = None, queue: str | None = None,
             task: str | None = None, since: dt.datetime | None = None,
             until: dt.datetime | None = None, before_id: int | None = None,
             limit: int = 50) -> Statement[mr.JobPage]:
    """One page, newest first; ``next_before_id`` is set when there are older ones."""
    if state is not None:
        JobState(state)  # a clear ValueError for a typo, not an SQL error
    limit = max(1, min(limit, MAX_PAGE))

    def decode(rows: list[Row]) -> mr.JobPage:
        jobs = [mr.JobRow(*row[:-1], progress=progress.from_json(row[-1]))
                for row in rows[:limit]]
        return mr.JobPage(jobs, jobs[-1].id if len(rows) > limit else None)

    # One row more than the page: whether there is a next page, without a count.
    return Statement(queries(schema)["job_list"],
                     {"state": state, "queue": queue, "task": task, "since": since,
                      "until": until, "before_id": before_id, "limit": limit + 1},
                     decode)


def _job_detail(rows: list[Row]) -> mr.JobDetail | None:
    if not rows:
        return None
    (id_, task, queue, state, priority, attempts, created, started, finished, worker,
     args, kwargs, result, run_at, rescues, cancel_requested, lease_expires, host, pid,
     max_attempts, progress_text) = rows[0]
    return mr.JobDetail(id_, task, queue, state, priority, attempts, created, started,
                        finished, worker, mr.stored(args, list), mr.stored(kwargs, dict),
                        mr.stored(result) if result is not None else None, run_at, rescues,
                        cancel_requested, lease_expires, host, pid, max_attempts, [],
                        progress=progress.from_json(progress_text))


def job_detail(schema: str, job_id: int) -> Statement[mr.JobDetail | None]:
    """The job without its attempts (:func:`job_attempts`) and with every argument."""
    return Statement(queries(schema)["job_detail"], {"id": job_id}, _job_detail)


def job_attempts(schema: str, job_id: int) -> Statement[list[mr.Attempt]]:
    return Statement(queries(schema)["job_attempts"], {"id": job_id},
                     lambda rows: [mr.Attempt(*row) for row in rows])


def _schedule(row: Row) -> mr.ScheduleRow:
    name, task, cron, every, tz, queue, paused, last, nxt, error, error_at, now = row
    try:
        rule = Rule(cron=cron, every=dt.timedelta(seconds=every) if every is not None else None,
                    tz=tz)
        if nxt is None and not paused:  # no scheduler has run yet: work it out here
            nxt = next_after(rule, now)
    # A row SQL wrote may hold any rule: one that can't be read or never fires is
    # shown with why, so one bad schedule doesn't hide the others.
    except (ValueError, ArithmeticError) as exc:
        nxt, error = None, error or str(exc)
    text = cron if cron is not None else f"every {every:g}s" if every is not None else "-"
    return mr.ScheduleRow(name, task, text, tz, queue, paused, last, nxt, error, error_at)


def schedule_list(schema: str) -> Statement[list[mr.ScheduleRow]]:
    return Statement(queries(schema)["schedule_list"], {},
                     lambda rows: [_schedule(row) for row in rows])


def jobs_enqueued_total(schema: str) -> Statement[int]:
    return Statement(queries(schema)["jobs_enqueued_total"],
                     {"jobs_table": f'"{schema}".jobs'}, lambda rows: int(rows[0][0]))


def set_queue_paused(schema: str, name: str, paused: bool) -> Statement[None]:
    return Statement(queries(schema)["set_queue_paused"],
                     {"name": name, "paused": paused,
                      "jobs_channel": channels(schema)["jobs_channel"]},
                     lambda rows: None)


# -- limits -----------------------------------------------------------------------
def task_limit_list(schema: str) -> Statement[list[mr.TaskLimit]]:
    return Statement(queries(schema)["task_limit_list"], {}, lambda rows: [
        mr.TaskLimit(task, _rate_text(rate, window), rate, window, concurrency, held_back,
                     running, declared_at)
        for task, rate, window, concurrency, held_back, running, declared_at in rows])


def set_queue_limits(schema: str, name: str, rate: tuple[int, float] | Keep | None,
                     concurrency: int | Keep | None) -> Statement[mr.QueueLimits]:
    """Set a queue's rate (count, window seconds) and concurrency limits; None removes
    one, KEEP leaves it as it is. Values as :mod:`pgqueue.limits` checks them."""
    count, window = rate if isinstance(rate, tuple) else (None, None)
    conc = concurrency if isinstance(concurrency, int) else None

    def decode(rows: list[Row]) -> mr.QueueLimits:
        queue, rate_, window_, concurrency_ = rows[0]
        return mr.QueueLimits(queue, _rate_text(rate_, window_), rate_, window_, concurrency_)

    return Statement(queries(schema)["set_queue_limits"],
                     {"name": name, "rate": count, "rate_window": window,
                      "concurrency": conc, "keep_rate": rate is KEEP,
                      "keep_concurrency": concurrency is KEEP}, decode)


# -- workflows ------------------------------------------------------------------
def _summary(row: Row) -> mr.WorkflowSummary:
    return mr.WorkflowSummary(*row)


def _step(row: Row) -> mr.WorkflowStep:
    return mr.WorkflowStep(*row)


def _group(row: Row) -> mr.WorkflowGroup:
    return mr.WorkflowGroup(*row)


def workflow_summary(schema: str, workflow_id: int) -> Statement[mr.WorkflowSummary | None]:
    return Statement(queries(schema)["workflow_summary"], {"id": workflow_id},
                     lambda rows: _summary(rows[0]) if rows else None)


def workflow_list(schema: str, limit: int = 50) -> Statement[list[mr.WorkflowSummary]]:
    """The newest workflows first."""
    return Statement(queries(schema)["workflow_list"], {"limit": max(1, min(limit, MAX_PAGE))},
                     lambda rows: [_summary(row) for row in rows])


def workflow_steps(schema: str, workflow_id: int) -> Statement[list[mr.WorkflowStep]]:
    return Statement(queries(schema)["workflow_steps"], {"id": workflow_id},
                     lambda rows: [_step(row) for row in rows])


def workflow_groups(schema: str, workflow_id: int) -> Statement[list[mr.WorkflowGroup]]:
    return Statement(queries(schema)["workflow_groups"], {"id": workflow_id},
                     lambda rows: [_group(row) for row in rows])


def workflow_groups_by_id(schema: str, ids: list[int]) -> Statement[list[mr.WorkflowGroup]]:
    return Statement(queries(schema)["workflow_groups_by_id"], {"ids": ids},
                     lambda rows: [_group(row) for row in rows])


def workflow_of_job(schema: str, job_id: int) -> Statement[int | None]:
    """The job's workflow id; None for a plain job, or no such job."""
    return Statement(queries(schema)["workflow_of_job"], {"id": job_id},
                     lambda rows: rows[0][0] if rows else None)


def _neighbours(rows: list[Row]) -> mr.JobWorkflow | None:
    found: dict[str, list[mr.WorkflowStep]] = {}
    for relation, _, *step in rows:
        found.setdefault(relation, []).append(_step(tuple(step[:16])))
    if "self" not in found:
        return None
    parents, siblings, callbacks, errbacks = rows[0][-4:]
    backs = found.get("errback_of", [])
    return mr.JobWorkflow(
        workflow_id=rows[0][1], workflow=None, step=found["self"][0],
        parents=mr.Related(found.get("parent", []), parents), parent_group=None,
        errback_of=backs[0] if backs else None, group=None,
        siblings=mr.Related(found.get("sibling", []), siblings),
        callbacks=mr.Related(found.get("callback", []), callbacks),
        errbacks=mr.Related(found.get("errback", []), errbacks))


def workflow_neighbours(schema: str, job_id: int, cap: int = 50
                        ) -> Statement[mr.JobWorkflow | None]:
    """A job's place in its workflow, each list of related steps cut at ``cap``; without
    the workflow's summary, groups and tree, which :class:`Monitor` adds. None: the job
    is not part of a workflow."""
    return Statement(queries(schema)["workflow_neighbours"], {"id": job_id, "cap": max(cap, 0)},
                     _neighbours)


# A slot or standby has no start time; this many transactions behind is as bad.
XMIN_WARN_XIDS = 1_000_000


def xmin_horizon(schema: str, warn_after: float, limit: int = 5, min_seconds: float = 1.0
                 ) -> Statement[mr.XminHorizon]:
    """The ``limit`` oldest holders of the xmin horizon (sessions and prepared
    transactions open at least ``min_seconds``; every slot and standby that holds one)."""
    def decode(rows: list[Row]) -> mr.XminHorizon:
        holders = [mr.XminHolder(*row) for row in rows]
        seconds = max((h.seconds for h in holders if h.seconds is not None), default=None)
        xids = max((h.xids for h in holders if h.xids is not None), default=None)
        warning = ((seconds is not None and seconds > warn_after)
                   or (xids is not None and xids >= XMIN_WARN_XIDS))
        return mr.XminHorizon(holders, warn_after, XMIN_WARN_XIDS, seconds, xids, warning)

    return Statement(queries(schema)["xmin_holders"],
                     {"min_seconds": min_seconds, "limit": limit}, decode)
