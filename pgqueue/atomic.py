"""Atomic tasks: the task's own database writes commit in the transaction that
records its completion, so their effects happen exactly once.

The task runs inside a transaction on a connection from this process's pool
(``self.connection`` in a bound task). When it returns, finish_jobs runs in the
same transaction and checks the attempt's lease. If the lease still holds, one
COMMIT makes the writes and the outcome durable together. If it was lost (the
job was rescued and belongs to a newer attempt), everything rolls back: the
newer attempt's effects are the only ones that remain. If the task raises, its
writes roll back and the failure is recorded as usual.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from pgqueue import encoding, statements
from pgqueue.client import connect_kwargs, live_connection, run
from pgqueue.job import JobState
from pgqueue.statements import Finish

_pools: dict[tuple[str, bool], ConnectionPool] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class AtomicTarget:
    """Where an atomic task records its completion: this worker's database and id."""

    dsn: str
    schema: str
    worker_id: int
    pool_size: int
    prepared: bool = True  # PGQ_PREPARED_STATEMENTS (off behind a transaction pooler)


class LeaseLost(Exception):
    pass


class ConnectionLost(Exception):
    """The atomic task's connection broke: whether its transaction committed is unknown."""


class AtomicityViolated(Exception):
    """The task ended (or broke) the transaction its writes were to commit in."""


# What the last task left on its connection (SET, temp tables, advisory locks,
# open cursors, LISTENs) must not reach the next task that gets it. DISCARD ALL
# minus DEALLOCATE ALL: the prepared statements are psycopg's own, and it would
# go on using the ones the server had dropped.
_RESET = ("CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
          "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES")


def _reset(conn: psycopg.Connection[Any]) -> None:
    conn.execute(_RESET)


def pool(dsn: str, size: int, prepared: bool = True) -> ConnectionPool:
    with _lock:
        if (dsn, prepared) not in _pools:
            _pools[dsn, prepared] = ConnectionPool(
                dsn, min_size=0, max_size=size, kwargs=connect_kwargs(prepared),
                name="pgqueue-atomic", reset=_reset, open=True)
        return _pools[dsn, prepared]


def _still_open(conn: psycopg.Connection[Any]) -> None:
    status = conn.info.transaction_status
    if status == psycopg.pq.TransactionStatus.INTRANS:
        return
    if status == psycopg.pq.TransactionStatus.INERROR:
        raise AtomicityViolated(
            "a statement of this atomic task failed and the task went on: its transaction "
            "is aborted, so nothing it wrote was kept")
    raise AtomicityViolated(
        "this atomic task ended its own transaction (COMMIT or ROLLBACK on "
        "self.connection): what it wrote before that is committed without the job's "
        "completion, so exactly-once no longer holds. Let pgqueue commit; use a "
        "savepoint (with self.connection.transaction():) for a partial rollback")


def run_atomically(fn: Any, args: list[Any], kwargs: dict[str, Any], target: AtomicTarget,
                   job_id: int, queue: str, lease: uuid.UUID, bind_connection: Any, *,
                   ignore_result: bool = False, keep_for: float | None = None
                   ) -> tuple[bool, Any]:
    """Run ``fn`` and record its success in one transaction.

    Returns (recorded, value); recorded is False when the lease was lost and
    everything was rolled back. Exceptions from ``fn`` propagate after rollback.
    """
    # Always checked (one empty query): a connection that died idle would otherwise
    # cost the job an attempt, and, were connections killed as fast as they idle,
    # could keep a job cycling between claim and give-back.
    with live_connection(pool(target.dsn, target.pool_size, target.prepared),
                         target.pool_size + 1,
                         after=0.0) as conn:
        bind_connection(conn)
        try:
            with conn.transaction():
                value = fn(*args, **kwargs)
                _still_open(conn)
                value_json = encoding.dumps(value, "result")  # checked even if not kept
                record = Finish(job_id, lease, JobState.SUCCEEDED, queue=queue,
                                value_json=None if ignore_result else value_json,
                                keep_for=keep_for)
                done = run(conn, statements.finish(target.schema, target.worker_id, [record]))
                if job_id not in done:
                    raise LeaseLost
            return True, value
        except LeaseLost:
            return False, None
        except psycopg.OperationalError as exc:
            if conn.closed or conn.broken:
                raise ConnectionLost(str(exc).strip().splitlines()[0] if str(exc) else
                                     "connection lost") from exc
            raise
        finally:
            bind_connection(None)


def close_pools() -> None:
    with _lock:
        for p in _pools.values():
            p.close()
        _pools.clear()

