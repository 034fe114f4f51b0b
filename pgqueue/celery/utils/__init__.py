"""``celery.utils``: the helpers Celery projects import from it (``uuid``)."""

from __future__ import annotations

import uuid as _uuid


def uuid() -> str:
    """A new random task id, as ``celery.utils.uuid()`` gives: pass it as ``task_id=``."""
    return str(_uuid.uuid4())


gen_unique_id = uuid

__all__ = ["gen_unique_id", "uuid"]
