"""The runner that drives the scheduler's services: waits what a step returns, survives
and backs off after failures, and returns once told to stop. No database."""

from __future__ import annotations

import asyncio
import itertools

import psycopg

from pgqueue.services import backoff, ticking


def test_waits_what_the_step_returns_backs_off_on_failure_and_stops() -> None:
    outcomes: list[object] = [0.01, psycopg.OperationalError("down"), RuntimeError("bug"),
                              0.02, "stop"]
    stopping = asyncio.Event()
    seen: list[float] = []

    async def run_once() -> float:
        loop = asyncio.get_running_loop()
        seen.append(loop.time())
        outcome = outcomes.pop(0)
        if outcome == "stop":
            stopping.set()
            return 10.0  # not waited: the runner returns once stopping is set
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, float)
        return outcome

    async def go() -> None:
        await asyncio.wait_for(ticking(run_once, "test", error_interval=0.05,
                                       stopping=stopping), timeout=5)

    asyncio.run(go())
    assert outcomes == []
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    # 0.01 as returned; then 2 and 4 intervals of backoff after the two failures in a row
    assert gaps[0] >= 0.01
    assert gaps[1] >= backoff(0.05, 1) - 0.005 and gaps[2] >= backoff(0.05, 2) - 0.005
    assert gaps[3] >= 0.02


def test_stop_interrupts_a_long_wait() -> None:
    stopping = asyncio.Event()

    async def run_once() -> float:
        asyncio.get_running_loop().call_later(0.05, stopping.set)
        return 3600.0

    async def go() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await ticking(run_once, "test", error_interval=1, stopping=stopping)
        return loop.time() - began

    assert asyncio.run(go()) < 1
