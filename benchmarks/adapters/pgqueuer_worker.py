"""One pgqueuer worker process: what ``pgq run pgqueuer_tasks:main`` does, without the CLI.

pgqueuer 1.6.0's ``pgq run`` fails at start under typer 0.29 (its --log-level parser hands
a str where an enum is expected), so the adapter starts this instead: the same documented
``pgqueuer.run(factory, ...)`` the CLI calls, the same INFO logging, on uvloop as the CLI
picks it when uvloop is installed.

    python pgqueuer_worker.py [--batch-size B] [--max-concurrent-tasks C]
"""

from __future__ import annotations

import argparse

import pgqueuer
import uvloop
from pgqueuer.core import logconfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--factory", default="pgqueuer_tasks:main")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-concurrent-tasks", type=int, default=None)
    args = parser.parse_args()
    logconfig.setup_fancy_logger(logconfig.LogLevel.INFO)
    uvloop.run(pgqueuer.run(args.factory, batch_size=args.batch_size,
                            max_concurrent_tasks=args.max_concurrent_tasks or None))


if __name__ == "__main__":
    main()
