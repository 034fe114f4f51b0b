"""The worker: claims jobs, runs them, records outcomes. Entry point: :class:`Worker`."""

from pgqueue.worker.loop import Worker

__all__ = ["Worker"]
