"""Helpers for the example tests: load an example's module, and run its commands from
its own directory, the way its README runs them by hand.

Examples are not a package: each is a directory with a script that is both the
tasks module a worker loads (``pgq worker --app thumbnails_app:app``) and a small
program. So a worker subprocess runs with the example's directory as its working
directory and on ``PYTHONPATH``, and the test loads a fresh copy of the module,
whose ``App()`` then reads this test's database from ``PGQ_DSN``.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ROOT, _pgq_env, stop_process

EXAMPLES = ROOT / "examples"
_loaded = itertools.count()


def example_env(dsn: str, example: str) -> dict[str, str]:
    """The environment of tests.conftest's `pgq` helper, with the example importable."""
    env = _pgq_env(dsn)
    env["PYTHONPATH"] = f"{EXAMPLES / example}{os.pathsep}{env['PYTHONPATH']}"
    return env


def example_pgq(dsn: str, example: str, *args: str, env: dict[str, str] | None = None,
                **kwargs: Any) -> subprocess.Popen[str]:
    """Start ``pgq ARGS`` from the example's directory, as its README does."""
    return subprocess.Popen([sys.executable, "-m", "pgqueue.cli", *args],
                            env={**example_env(dsn, example), **(env or {})},
                            cwd=EXAMPLES / example, text=True, **kwargs)


def example_run(dsn: str, example: str, *argv: str, timeout: float = 30,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGV`` (the example's own script) to completion, in its directory."""
    return subprocess.run([sys.executable, *argv], env={**example_env(dsn, example),
                                                        **(env or {})},
                          cwd=EXAMPLES / example, text=True, capture_output=True,
                          timeout=timeout)


def stop(proc: subprocess.Popen[str], timeout: float = 15) -> int:
    return stop_process(proc, timeout)


@pytest.fixture
def load_example(dsn: str, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[Callable[[str, str], ModuleType]]:
    """``load_example("signup", "signup_app")``: a fresh copy of the module, on this test's
    database. A fresh copy per test, since a module's App keeps the DSN it first used."""
    monkeypatch.setenv("PGQ_DSN", dsn)
    monkeypatch.delenv("PGQ_SCHEMA", raising=False)
    modules: list[ModuleType] = []

    def load(example: str, module: str) -> ModuleType:
        path = EXAMPLES / example / f"{module}.py"
        name = f"_example_{module}_{next(_loaded)}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded  # dataclasses look their module up while it loads
        spec.loader.exec_module(loaded)
        modules.append(loaded)
        return loaded

    yield load
    for module in modules:
        if hasattr(module, "app"):
            module.app.close()
        sys.modules.pop(module.__name__, None)
