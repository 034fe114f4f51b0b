"""The pure core: each database operation as (query, parameters, decoder); no I/O.

The sync client (:mod:`pgqueue.client`) and the async one
(:mod:`pgqueue.client_async`) only execute these, so both faces share one
implementation of every query and every row decoding.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pgqueue import encoding, progress
from pgqueue.job import ClaimedJob, JobError, JobInfo, JobState
from pgqueue.limits import InForce
from pgqueue.options import EnqueueOptions
from pgqueue.schedule import Schedule
from pgqueue.sql import Query, channels, queries, variant

if TYPE_CHECKING:
    from pgqueue.plan import Plan

T = TypeVar("T")
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Statement(Generic[T]):
    query: Query
    params: Mapping[str, Any]
    decode: Callable[[list[Row]], T]


U = TypeVar("U")


def mapped(stmt: Statement[T], then: Callable[[T], U]) -> Statement[U]:
    """The same statement, its decoded value passed through ``then``."""
    decode = stmt.decode
    return Statement(stmt.query, stmt.params, lambda rows: then(decode(rows)))


def timed(stmt: Statement[list[int]]) -> Statement[list[tuple[int, dt.datetime]]]:
    """An enqueue statement decoded to (id, created_at) pairs instead of ids."""
    return Statement(stmt.query, stmt.params, lambda rows: [(r[0], r[1]) for r in rows])


def _nothing(rows: list[Row]) -> None:
    return None


def _scalar(rows: list[Row]) -> Any:
    return rows[0][0] if rows else None


def _first_column(rows: list[Row]) -> list[Any]:
    return [r[0] for r in rows]


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    """One job to write: its task, its arguments already encoded (so encoding errors
    come first), and its options, resolved against the task's defaults."""

    task: str
    args_json: str
    kwargs_json: str
    options: EnqueueOptions


def _is_arglist(args: object) -> bool:
    """A sequence of positional arguments (a str is a sequence too, but never meant as one)."""
    if type(args) in (tuple, list):  # the exact types first: ABC checks are slow
        return True
    return isinstance(args, Sequence) and not isinstance(args, (str, bytes))


def _check_task_name(task: object) -> str:
    if not isinstance(task, str) or not task:
        raise TypeError(f"a task name must be a non-empty str, not {task!r}")
    return task


def make_request(
    task: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    options: EnqueueOptions | None = None,
    /,
    **given: Any,
) -> EnqueueRequest:
    """Validate and encode one job; raises TypeError/ValueError before anything is written.

    ``options`` (or the same as keywords: ``queue="emails", countdown=10``) are
    taken as given: merging with a task's defaults is the caller's
    (:meth:`EnqueueOptions.over`); what is still unset gets the library's defaults.
    """
    _check_task_name(task)
    if not _is_arglist(args):
        raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
    if kwargs is not None and type(kwargs) is not dict and not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
    if kwargs and not all(isinstance(k, str) for k in kwargs):
        raise TypeError("kwargs keys must be str (they are Python keyword arguments)")
    opts = options if options is not None else EnqueueOptions.from_kwargs(given)
    return EnqueueRequest(
        task=task,
        args_json=encoding.dumps(list(args), "args"),
        kwargs_json=encoding.dumps(dict(kwargs), "kwargs") if kwargs else "{}",
        # A task's defaults are complete already; only by-name or bare calls need these.
        options=opts if _complete(opts) else opts.over(LIBRARY_DEFAULTS),
    )


def with_unique_key(request: EnqueueRequest) -> EnqueueRequest:
    """The request with the key ``unique=True`` gives it: its task and its arguments
    (keyword arguments in any order give the same key)."""
    canonical = json.dumps([json.loads(request.args_json), json.loads(request.kwargs_json)],
                           sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    options = dataclasses.replace(request.options, unique_key=f"{request.task}:{digest}")
    return dataclasses.replace(request, options=options)


def _complete(o: EnqueueOptions) -> bool:
    return o.queue is not None and o.priority is not None and o.max_attempts is not None


# What a job gets when neither the call nor its task says.
LIBRARY_DEFAULTS = EnqueueOptions(queue="default", priority=0, max_attempts=1)


def enqueue_same(schema: str, task: str, options: EnqueueOptions,
                 arglists: Sequence[Sequence[Any]]) -> Statement[list[int]]:
    """Many jobs of one task and options, by positional arguments; checked and encoded
    here, so a bad argument raises before anything is written."""
    for args in arglists:
        if not _is_arglist(args):
            raise TypeError(f"each item of map() must be a list or tuple of arguments, "
                            f"not {type(args).__name__}")
    o = options.over(LIBRARY_DEFAULTS)
    return Statement(
        queries(schema)["enqueue_same"],
        {"queue": o.queue, "task": _check_task_name(task), "priority": o.priority,
         "max_attempts": o.max_attempts,
         "args": encoding.dumps([list(a) for a in arglists], "map() arguments")},
        _first_column,
    )


def _headers_json(o: EnqueueOptions) -> str | None:
    return json.dumps(dict(o.headers)) if o.headers else None


def _expires_at(o: EnqueueOptions) -> dt.datetime | None:
    return o.expires if isinstance(o.expires, dt.datetime) else None


def _expires_in(o: EnqueueOptions) -> float | None:
    return None if o.expires is None or isinstance(o.expires, dt.datetime) else o.expires


def enqueue(schema: str, requests: Sequence[EnqueueRequest]) -> Statement[list[int]]:
    """Write jobs; a batch holding unique keys goes through :func:`enqueue_unique`."""
    if len(requests) == 1 and requests[0].options.unique_key is None:
        r = requests[0]
        o = r.options
        return Statement(
            queries(schema)["enqueue_job"],
            {"queue": o.queue, "task": r.task, "priority": o.priority, "eta": o.eta,
             "countdown": o.countdown, "max_attempts": o.max_attempts, "args": r.args_json,
             "kwargs": r.kwargs_json, "headers": _headers_json(o),
             "expires_at": _expires_at(o), "expires_in": _expires_in(o),
             "rate_key": o.rate_key, "concurrency_key": o.concurrency_key},
            _first_column,
        )
    if any(r.options.unique_key is not None for r in requests):
        return mapped(enqueue_unique(schema, requests), lambda rows: [i for i, _, _ in rows])
    return Statement(queries(schema)["enqueue_jobs"], _batch_params(requests), _first_column)


def _batch_params(requests: Sequence[EnqueueRequest]) -> dict[str, Any]:
    opts = [r.options for r in requests]
    return {
        "queues": [o.queue for o in opts],
        "tasks": [r.task for r in requests],
        "priorities": [o.priority for o in opts],
        "etas": [o.eta for o in opts],
        "countdowns": [o.countdown for o in opts],
        "max_attempts": [o.max_attempts for o in opts],
        "args": [r.args_json for r in requests],
        "kwargs": [r.kwargs_json for r in requests],
        "headers": [_headers_json(o) for o in opts],
        "expires_ats": [_expires_at(o) for o in opts],
        "expires_ins": [_expires_in(o) for o in opts],
        "rate_keys": [o.rate_key for o in opts],
        "concurrency_keys": [o.concurrency_key for o in opts],
    }


def enqueue_unique(schema: str, requests: Sequence[EnqueueRequest]
                   ) -> Statement[list[tuple[int, dt.datetime | None, bool]]]:
    """Write jobs, those with a unique key only if the key is free; decodes to
    (id, created_at or None, deduplicated) per request. No key may appear twice."""
    keys = [r.options.unique_key for r in requests if r.options.unique_key is not None]
    if len(keys) != len(set(keys)):
        raise ValueError("a unique key appears twice in one batch (the enqueuer keeps one)")
    params = _batch_params(requests)
    params.update({
        "jobs_table": f'"{schema}".jobs',
        "unique_keys": [r.options.unique_key for r in requests],
        "unique_fors": [r.options.unique_for for r in requests],
    })
    return Statement(queries(schema)["enqueue_unique"], params,
                     lambda rows: [(r[0], r[1], bool(r[2])) for r in rows])


def _claimed(rows: list[Row]) -> list[ClaimedJob]:
    return [ClaimedJob(*row) for row in rows]


def claim(
    schema: str, worker_id: int, queues: Sequence[str], limit: int, lease_seconds: float,
    skip_tasks: Sequence[str] = (), aging: float = 0.0, aging_cap: int = 100,
) -> Statement[list[ClaimedJob]]:
    """Claim up to ``limit`` jobs of these queues, best effective priority first
    (``aging`` seconds a level, 0: by priority alone), leaving tasks under a limit alone.
    Several queues are read first and locked after (the ``many`` form)."""
    return Statement(
        variant(schema, "claim_jobs", *(("aging",) if aging > 0 else ()),
                *(("skip",) if skip_tasks else ()), *(("many",) if len(queues) > 1 else ())),
        {
            "queues": list(queues),
            "limit": limit,
            "worker_id": worker_id,
            "lease_seconds": lease_seconds,
            "skip_tasks": list(skip_tasks),
            "aging": float(aging),
            "aging_cap": aging_cap,
            # The many form's bounds (see claim_jobs): the best `heads` overall are
            # locked in order, found by reading `share` of each queue first.
            "heads": 2 * limit,
            "share": min(2 * limit, -(-3 * limit // max(len(queues), 1))),
        },
        _claimed,
    )


def claim_limited(schema: str, worker_id: int, queues: Sequence[str], limit: int,
                  lease_seconds: float) -> Statement[list[ClaimedJob]]:
    """Claim jobs under rate or concurrency limits, where each limit has room."""
    return Statement(
        queries(schema)["claim_limited_jobs"],
        {"queues": list(queues), "limit": limit, "worker_id": worker_id,
         "lease_seconds": lease_seconds},
        _claimed,
    )


def sync_task_limits(schema: str, limits: Sequence[tuple[str, int | None, float | None,
                                                         int | None]]) -> Statement[None]:
    """(task, rate, window, concurrency) for each of a worker's tasks."""
    return plain(schema, "sync_task_limits", tasks=[t for t, _, _, _ in limits],
                 rates=[r for _, r, _, _ in limits], windows=[w for _, _, w, _ in limits],
                 concurrencies=[c for _, _, _, c in limits])


def limits_in_force(schema: str, queues: Sequence[str]) -> Statement[InForce]:
    return Statement(queries(schema)["limits_in_force"], {"queues": list(queues)},
                     lambda rows: InForce(list(rows[0][0]), list(rows[0][1])))


def seconds_until_limit_room(schema: str) -> Statement[float | None]:
    return Statement(queries(schema)["seconds_until_limit_room"], {}, _scalar)


@dataclass(frozen=True, slots=True)
class Finish:
    """How one attempt ends: the row that finish_jobs writes for it."""

    job_id: int
    lease: uuid.UUID
    state: JobState
    value_json: str | None = None
    error: JobError | None = None
    retry_in: float | None = None
    keep_for: float | None = None  # the task's result_expires: pruned that long after
    in_workflow: bool = False  # a workflow step (its claim said so): its group is counted
    # The job's queue: every hot-path write names it (docs/operating.md, Citus).
    queue: str = field(kw_only=True)


def _accepted(rows: list[Row]) -> set[int]:
    return set(rows[0][0]) if rows else set()


def finish(schema: str, worker_id: int, records: Sequence[Finish]) -> Statement[set[int]]:
    """Record many outcomes in one statement; decodes to the ids whose lease still held.
    Workflow steps' groups are locked in order first (see the query). The query's
    parts for workflow steps and kept results are there only when the batch has some."""
    parts = (("workflow",) if any(r.in_workflow for r in records) else ()) + (
        ("kept",) if any(r.keep_for is not None for r in records) else ())
    return Statement(
        variant(schema, "finish_jobs", *parts),
        {
            "ids": [r.job_id for r in records],
            "leases": [r.lease for r in records],
            "queues": [r.queue for r in records],
            "states": [r.state.value for r in records],
            "retry_in": [r.retry_in for r in records],
            "values": [r.value_json for r in records],
            "error_types": [r.error.type if r.error else None for r in records],
            "error_messages": [r.error.message if r.error else None for r in records],
            "tracebacks": [r.error.traceback if r.error else None for r in records],
            "error_modules": [r.error.module if r.error else None for r in records],
            "error_args": [r.error.args if r.error else None for r in records],
            "keep_for": [r.keep_for for r in records],
            "workflow_ids": [r.job_id for r in records if r.in_workflow],
            "worker_id": worker_id,
            "done_channel": channels(schema)["done_channel"],
            "jobs_channel": channels(schema)["jobs_channel"],
        },
        _accepted,
    )


def extend_leases(
    schema: str, worker_id: int, held: Sequence[ClaimedJob], lease_seconds: float
) -> Statement[dict[int, bool]]:
    """Decodes to {job id still held: cancel requested}."""
    return Statement(
        queries(schema)["extend_leases"],
        {
            "worker_id": worker_id,
            "ids": [j.id for j in held],
            "leases": [j.lease for j in held],
            "queues": [j.queue for j in held],
            "lease_seconds": lease_seconds,
        },
        lambda rows: {r[0]: r[1] for r in rows},
    )


def release(schema: str, held: Sequence[ClaimedJob]) -> Statement[list[int]]:
    return Statement(
        queries(schema)["release_jobs"],
        {"ids": [j.id for j in held], "leases": [j.lease for j in held],
         "queues": [j.queue for j in held]},
        _first_column,
    )


def defer(schema: str, held: Sequence[ClaimedJob], grace_seconds: float
          ) -> Statement[set[int]]:
    """Put back jobs younger than the grace; decodes to the ids that were."""
    return Statement(
        queries(schema)["defer_jobs"],
        {"ids": [j.id for j in held], "leases": [j.lease for j in held],
         "queues": [j.queue for j in held], "grace_seconds": grace_seconds},
        lambda rows: {r[0] for r in rows},
    )


def rescue_expired(schema: str, max_rescues: int) -> Statement[list[tuple[int, str]]]:
    """Requeue (or fail) jobs whose lease expired; decodes to [(id, new state)]."""
    return Statement(
        queries(schema)["rescue_expired"],
        {"max_rescues": max_rescues, "jobs_channel": channels(schema)["jobs_channel"]},
        lambda rows: [(r[0], r[1]) for r in rows],
    )


def expire_jobs(schema: str) -> Statement[list[int]]:
    """Cancel queued jobs whose expiry passed; decodes to their ids."""
    return Statement(queries(schema)["expire_jobs"],
                     {"done_channel": channels(schema)["done_channel"]}, _first_column)


def cancel_job(schema: str, job_id: int) -> Statement[JobState | None]:
    """Decodes to the job's state after the request (None: not queued or running)."""
    ch = channels(schema)
    return Statement(
        queries(schema)["cancel_job"],
        {"id": job_id, "cancel_channel": ch["cancel_channel"],
         "done_channel": ch["done_channel"]},
        lambda rows: JobState(rows[0][0]) if rows else None,
    )


def retry_jobs(schema: str, ids: Sequence[int] | None = None, queue: str | None = None,
               task: str | None = None) -> Statement[list[int]]:
    """Replay jobs: those picked by id if failed or cancelled; by filter, failed only
    (a bulk "retry failed" must never revive what someone cancelled)."""
    states = ["failed", "cancelled"] if ids is not None else ["failed"]
    return Statement(
        queries(schema)["retry_jobs"],
        {"ids": list(ids) if ids is not None else None, "queue": queue, "task": task,
         "states": states, "jobs_channel": channels(schema)["jobs_channel"]},
        _first_column,
    )


def seconds_until_next_job(schema: str, queues: Sequence[str], lookback: float = 0.0
                           ) -> Statement[float | None]:
    """Seconds until the next job of these queues is due, counting those that became
    due in the last ``lookback`` seconds (since the last claim began); None: none."""
    return Statement(queries(schema)["seconds_until_next_job"],
                     {"queues": list(queues), "lookback": lookback}, _scalar)


def _job_info(rows: list[Row]) -> JobInfo | None:
    return _job_info_row(rows[0]) if rows else None


def _job_info_row(row: Row) -> JobInfo:
    (id_, task, queue, state, attempts, max_attempts, priority, run_at, created_at,
     started_at, finished_at, value, etype, emessage, etraceback, cause, progress_text,
     emodule, eargs, cancel_requested) = row
    return JobInfo(
        id=id_,
        task=task,
        queue=queue,
        state=JobState(state),
        attempts=attempts,
        max_attempts=max_attempts,
        priority=priority,
        run_at=run_at,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        result=encoding.loads(value) if value is not None else None,
        error=JobError(etype, emessage, etraceback, cause, emodule, eargs)
        if etype is not None else None,
        progress=progress.from_json(progress_text),
        cancel_requested=bool(cancel_requested),
    )


def get_job(schema: str, job_id: int) -> Statement[JobInfo | None]:
    return Statement(queries(schema)["get_job"], {"id": job_id}, _job_info)


# -- workflows ------------------------------------------------------------------
def enqueue_workflow(schema: str, plan: Plan
                     ) -> Statement[tuple[list[tuple[int, dt.datetime]], list[int], list[int]]]:
    """Write a compiled canvas; decodes to ((id, created_at) per step, group ids,
    workflow ids), each in the plan's order."""
    steps = plan.steps
    params = _batch_params([st.request for st in steps])  # each job's own columns
    params.update({
        "workflows_table": f'"{schema}".workflows',
        "groups_table": f'"{schema}".workflow_groups',
        "jobs_table": f'"{schema}".jobs',
        "kinds": plan.kinds,
        "group_workflows": [wf for wf, _ in plan.groups],
        "group_sizes": [size for _, size in plan.groups],
        "workflows": [st.workflow for st in steps],
        "waiting": [st.waiting for st in steps],
        "after_jobs": [st.after_job for st in steps],
        "after_groups": [st.after_group for st in steps],
        "pass_results": [st.pass_result for st in steps],
        "member_of": [st.member_of for st in steps],
        "member_index": [st.member_index for st in steps],
        "errbacks": [_errbacks_json(st.errbacks) for st in steps],
    })

    def decode(rows: list[Row]) -> tuple[list[tuple[int, dt.datetime]], list[int], list[int]]:
        if not rows:
            return [], [], []
        return [(r[0], r[1]) for r in rows], list(rows[0][3]), list(rows[0][2])

    return Statement(
        queries(schema)["enqueue_workflow"],
        params,
        decode,
    )


def _errbacks_json(errbacks: Sequence[EnqueueRequest]) -> str | None:
    """link_error signatures as the workflow trigger enqueues them (migration 0009)."""
    if not errbacks:
        return None
    return "[" + ",".join(
        f'{{"task": {json.dumps(r.task)}, "queue": {json.dumps(r.options.queue)}, '
        f'"priority": {r.options.priority}, "max_attempts": {r.options.max_attempts}, '
        f'"args": {r.args_json}, "kwargs": {r.kwargs_json}, '
        f'"headers": {_headers_json(r.options) or "null"}}}'
        for r in errbacks) + "]"


def group_status(schema: str, group_id: int) -> Statement[tuple[int, int, int] | None]:
    """Decodes to (size, succeeded, failed), None for no such group."""
    return Statement(queries(schema)["group_status"], {"id": group_id},
                     lambda rows: (rows[0][0], rows[0][1], rows[0][2]) if rows else None)


def group_members(schema: str, group_id: int) -> Statement[list[JobInfo]]:
    return Statement(queries(schema)["group_members"], {"id": group_id},
                     lambda rows: [_job_info_row(r) for r in rows])


def register_worker(
    schema: str, *, name: str, host: str, pid: int, queues: Sequence[str], pool: str,
    concurrency: int, lease_seconds: float = 30.0,
) -> Statement[int]:
    return Statement(
        queries(schema)["register_worker"],
        {"name": name, "host": host, "pid": pid, "queues": list(queues), "pool": pool,
         "concurrency": concurrency, "lease_seconds": lease_seconds},
        _scalar,
    )


def stop_worker(schema: str, worker_id: int) -> Statement[None]:
    return Statement(queries(schema)["stop_worker"], {"worker_id": worker_id}, _nothing)


def plain(schema: str, query: str, /, **params: Any) -> Statement[None]:
    """A statement with no rows back (LISTEN, UNLISTEN, ...)."""
    return Statement(queries(schema)[query], params, _nothing)


def done_payload_mentions(payload: str, job_id: int) -> bool:
    """Whether a 'done' notification may concern this job (empty means: maybe)."""
    return not payload or str(job_id) in payload.split(",")


# -- schedules ------------------------------------------------------------------
def sync_schedule(schema: str, s: Schedule) -> Statement[None]:
    return plain(
        schema, "sync_schedule", name=s.name, task=s.task, cron=s.rule.cron,
        every_seconds=s.rule.every.total_seconds() if s.rule.every else None, tz=s.rule.tz,
        args=s.args_json, kwargs=s.kwargs_json, queue=s.queue, priority=s.priority,
        max_attempts=s.max_attempts, catch_up=s.catch_up,
        catch_up_window=s.catch_up_window.total_seconds() if s.catch_up_window else None)


def fire_ticks(schema: str, ticks: Sequence[tuple[str, dt.datetime]]
               ) -> Statement[list[tuple[str, dt.datetime, int]]]:
    """Enqueue ticks; decodes to the (schedule, fire_at, job id) that were new."""
    return Statement(
        queries(schema)["fire_ticks"],
        {"names": [n for n, _ in ticks], "fire_ats": [t for _, t in ticks],
         "jobs_table": f'"{schema}".jobs'},
        lambda rows: [(r[0], r[1], r[2]) for r in rows],
    )


def schedule_action(schema: str, action: str, name: str) -> Statement[Any]:
    """pause_schedule / resume_schedule (-> name) or trigger_schedule (-> job id); None
    if there is no such schedule."""
    return Statement(queries(schema)[f"{action}_schedule"], {"name": name}, _scalar)


def leader_lock(schema: str) -> Statement[bool]:
    return Statement(queries(schema)["leader_lock"], {"schema_name": schema},
                     lambda rows: bool(rows[0][0]))


def prune(schema: str, query: str, retention: dt.timedelta, batch: int = 10_000
          ) -> Statement[int]:
    return Statement(queries(schema)[query],
                     {"retention_seconds": retention.total_seconds(), "batch": batch},
                     lambda rows: int(rows[0][0]))


def prune_finished(schema: str, retention: dt.timedelta, batch: int,
                   after: dt.datetime | None) -> Statement[tuple[int, int, dt.datetime | None]]:
    """One batch of prune_finished from the cursor ``after`` -> (deleted, examined,
    the next cursor)."""
    return Statement(queries(schema)["prune_finished"],
                     {"retention_seconds": retention.total_seconds(), "batch": batch,
                      "after": after},
                     lambda rows: (int(rows[0][0]), int(rows[0][1]), rows[0][2]))


# -- progress -------------------------------------------------------------------
def update_progress(schema: str, reports: Mapping[progress.Key, progress.Reported]
                    ) -> Statement[dict[int, bool]]:
    """Write many running jobs' latest progress, each under its attempt's lease;
    decodes to {job id: written}, False for a row locked by someone else right now
    (worth a retry). A finished or lost attempt's job is not in it."""
    return Statement(
        queries(schema)["update_progress"],
        {"ids": [job_id for job_id, _ in reports], "leases": [lease for _, lease in reports],
         "progress": [progress.to_json(r) for r in reports.values()]},
        lambda rows: {r[0]: r[1] for r in rows},
    )


def get_progress(schema: str, job_id: int) -> Statement[list[progress.Progress | None]]:
    """Decodes to [the job's progress] (None inside: never reported), [] for no job."""
    return Statement(queries(schema)["get_progress"], {"id": job_id},
                     lambda rows: [progress.from_json(r[0]) for r in rows])
