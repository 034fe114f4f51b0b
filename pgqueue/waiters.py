"""One LISTEN connection per app and process, serving every ``JobResult.get()``.

A waiter used to take a pooled connection and LISTEN on it for its whole wait,
so a handful of concurrent ``get()`` calls starved ``delay()`` of connections.
Now a waiter only registers here (by job id) and reads its row through the
pool for the length of one short query; a :class:`Listener` thread owns a
dedicated connection (``application_name`` ``pgqueue waiter``, outside the
pool) that LISTENs on the done channel and wakes the waiters a notification
names (an empty payload means "look", and wakes all).

No notification is missed: a waiter clears its wake-up, reads its row, then
waits; and after every (re)connect the listener wakes every waiter, so jobs
that finished while it wasn't listening are read again. If the connection
drops the thread reconnects with backoff; meanwhile waiters still re-read their
row every few seconds (``result._RECHECK_SECONDS``).

Where no LISTEN can be trusted (PGQ_DSN goes through a pooler and no
PGQ_LISTEN_DSN is given, see :mod:`pgqueue.pooler`) the thread holds no
connection: it wakes every waiter every ``pooler.WAITER_POLL`` seconds to
re-read its row, and says so once per process. With PGQ_LISTEN_DSN it LISTENs there.

Sync waiters wait on a ``threading.Event``; async ones on an ``asyncio.Event``
set through their loop's ``call_soon_threadsafe``: one listener serves both.
The listener starts on an app's first wait and stops at :func:`close` (and at
interpreter exit). A forked child gets a listener of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import selectors
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import psycopg

from pgqueue import pooler, statements
from pgqueue.client import connect_kwargs, run

if TYPE_CHECKING:
    from pgqueue.app import App

log = logging.getLogger("pgqueue.waiters")

APPLICATION_NAME = "pgqueue waiter"
_LISTENER_KWARGS: dict[str, Any] = {
    "application_name": APPLICATION_NAME, "connect_timeout": 10,
    # A server that vanished without a word (fail-over) is noticed within ~1 minute.
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
}
_warned_polling = False  # in this process
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0


class Waiter:
    """One waiting ``get()``: cleared before it reads its row, woken by the listener."""

    def wake(self) -> None:  # called from the listener thread
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class SyncWaiter(Waiter):
    def __init__(self) -> None:
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, seconds: float) -> None:
        """Until woken (since the last clear) or ``seconds`` have passed."""
        self._event.wait(seconds)


class AsyncWaiter(Waiter):
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._event.set)

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)


class Listener:
    """The thread and connection that LISTEN for one app in this process."""

    def __init__(self, dsn: str, schema: str, *, prepared: bool = True,
                 direct: bool = False) -> None:
        """``direct``: ``dsn`` is PGQ_LISTEN_DSN, trusted to keep a LISTEN; otherwise
        it is PGQ_DSN, checked once for a pooler in between."""
        self._dsn = dsn
        self._kwargs = connect_kwargs(prepared, **_LISTENER_KWARGS)
        self._schema = schema
        self._direct = direct
        # Why no LISTEN can be trusted (then waiters are woken to poll), or None.
        self.polling = None if prepared or direct else pooler.PREPARED_OFF
        self._checked = direct or not prepared
        self._listen = statements.plain(schema, "listen_done")
        self._waiters: dict[int, set[Waiter]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._retired = False  # ended for want of waiters; listener() makes a new one
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.pid = os.getpid()
        self.backend_pid: int | None = None  # of the current connection, for tests and logs
        self._thread = threading.Thread(target=self._run, name="pgqueue-waiter", daemon=True)
        self._thread.start()

    # -- waiters (any thread) -------------------------------------------------
    @property
    def retired(self) -> bool:
        return self._retired or self._stopping.is_set()

    @property
    def waiting(self) -> int:
        """How many waits this listener serves now."""
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def add(self, job_id: int, waiter: Waiter) -> bool:
        """Serve this waiter; False if this listener has ended (ask for a new one)."""
        with self._lock:
            if self.retired:
                return False
            self._waiters.setdefault(job_id, set()).add(waiter)
            return True

    def remove(self, job_id: int, waiter: Waiter) -> None:
        with self._lock:
            waiting = self._waiters.get(job_id)
            if waiting is not None:
                waiting.discard(waiter)
                if not waiting:
                    del self._waiters[job_id]

    def _wake(self, job_ids: list[int] | None) -> None:
        """Wake the waiters of these jobs, or every waiter (None)."""
        with self._lock:
            if job_ids is None:
                woken = [w for waiting in self._waiters.values() for w in waiting]
            else:
                woken = [w for i in job_ids for w in self._waiters.get(i, ())]
        for waiter in woken:
            waiter.wake()

    # -- the thread -----------------------------------------------------------
    def _run(self) -> None:
        backoff = _BACKOFF_FIRST
        while not self._stopping.is_set() and not self.polling:
            try:
                with psycopg.connect(self._dsn, **self._kwargs) as conn:
                    if self._pooled(conn):
                        break
                    run(conn, self._listen)
                    self.backend_pid = conn.info.backend_pid
                    backoff = _BACKOFF_FIRST
                    self._wake(None)  # whatever finished before we listened: read again
                    self._serve(conn)
            except Exception as exc:  # never die: waiters fall back to re-reading rows
                if self._stopping.is_set() or self._retire_if_idle():
                    break
                log.warning("result listener lost its connection (%s); reconnecting in "
                            "%.1fs", exc, backoff)
                self.backend_pid = None
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
        if self.polling:
            self._poll()
        self.backend_pid = None
        if self._retired:
            self._wake_r.close()
            self._wake_w.close()

    def _pooled(self, conn: psycopg.Connection[Any]) -> bool:
        """On the first connection: does it go through a pooler (see pgqueue.pooler)?"""
        if not self._checked:
            self._checked = True
            self.polling = pooler.why_pooled(
                prepared=True, told_pid=conn.info.backend_pid,
                server_pid=run(conn, pooler.backend_pid(self._schema)))
        return self.polling is not None

    def _poll(self) -> None:
        """Until stop(): wake every waiter every WAITER_POLL seconds to re-read its row."""
        global _warned_polling
        if not _warned_polling:
            _warned_polling = True
            log.warning("JobResult.get() polls every %gs: no LISTEN through PGQ_DSN (%s); "
                        "%s", pooler.WAITER_POLL, self.polling, pooler.WHAT_TO_SET)
        while not self._stopping.wait(pooler.WAITER_POLL):
            self._wake(None)

    def _retire_if_idle(self) -> bool:
        """End instead of reconnecting when nobody waits (a dropped database, say)."""
        with self._lock:
            self._retired = not self._waiters
            return self._retired

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        """Until stop(): wait for the connection or the stop socket, drain notifications."""
        with selectors.DefaultSelector() as selector:  # not select(): fds above 1024
            selector.register(conn.fileno(), selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = selector.select()
                if any(key.fd == conn.fileno() for key, _ in ready):
                    for note in conn.notifies(timeout=0):
                        self._wake(_job_ids(note.payload))

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if threading.current_thread() is not self._thread:
            self._thread.join(10)
        self._wake_r.close()
        self._wake_w.close()
        self._wake(None)  # waiters still waiting re-read their rows and carry on polling


def _job_ids(payload: str) -> list[int] | None:
    """The ids a done notification names; None (wake all) for empty or unexpected ones."""
    if not payload:
        return None
    try:
        return [int(part) for part in payload.split(",")]
    except ValueError:
        log.warning("ignoring an unexpected payload on the done channel: %.100r", payload)
        return []


_listeners: weakref.WeakKeyDictionary[App, Listener] = weakref.WeakKeyDictionary()
_listeners_lock = threading.Lock()


def listener(app: App) -> Listener:
    """The app's listener in this process, started on first use."""
    s = app.settings
    dsn = s.listen_dsn or app.dsn()  # may start the embedded server: not under the lock
    with _listeners_lock:
        found = _listeners.get(app)
        # A fork's copy belongs to the parent; a retired one has ended.
        if found is None or found.pid != os.getpid() or found.retired:
            found = _listeners[app] = Listener(dsn, s.schema, prepared=s.prepared_statements,
                                               direct=bool(s.listen_dsn))
        return found


def _register(app: App, job_id: int, waiter: Waiter) -> Listener:
    while True:
        owner = listener(app)
        if owner.add(job_id, waiter):
            return owner


@contextlib.contextmanager
def waiting(app: App, job_id: int) -> Iterator[SyncWaiter]:
    """Registered for the notifications of this job while the block runs."""
    waiter = SyncWaiter()
    owner = _register(app, job_id, waiter)
    try:
        yield waiter
    finally:
        owner.remove(job_id, waiter)


@contextlib.asynccontextmanager
async def waiting_async(app: App, job_id: int) -> AsyncIterator[AsyncWaiter]:
    waiter = AsyncWaiter()
    owner = _register(app, job_id, waiter)
    try:
        yield waiter
    finally:
        owner.remove(job_id, waiter)


def close(app: App) -> None:
    """Stop the app's listener (App.close calls this); a later wait starts a new one."""
    with _listeners_lock:
        found = _listeners.pop(app, None)
    if found is not None and found.pid == os.getpid():
        found.stop()


@atexit.register
def _close_all() -> None:
    with _listeners_lock:
        found = list(_listeners.items())
        _listeners.clear()
    for _, owner in found:
        if owner.pid == os.getpid():
            owner.stop()
