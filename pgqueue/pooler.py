"""Which connection carries LISTEN and the leader's lock when PGQ_DSN goes through
a pooler, and how pgqueue tells that it does.

A transaction-mode pooler (PgBouncer's ``pool_mode = transaction``) lends each
transaction a server session of its choosing. pgqueue's statements work through
it (each is one autocommit statement or one transaction), but session state
does not: a LISTEN is registered on whichever session ran it, and its
notifications reach whoever holds that session next, or nobody; a session
advisory lock (the scheduler's leadership) stays with a session nobody owns;
a server-side prepared statement may be missing on the next session
(PgBouncer before 1.21 can't carry them: ``PGQ_PREPARED_STATEMENTS=off``).

So the rules are:

- ``PGQ_LISTEN_DSN`` given: LISTEN (worker wake-ups, cancel notifications,
  ``JobResult.get()``'s waiters) and the leader lock use it (``PGQ_LEADER_DSN``
  still wins for the lock). It is taken to be direct, or a session-mode pooler.
- Otherwise ``PGQ_DSN`` counts as pooled when prepared statements are off (the
  documented setting for pooled connections) or when a connection shows a
  pooler: the backend pid libpq was told at connect is not the
  ``pg_backend_pid()`` of the session running a query (PgBouncer, like most
  poolers, answers with a cancel key of its own). Then workers poll every
  ``poll_interval`` and say so once at start; result waiters re-read their rows
  every :data:`WAITER_POLL` seconds; and every scheduler fires, since no lock can
  be held (each tick is still enqueued once, by its primary key).
"""

from __future__ import annotations

from typing import Any

from pgqueue.sql import queries
from pgqueue.statements import Statement

# How often a result waiter re-reads its row when no LISTEN can reach it.
WAITER_POLL = 0.25

PREPARED_OFF = "PGQ_PREPARED_STATEMENTS is off, the setting for pooled connections"
SHOWS_POOLER = ("the session that answers is not the one connected to: a pooler "
                "(PgBouncer?) is in between")
WHAT_TO_SET = ("set PGQ_LISTEN_DSN to a direct connection to Postgres (not through "
               "the pooler) for instant wake-ups")


def backend_pid(schema: str) -> Statement[int]:
    def decode(rows: list[Any]) -> int:
        return int(rows[0][0])

    return Statement(queries(schema)["backend_pid"], {}, decode)


def why_pooled(*, prepared: bool, told_pid: int | None = None,
               server_pid: int | None = None) -> str | None:
    """Why a connection without a direct DSN counts as pooled, or None if it doesn't.

    ``told_pid`` is the pid of the connection's start-up message (``conn.info.
    backend_pid``), ``server_pid`` the answer of :func:`backend_pid` on it."""
    if not prepared:
        return PREPARED_OFF
    if told_pid is not None and server_pid is not None and told_pid != server_pid:
        return SHOWS_POOLER
    return None
