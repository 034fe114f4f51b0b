"""``app.control``: Celery's remote control, answered from Postgres.

Celery broadcasts these to the workers and collects their replies; with pgqueue
the database already knows what each worker is doing, so there is no broadcast
and no ``timeout`` to wait out. Replies keep Celery's shape: a dict keyed by
worker name (live workers only: those whose heartbeat is current) whose values
are lists of task dicts ``{"id", "name", "args", "kwargs", ...}``. What differs:

- ``active()``: the jobs running on each worker.
- ``scheduled()``: queued jobs whose eta/countdown has not come yet;
  ``reserved()``: due jobs waiting for a worker. pgqueue workers don't hold
  jobs before running them, so these are the jobs each worker would claim: a
  job is listed under the first live worker (oldest) serving its queue, at
  most ``concurrency * worker_prefetch_multiplier`` per worker for
  ``reserved()``, as Celery's prefetch bounds it. A job whose queue no worker
  serves is in no reply (in Celery it would sit in the broker, unseen too).
- ``registered()``: the task names of this process's app, for each worker
  (workers don't record their registry); run it where the worker's code is.
- ``revoke(id, terminate=...)``: cancels the job: a queued one never runs, a
  running one is stopped only with ``terminate=True`` (``signal`` isn't used:
  pgqueue stops the job as its pool allows).
- ``rate_limit(task, "10/m")``: stored, so it holds across all workers together
  (Celery's is per worker), from their next heartbeat, until a worker starts
  with that task in its code and writes the code's limit back.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pgqueue import encoding
from pgqueue.limits import parse_rate
from pgqueue.monitor import Monitor, WorkerInfo
from pgqueue.sql import queries
from pgqueue.statements import Row, Statement

if TYPE_CHECKING:
    from pgqueue.celery.app import Celery

Reply = dict[str, Any]
_BARE_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")
MAX_LISTED = 1000  # scheduled(): at most this many jobs in one reply


def _decoded(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return encoding.loads(text)
    except (ValueError, TypeError):
        return text


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class Inspect:
    """``app.control.inspect()``: what the workers are doing, read from the database."""

    def __init__(self, app: Celery, destination: Sequence[str] | str | None = None,
                 timeout: float = 1.0, **kwargs: Any) -> None:
        self.app = app
        self.single = destination if isinstance(destination, str) else None
        self.destination = [destination] if isinstance(destination, str) else destination
        self.timeout = timeout  # accepted: nothing is broadcast, so nothing is waited for

    def _prepare(self, reply: Reply) -> Any:
        """Celery's reply: None when no worker answers; for one destination given as a
        str, that worker's answer alone."""
        if not reply:
            return None
        return reply.get(self.single) if self.single is not None else reply

    def _workers(self) -> list[WorkerInfo]:
        workers = [w for w in Monitor(self.app).workers() if w.status == "up"]
        if self.destination is not None:
            workers = [w for w in workers if w.name in self.destination]
        return sorted(workers, key=lambda w: (w.started_at, w.id))

    def _rows(self, name: str, params: dict[str, Any]) -> list[Row]:
        schema = self.app.settings.schema
        return self.app.client.execute(Statement(queries(schema)[name], params,
                                                 lambda rows: rows))

    def _task(self, row: Row, worker: WorkerInfo) -> dict[str, Any]:
        (job_id, task_id, task, args, kwargs, queue, priority, attempts, started_at,
         _worker_id, run_at) = row
        args_v, kwargs_v = Monitor(self.app)._redacted(task, _decoded(args),
                                                       _decoded(kwargs))
        return {"id": task_id or str(job_id), "name": task, "args": args_v,
                "kwargs": kwargs_v, "type": task, "hostname": worker.name,
                "time_start": started_at.timestamp() if started_at else None,
                "acknowledged": started_at is not None, "worker_pid": worker.pid,
                "eta": _iso(run_at),
                "delivery_info": {"routing_key": queue, "exchange": "", "priority": priority,
                                  "redelivered": attempts > 1, "queue": queue},
                "retries": max(attempts - 1, 0), "job_id": job_id}

    def active(self, safe: bool | None = None) -> Any:
        """Running jobs, by worker: ``{"celery@host": [{"id", "name", "args", ...}]}``."""
        workers = self._workers()
        by_id = {w.id: w for w in workers}
        reply: Reply = {w.name: [] for w in workers}
        for row in self._rows("celery_running", {}):
            worker = by_id.get(row[9])
            if worker is not None:
                reply[worker.name].append(self._task(row, worker))
        return self._prepare(reply)

    def _waiting(self, future: bool, per_worker: int | None
                 ) -> dict[str, tuple[WorkerInfo, list[Row]]]:
        workers = self._workers()
        listed: dict[str, tuple[WorkerInfo, list[Row]]] = {w.name: (w, []) for w in workers}
        queues = sorted({q for w in workers for q in w.queues})
        if not queues:
            return listed
        limit = MAX_LISTED if per_worker is None else per_worker * len(workers)
        owner = {q: next(w for w in workers if q in w.queues) for q in queues}
        for row in self._rows("celery_waiting", {"queues": queues, "future": future,
                                                 "limit": limit}):
            rows = listed[owner[row[5]].name][1]
            if per_worker is None or len(rows) < per_worker:
                rows.append(row)
        return listed

    def scheduled(self, safe: bool | None = None) -> Any:
        """Jobs waiting for their eta: ``{worker: [{"eta", "priority", "request": {...}}]}``."""
        listed = self._waiting(True, None)
        return self._prepare({name: [{"eta": _iso(row[10]), "priority": row[6],
                                      "request": self._task(row, worker)} for row in rows]
                              for name, (worker, rows) in listed.items()})

    def reserved(self, safe: bool | None = None) -> Any:
        """Due jobs each worker would claim next (see the module's note)."""
        prefetch = int(self.app.conf.worker_prefetch_multiplier or 1)
        workers = {w.name: w for w in self._workers()}
        per = max((w.concurrency for w in workers.values()), default=1) * max(prefetch, 1)
        listed = self._waiting(False, per)
        return self._prepare({name: [self._task(row, worker) for row in rows]
                              for name, (worker, rows) in listed.items()})

    def registered(self, *taskinfoitems: str) -> Any:
        """The task names this app registers, for each live worker."""
        self.app.finalize()
        names = sorted(self.app.tasks)
        return self._prepare({w.name: list(names) for w in self._workers()})

    registered_tasks = registered

    def stats(self) -> Any:
        """Per worker: ``total`` jobs finished by task, ``pool``, ``pid``, ``uptime``..."""
        workers = self._workers()
        totals: dict[int, dict[str, int]] = {w.id: {} for w in workers}
        if workers:
            since = min(w.started_at for w in workers)
            for worker_id, task, count in self._rows(
                    "celery_worker_totals", {"since": since, "workers": list(totals)}):
                totals[worker_id][task] = count
        return self._prepare({
            w.name: {"total": totals[w.id], "pid": w.pid, "uptime": int(w.uptime_seconds),
                     "pool": {"max-concurrency": w.concurrency, "implementation": w.pool,
                              "processes": [w.pid]},
                     "broker": {"transport": "postgresql", "hostname": w.host},
                     "prefetch_count": 0, "clock": 0, "rusage": {},
                     "queues": list(w.queues), "running": w.running, "jobs_done": w.jobs_done}
            for w in workers})

    def query_task(self, *ids: str | int) -> Any:
        """Where these tasks are: ``{worker: {id: ["active"|"reserved"|"scheduled", task]}}``."""
        wanted = {str(i) for i in (ids[0] if len(ids) == 1 and isinstance(ids[0], (list, tuple))
                                   else ids)}
        found: Reply = {w.name: {} for w in self._workers()}
        kinds = (("active", self.active()), ("reserved", self.reserved()),
                 ("scheduled", self.scheduled()))
        for kind, reply in kinds:
            for name, tasks in (self._by_node(reply) or {}).items():
                for task in tasks:
                    request = task.get("request", task)
                    if request["id"] in wanted:
                        found.setdefault(name, {})[request["id"]] = [kind, request]
        return self._prepare(found)

    def _by_node(self, reply: Any) -> Any:
        if reply is None or self.single is None:
            return reply
        return {self.single: reply}

    def active_queues(self) -> Any:
        return self._prepare({w.name: [{"name": q, "routing_key": q} for q in w.queues]
                              for w in self._workers()})

    def ping(self) -> Any:
        return self._prepare({w.name: {"ok": "pong"} for w in self._workers()})

    def revoked(self) -> Any:
        """Celery lists ids each worker keeps in memory; pgqueue keeps cancelled jobs as
        rows (``pgq jobs list --state cancelled``), so each reply is empty."""
        return self._prepare({w.name: [] for w in self._workers()})


def _ids(task_id: str | int | Iterable[str | int]) -> list[str | int]:
    if isinstance(task_id, (str, int)):
        return [task_id]
    return list(task_id)


def rate_text(rate: object) -> str | None:
    """Celery's rate forms as pgqueue's: ``"10/m"``; a bare number is per second; 0 or
    None is no limit."""
    if rate is None:
        return None
    if isinstance(rate, bool):
        raise TypeError("a rate limit is a str like '10/m' or a number per second")
    if isinstance(rate, (int, float)):
        if rate != int(rate):
            raise ValueError(f"rate limit {rate}: pgqueue counts whole starts per window; "
                             "write it as a rate such as '3/10s'")
        return None if rate == 0 else f"{int(rate)}/s"
    if isinstance(rate, str) and _BARE_NUMBER.match(rate):
        return rate_text(float(rate))
    if isinstance(rate, str):
        return None if rate.strip() in ("", "0") else rate.strip()
    raise TypeError(f"a rate limit is a str like '10/m', not {type(rate).__name__}")


class Control:
    """``app.control``: revoke, inspect, rate_limit and ping."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def inspect(self, destination: Sequence[str] | str | None = None, timeout: float = 1.0,
                **kwargs: Any) -> Inspect:
        return Inspect(self.app, destination, timeout, **kwargs)

    def revoke(self, task_id: str | int | Iterable[str | int],
               destination: Sequence[str] | None = None, terminate: bool = False,
               signal: Any = None, **kwargs: Any) -> None:
        """Cancel tasks by id (one, or a list): see the module's note."""
        for one in _ids(task_id):
            self.app.AsyncResult(one).revoke(terminate=terminate, signal=signal)

    def terminate(self, task_id: str | int | Iterable[str | int], **kwargs: Any) -> None:
        self.revoke(task_id, terminate=True)

    def rate_limit(self, task_name: str, rate_limit: object,
                   destination: Sequence[str] | None = None, reply: bool = False,
                   **kwargs: Any) -> list[Reply] | None:
        """Limit a task's starts, across all workers together: ``rate_limit(name, "10/m")``.

        Checked before anything is written (an unknown task, when this app knows
        its tasks, raises :class:`NotRegistered`); ``None`` or ``0`` lifts it.
        """
        from pgqueue.celery.exceptions import NotRegistered

        if not isinstance(task_name, str) or not task_name:
            raise TypeError("rate_limit() needs the task's name")
        text = rate_text(rate_limit)
        parsed = parse_rate(text) if text is not None else None
        self.app.finalize()
        if self.app.tasks and task_name not in self.app.tasks:
            raise NotRegistered(f"no task named {task_name!r} in {self.app!r}")
        schema = self.app.settings.schema
        if parsed is None:
            self.app.client.execute(Statement(queries(schema)["lift_task_rate"],
                                              {"task": task_name}, lambda rows: rows))
            message = "rate limit disabled successfully"
        else:
            self.app.client.execute(Statement(
                queries(schema)["set_task_rate"],
                {"task": task_name, "rate": parsed[0], "rate_window": parsed[1]},
                lambda rows: rows))
            message = "new rate limit set successfully"
        if not reply:
            return None
        return [{w.name: {"ok": message}} for w in Inspect(self.app, destination)._workers()]

    def ping(self, destination: Sequence[str] | None = None, timeout: float = 1.0,
             **kwargs: Any) -> list[Reply]:
        replies = Inspect(self.app, destination).ping() or {}
        return [{name: pong} for name, pong in replies.items()]

    def purge(self, queues: Sequence[str] | None = None) -> int:
        """Cancel every queued job of the app's queues (``queues``: these): none of them
        runs. Returns how many. Jobs already running, and workflow steps still waiting
        for an earlier one, are left alone."""
        from pgqueue.sql import channels

        names = list(queues) if queues is not None else list(self.app.settings.queues)
        schema = self.app.settings.schema
        purged = self.app.client.execute(Statement(
            queries(schema)["celery_purge"],
            {"queues": names, "done_channel": channels(schema)["done_channel"]},
            lambda rows: rows))
        return len(purged)
