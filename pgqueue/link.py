"""One dedicated database connection of the worker, reconnected with capped backoff.

The worker keeps a few (claim, finish, heartbeat, listen) so that a slow
completion never delays a claim. A failed statement drops the connection; the
next use reconnects, waiting longer after each failure (up to a cap), so a
Postgres restart costs a pause, not a crash or a tight reconnect loop.

Behind a transaction-mode pooler (see :mod:`pgqueue.pooler`) the links that need
a session of their own, LISTEN's and the leader lock's, go to ``PGQ_LISTEN_DSN``
when it is given; each link knows whether it was given such a direct DSN, and
can tell whether its connection goes through a pooler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgqueue import pooler, redact
from pgqueue.client import connect_kwargs, where
from pgqueue.client_async import run
from pgqueue.errors import ConfigurationError
from pgqueue.settings import Settings
from pgqueue.statements import Statement

T = TypeVar("T")
log = logging.getLogger("pgqueue.worker")

BACKOFF_START = 0.1
BACKOFF_CAP = 10.0

# A link that stops answering (a host unplugged, a cable cut) would otherwise leave a
# statement to the kernel's retransmissions: no error for ~15 minutes, and once the
# network is back, up to 2 minutes before the next retry gets through (measured:
# a 55 s cut, 52 s more without a job). With these, data unacknowledged for 10 s
# (or an idle connection that stops answering probes) ends the connection, and the
# link reconnects as after any loss. Only defaults: a DSN that sets one wins; libpq
# ignores them on Unix sockets.
TCP_DEFAULTS = {"connect_timeout": "10", "tcp_user_timeout": "10000", "keepalives": "1",
                "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3"}


# Errors that a retry can't mend, seen on a first connect (on a later one they may
# be a fail-over in progress, so a worker that has run keeps trying).
_MISCONFIGURED_STATES = {"3D000", "28000", "28P01", "42501"}
_MISCONFIGURED_WORDS = ("does not exist", "password authentication failed",
                        "no pg_hba.conf entry", "invalid sslmode", "invalid port",
                        "invalid connection option", "invalid integer value",
                        "missing \"=\"", "invalid dsn", "sslmode value")


def first_line(exc: BaseException) -> str:
    text = redact.scrub(str(exc)).strip()  # psycopg may quote a DSN that doesn't parse
    return text.splitlines()[0] if text else type(exc).__name__


def misconfigured(exc: psycopg.Error) -> bool:
    if isinstance(exc, psycopg.ProgrammingError):  # the DSN itself doesn't parse
        return True
    if getattr(exc, "sqlstate", None) in _MISCONFIGURED_STATES:
        return True
    text = str(exc).lower()
    return any(w in text for w in _MISCONFIGURED_WORDS)


def is_disconnect(exc: BaseException, conn: psycopg.AsyncConnection[Any] | None) -> bool:
    """Whether an error means the connection is gone (not a problem with the statement).

    Judged by the connection's own state and the SQLSTATE, never by the exception
    class alone: psycopg files some statement errors (program_limit_exceeded,
    e.g. a value too large) under OperationalError too.
    """
    if conn is None or conn.closed or conn.broken:
        return True
    state: str | None = getattr(exc, "sqlstate", None)
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith(("08", "57P"))  # connection exception, operator intervention


def with_tcp_defaults(dsn: str) -> str:
    """``dsn`` with the TCP_DEFAULTS it doesn't set (unchanged if it doesn't parse:
    connecting then says what is wrong with it)."""
    try:
        given = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return dsn
    missing = {k: v for k, v in TCP_DEFAULTS.items() if k not in given}
    return make_conninfo(dsn, **missing) if missing else dsn


def connection_lost(exc: BaseException, link: Link) -> bool:
    """After ``link.execute`` raised ``exc``: was it the connection (retry) or the rows?"""
    return link.conn is None or is_disconnect(exc, link.conn)


class Link:
    def __init__(self, dsn: str | Callable[[], str], name: str, *, prepared: bool = True,
                 direct: bool = False) -> None:
        """``prepared``: let psycopg prepare statements on the server (PGQ_PREPARED_
        STATEMENTS). ``direct``: ``dsn`` was given as a direct connection
        (PGQ_LISTEN_DSN, PGQ_LEADER_DSN), trusted to keep session state."""
        self.dsn = dsn
        self.name = name
        self.prepared = prepared
        self.direct = direct
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self._failures = 0
        self._connected_once = False
        self.reconnected = False

    def _dsn(self) -> str:
        return with_tcp_defaults(self.dsn() if callable(self.dsn) else self.dsn)

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        while self.conn is None or self.conn.closed:
            if self._failures:
                delay = min(BACKOFF_CAP, BACKOFF_START * 2 ** (self._failures - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                self.conn = await psycopg.AsyncConnection.connect(
                    self._dsn(), **connect_kwargs(self.prepared,
                                                  application_name=f"pgqueue {self.name}"))
                self._connected_once = True
                if self._failures:
                    log.warning("%s connection: reconnected", self.name)
                    self.reconnected = True
                self._failures = 0
            except psycopg.Error as exc:
                if not self._connected_once and misconfigured(exc):
                    raise ConfigurationError(
                        f"can't connect to Postgres at {where(self._dsn())}: "
                        f"{redact.scrub(first_line(exc), self._dsn())}. Retrying won't help: "
                        "check PGQ_DSN (database name, user and password, port, sslmode)."
                    ) from None
                self._failures += 1
                log.warning("%s connection failed (%s); retrying", self.name,
                            first_line(exc))
        return self.conn

    async def execute(self, stmt: Statement[T], *, repeat: bool = True) -> T:
        """Run ``stmt``; on a connection found dead (killed while idle, a fail-over),
        reconnect and send it once more. Every statement the worker and the
        scheduler send is safe to repeat: each transition of a job checks its lease,
        the rest are idempotent. ``repeat=False`` for one that isn't."""
        for attempt in range(2):
            conn = await self.connect()
            try:
                return await run(conn, stmt)
            except psycopg.Error as exc:
                if not is_disconnect(exc, conn):
                    raise  # any other error leaves the (autocommit) connection usable
                self._failures += 1
                await self.close()
                if attempt or not repeat:
                    raise
        raise AssertionError("unreachable")

    async def pooled(self, schema: str) -> str | None:
        """Why this link's sessions can't be trusted to keep state (LISTEN, a session
        lock): it goes through a pooler, or prepared statements are off and no direct
        DSN was given. None: they can (see :mod:`pgqueue.pooler`)."""
        if not self.prepared and not self.direct:
            return pooler.PREPARED_OFF
        conn = await self.connect()
        try:  # on this very connection: a reconnect would compare two sessions
            server_pid: int = await run(conn, pooler.backend_pid(schema))
        except psycopg.Error:
            await self.close()
            raise
        return pooler.why_pooled(prepared=True, told_pid=conn.info.backend_pid,
                                 server_pid=server_pid)

    def failed(self) -> None:
        """Count a failure seen outside execute(), so the next connect backs off."""
        self._failures += 1

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self.conn.close()
            self.conn = None


def worker_link(dsn: str | Callable[[], str], name: str, settings: Settings) -> Link:
    """A link for statements only (claim, finish, heartbeat): PGQ_DSN, pooled or not."""
    return Link(dsn, name, prepared=settings.prepared_statements)


def listen_link(dsn: Callable[[], str], settings: Settings) -> Link:
    """The link LISTEN runs on: PGQ_LISTEN_DSN when given, else PGQ_DSN."""
    if settings.listen_dsn:
        return Link(settings.listen_dsn, "listen", prepared=settings.prepared_statements,
                    direct=True)
    return Link(dsn, "listen", prepared=settings.prepared_statements)


def leader_link(dsn: str, settings: Settings) -> Link:
    """The link of the scheduler's session lock: PGQ_LEADER_DSN, else PGQ_LISTEN_DSN,
    else PGQ_DSN."""
    direct = settings.leader_dsn or settings.listen_dsn
    return Link(direct or dsn, "leader", prepared=settings.prepared_statements,
                direct=bool(direct))
