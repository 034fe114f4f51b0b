"""Process-pool children die with their worker, even after kill -9: none goes on running
a job that is about to be rescued and run again elsewhere."""

from __future__ import annotations

import os
import signal
import subprocess

from pgqueue import App, JobState
from tests.conftest import pgq, wait_for


def _children(pid: int) -> list[int]:
    """The pool's live job processes (not multiprocessing's resource tracker)."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,stat=,args=", "--ppid", str(pid)],
                         capture_output=True, text=True)
    rows = [line.split(None, 2) for line in out.stdout.splitlines() if line.strip()]
    return [int(p) for p, stat, args in rows
            if not stat.startswith("Z") and "spawn_main" in args]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True,
                          text=True).stdout.strip()
    return bool(stat) and not stat.startswith("Z")


def test_kill_9_of_the_worker_takes_its_children(dsn: str, producer: App) -> None:
    worker = pgq(dsn, "worker", "--app", "tasks_app:app", "--pool", "processes",
                 "--concurrency", "2")
    job = producer.tasks["sleepy"].delay(60)
    assert wait_for(lambda: job.state is JobState.RUNNING, 30)
    children = _children(worker.pid)
    assert len(children) == 2, children
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert wait_for(lambda: not any(_alive(c) for c in children), 5), \
        [c for c in children if _alive(c)]
