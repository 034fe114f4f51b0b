"""The task of tests/acceptance/test_cut_host.py, run by `pgq worker` processes that live
in network namespaces (``--app netns_app:app``, the DSN from PGQ_DSN).

Each execution is appended to a file of its own host (``$PGQ_NETNS_RECORDS/<host>``),
not to a table: the table would sit across the very link the test cuts, so a
record made during the cut would wait for the link and count it, not the queue.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pgqueue import App
from pgqueue.context import JobContext

app = App()


def register(application: App) -> None:
    @application.task(bind=True, name="netns.step")
    def step(self: JobContext, i: int, seconds: float) -> int:
        started = time.time()
        time.sleep(seconds)
        host = os.environ["PGQ_NETNS_HOST"]
        line = json.dumps({"job": self.job_id, "attempt": self.attempt, "host": host,
                           "started": started, "ended": time.time()})
        # One short O_APPEND write per line, so concurrent threads never interleave.
        with open(Path(os.environ["PGQ_NETNS_RECORDS"]) / host, "a") as out:
            out.write(line + "\n")
        return i


register(app)
