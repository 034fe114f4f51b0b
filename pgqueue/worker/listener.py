"""LISTENs for new jobs (waking the claim loop when one lands on a queue we serve)
and for cancel requests (stopping the job if it runs here).

Any role that can connect may NOTIFY any channel, so a payload is only a hint: a new
job's queue name wakes the claim loop, which finds what is really there; a cancel's
job id is checked against the job's row (``cancel_requested``) on a connection of
its own (opened at the first cancel) before the job is stopped.

On a reconnect it wakes the loop once anyway: notifications sent while the
connection was down are lost, the jobs they announced are not.

Where no LISTEN can be trusted (PGQ_DSN goes through a pooler and no
PGQ_LISTEN_DSN is given, see :mod:`pgqueue.pooler`) it listens to nothing and
says so once: the loop then claims every ``poll_interval``, and cancel requests
still arrive with each heartbeat's reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import psycopg

from pgqueue import pooler, statements
from pgqueue.client_async import run
from pgqueue.link import Link
from pgqueue.sql import queries

log = logging.getLogger("pgqueue.worker")


class Listener:
    def __init__(self, link: Link, schema: str, queues: Sequence[str],
                 wake: asyncio.Event, cancel: Callable[[int], object]) -> None:
        self.link = link
        self.schema = schema
        self.queues = frozenset(queues)
        self.wake = wake
        self.cancel = cancel
        self.cancel_channel = f"{schema}.cancel"
        self.listening = asyncio.Event()
        # Not the link iterating notifies; a plain query, so pooled or not is fine.
        self.checker = Link(link.dsn, "cancel check", prepared=link.prepared)
        self._checks: set[asyncio.Task[None]] = set()
        self.polling: str | None = None  # why, when no LISTEN can be trusted
        self._checked = False

    def _on(self, channel: str, payload: str) -> None:
        """A notification is a hint: any role may NOTIFY any channel, so a payload that
        isn't what pgqueue sends is logged and ignored, never trusted or fatal."""
        if channel == self.cancel_channel:
            if payload.isdigit() and len(payload) < 20:
                check = asyncio.ensure_future(self._cancel_if_asked(int(payload)))
                self._checks.add(check)
                check.add_done_callback(self._checks.discard)
            else:
                log.warning("ignored a cancel notification with payload %r (not a job id)",
                            payload[:100])
        elif payload in self.queues:
            self.wake.set()

    async def _cancel_if_asked(self, job_id: int) -> None:
        stmt = statements.Statement(queries(self.schema)["cancel_requested"], {"id": job_id},
                                    lambda rows: bool(rows and rows[0][0]))
        try:
            asked = await self.checker.execute(stmt)
        except psycopg.Error as exc:  # the heartbeat sees cancel_requested all the same
            log.warning("cancel notification for job %d not checked (%s)", job_id, exc)
            return
        if asked:
            self.cancel(job_id)
        else:
            log.warning("ignored a cancel notification for job %d: its row doesn't ask "
                        "for it", job_id)

    async def run(self) -> None:
        try:
            await self._listen()
        finally:
            for check in list(self._checks):
                check.cancel()
            await self.checker.close()

    async def _listen(self) -> None:
        while True:
            try:
                if not self._checked:
                    await self._check()
                if self.polling:
                    self.listening.set()  # nothing to wait for: the loop polls
                    await self.link.close()
                    await asyncio.Event().wait()  # until the worker stops
                conn = await self.link.connect()
                await run(conn, statements.plain(self.schema, "listen_jobs"))
                await run(conn, statements.plain(self.schema, "listen_cancel"))
                self.listening.set()
                if self.link.reconnected:
                    self.link.reconnected = False
                    self.wake.set()
                async for note in conn.notifies():
                    self._on(note.channel, note.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("listener connection lost (%s); reconnecting", exc)
                await self.link.close()
                self.link.failed()

    async def _check(self) -> None:
        """Once, at start: can a LISTEN on this link be trusted? Say so if not."""
        why = await self.link.pooled(self.schema)
        self._checked = True
        if why is None:
            return
        if self.link.direct:
            log.warning("PGQ_LISTEN_DSN looks pooled too (%s): LISTEN works through a "
                        "pooler only in session mode; point it straight at Postgres", why)
            return
        self.polling = why
        log.warning("no LISTEN through PGQ_DSN (%s): this worker polls for jobs every "
                    "PGQ_POLL_INTERVAL seconds instead of waking on NOTIFY; %s (or to "
                    "PGQ_DSN itself if that isn't a transaction pooler)", why,
                    pooler.WHAT_TO_SET)
