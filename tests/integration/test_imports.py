"""Enqueueing in a fresh interpreter loads nothing of the worker."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = """
import sys
from pgqueue import App
app = App(sys.argv[1])
@app.task
def add(x, y):
    return x + y
r = add.delay(1, 2)
add.map([(1, 2), (3, 4)])
app.send_task("elsewhere", (1,), queue="other", countdown=5)
app.AsyncResult(r.id).state
loaded = sorted(m for m in sys.modules if m.startswith("pgqueue.worker"))
assert loaded == [], loaded
print("ok")
"""


def test_a_producer_never_loads_the_worker(dsn: str) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT, dsn], capture_output=True, text=True,
                         cwd=str(ROOT), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
