"""Tasks Celery's benchmark workers run (``celery -A celery_tasks worker``).

Broker from BENCH_BROKER; results are ignored and there is no result backend. Celery keeps
no record of finished tasks without one, so completion is observed in the worker: with
BENCH_POSTRUN set, a ``task_postrun`` handler appends ``time.time()`` as one line to that
file (O_APPEND, one small write per task). ``latency`` appends ``"n start_time"`` to
BENCH_OUT, as every system's latency task does.
"""

from __future__ import annotations

import os
import time
from typing import Any

import startlog
from celery import Celery
from celery.signals import task_postrun

QUEUE = "pgq_bench"

app = Celery("pgq_bench", broker=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/5"))
app.conf.update(
    task_ignore_result=True,
    result_backend=None,
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

if os.environ.get("BENCH_POSTRUN"):
    @task_postrun.connect
    def _finished(**_: Any) -> None:
        startlog.append("BENCH_POSTRUN", f"{time.time():.6f}\n")


@app.task(name="noop")
def noop(n: int) -> None:
    return None


@app.task(name="io")
def io(n: int) -> None:
    time.sleep(0.005)


@app.task(name="latency")
def latency(n: int) -> None:
    startlog.started(n)
