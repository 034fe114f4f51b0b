"""The one line a benchmark task writes, shared by every system's task module.

Each line is one small ``os.write`` to a file opened with O_APPEND, so lines from
many processes never interleave. A forked or spawned child opens its own descriptor.
Stdlib only: it is imported by pgqueue's workers and by the peers' alike.
"""

from __future__ import annotations

import os
import time

_fds: dict[tuple[int, str], int] = {}  # (pid, environment variable) -> fd


def append(var: str, line: str) -> None:
    """Append ``line`` to the file named by the environment variable ``var``."""
    key = (os.getpid(), var)
    fd = _fds.get(key)
    if fd is None:
        fd = _fds[key] = os.open(os.environ[var], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                 0o644)
    os.write(fd, line.encode())


def started(n: int) -> None:
    """The latency task's record: ``"n start_time"`` in the file named by BENCH_OUT."""
    append("BENCH_OUT", f"{n} {time.time():.6f}\n")
