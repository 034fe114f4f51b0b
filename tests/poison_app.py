"""Tasks that misbehave in every way a task can, for tests/acceptance/test_poison.py.

Each case exists as a plain function (threads and processes pools) and as an
``async def`` (asyncio pool); ``ok``/``aok`` are the plain jobs that must keep running.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from pgqueue import App

app = App()
MAX_RESULT_BYTES = 1_000_000  # the worker under test runs with PGQ_MAX_RESULT_BYTES so


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ raised")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ raised")


def _raise(exc: BaseException) -> Callable[[], Any]:
    def go() -> Any:
        raise exc
    return go


# name -> (what the task does, the error type the job must end with)
CASES: dict[str, tuple[Callable[[], Any], str]] = {
    "nul_result": (lambda: "a\x00b", "UnstorableValue"),
    "surrogate_result": (lambda: "\ud800", "UnstorableValue"),
    "nan_result": (lambda: float("nan"), "TypeError"),
    "object_result": (lambda: object(), "TypeError"),
    "huge_result": (lambda: "x" * (MAX_RESULT_BYTES + 10), "ResultTooLarge"),
    "deep_result": (lambda: _deep(100_000), "ValueError"),
    "nul_error": (_raise(ValueError("a\x00b")), "ValueError"),
    "surrogate_error": (_raise(ValueError("\ud800")), "ValueError"),
    "bad_str_error": (_raise(BadStr()), "BadStr"),
    "huge_error": (_raise(ValueError("m" * 20_000_000)), "ValueError"),
    "sys_exit": (lambda: sys.exit(3), "SystemExit"),
    "builtin_exit": (lambda: exit(1), "SystemExit"),
    "keyboard_interrupt": (_raise(KeyboardInterrupt()), "KeyboardInterrupt"),
    "generator_exit": (_raise(GeneratorExit()), "GeneratorExit"),
    "base_exception": (_raise(BaseException("custom")), "BaseException"),
}


def _deep(n: int) -> Any:
    value: Any = []
    for _ in range(n):
        value = [value]
    return value


def _register(name: str, fn: Callable[[], Any]) -> None:
    def plain() -> Any:
        return fn()

    async def coroutine() -> Any:
        return fn()

    app.task(name=f"p_{name}")(plain)
    app.task(name=f"a_{name}")(coroutine)


for _name, (_fn, _) in CASES.items():
    _register(_name, _fn)


@app.task
def ok(i: int) -> int:
    return i


@app.task
async def aok(i: int) -> int:
    return i


@app.task
def forks() -> str:
    """The child returns into the worker's code: it must exit, not record or serve."""
    pid = os.fork()
    return "child" if pid == 0 else "parent"


@app.task(atomic=True, bind=True)
def commits(self: Any) -> None:
    """An explicit COMMIT would break exactly-once: the job must fail saying so."""
    self.connection.execute("CREATE TABLE IF NOT EXISTS poison_effects (n int)")
    self.connection.execute("INSERT INTO poison_effects VALUES (1)")
    self.connection.execute("COMMIT")


@app.task(atomic=True, bind=True)
def sets_state(self: Any) -> None:
    """Session state left on the atomic connection must not reach the next task."""
    self.connection.execute("SET work_mem = '64kB'")
    self.connection.execute("SET SESSION application_name = 'poisoned'")


@app.task(atomic=True, bind=True)
def reads_state(self: Any) -> list[str]:
    rows = self.connection.execute(
        "SELECT current_setting('work_mem'), current_setting('application_name')")
    return list(rows.fetchone() or ())
