"""The worker: claims jobs, runs them, records outcomes. Entry point: :class:`Worker`.

Only entry points (the CLI, the testing helpers, the integrations) import this
package; producers never do (``tests/unit/test_layers.py`` checks it).
"""

from pgqueue.worker.loop import Worker

__all__ = ["Worker"]
