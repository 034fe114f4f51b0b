"""``ticking`` and ``every``: the one loop that drives side services.

A service (the heartbeat, the rescuer, the scheduler's tick, the pruner) is a
``run_once()`` coroutine; this owns the sleeping, the logging and surviving
errors, so each service stays a single step that tests can call on its own.
After a failure the next try waits longer (doubling, up to ``BACKOFF_CAP``
times the interval), so a database that is down is not hammered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import psycopg

from pgqueue.link import first_line

log = logging.getLogger("pgqueue.services")

BACKOFF_CAP = 8  # at most this many intervals between tries while a service fails


def backoff(interval: float, failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row (0: the plain interval)."""
    return interval * min(BACKOFF_CAP, 2 ** failures) if failures else interval


async def ticking(run_once: Callable[[], Awaitable[float]], name: str, *,
                  error_interval: float, stopping: asyncio.Event) -> None:
    """Run ``run_once`` until ``stopping`` is set, waiting the seconds it returns
    between runs (the scheduler sleeps until its next tick); after a failure, log it
    and wait ``backoff(error_interval, failures in a row)``."""
    failures = 0
    while not stopping.is_set():
        try:
            wait = await run_once()
            failures = 0
        except psycopg.OperationalError as exc:
            failures += 1
            wait = backoff(error_interval, failures)
            log.warning("%s: database unreachable (%s); will retry", name, first_line(exc))
        except Exception:
            failures += 1
            wait = backoff(error_interval, failures)
            log.exception("%s failed; will retry", name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), wait)


async def every(interval: float, run_once: Callable[[], Awaitable[object]], name: str) -> None:
    """``run_once`` every ``interval`` seconds, the first run one interval from now."""
    async def step() -> float:
        await run_once()
        return interval

    await asyncio.sleep(interval)
    await ticking(step, name, error_interval=interval, stopping=asyncio.Event())


async def supervised(name: str, run: Callable[[], Awaitable[object]]) -> None:
    """Run a service for as long as its owner lives: if it ever returns or raises, say
    so and start it again (after a growing pause), so no part dies silently."""
    failures = 0
    while True:
        try:
            await run()
            log.error("%s stopped unexpectedly; restarting it", name)
        except Exception:
            log.exception("%s died; restarting it", name)
        failures += 1
        await asyncio.sleep(min(10.0, 0.1 * 2 ** failures))
