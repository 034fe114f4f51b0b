"""``every(interval, fn)``: the one loop that drives the worker's side services.

A service is a ``run_once()`` coroutine; this owns the sleeping, the logging
and surviving errors, so each service stays a single step that tests can call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import psycopg

log = logging.getLogger("pgqueue.worker")


async def every(interval: float, run_once: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await run_once()
        except psycopg.OperationalError as exc:
            log.warning("%s: database unreachable (%s); will retry", name,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
        except Exception:
            log.exception("%s failed; will retry", name)
