"""The worker: claims jobs, runs them, records outcomes. Entry point: :class:`Worker`.

``Worker`` is imported lazily so that the worker's small parts (links, pools)
can be used by the scheduler and maintenance without pulling in the loop.
"""

from typing import Any

__all__ = ["Worker"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from pgqueue.worker.loop import Worker

        return Worker
    raise AttributeError(name)
