"""A task result Postgres can't store fails that job with a readable error, before any
write: the worker records it and goes on (encoding refuses it, not the database)."""

from __future__ import annotations

from typing import Any

import pytest

from pgqueue import App, waiters
from pgqueue.errors import TaskError
from tests.conftest import running_worker


@pytest.mark.parametrize(("value", "expected"), [
    ("a\x00b", "NUL byte"), ({"k": ["\ud800"]}, "lone surrogate"),
    (float("nan"), "NaN"), ({1, 2}, "not JSON serialisable"),
])
def test_unstorable_result_fails_the_job_and_the_worker_goes_on(app: App, value: Any,
                                                                expected: str) -> None:
    @app.task(name="unstorable")
    def unstorable() -> Any:
        return value

    try:
        with running_worker(app):
            bad = app.tasks["unstorable"].delay()
            good = [app.tasks["add"].delay(i, 1) for i in range(20)]
            with pytest.raises(TaskError, match=expected):
                bad.get(timeout=30)
            assert [r.get(timeout=30) for r in good] == [i + 1 for i in range(20)]
    finally:
        waiters.close(app)
