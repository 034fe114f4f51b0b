"""Which Celery apps exist, and the ``@shared_task`` functions each must register.

Kept apart from :mod:`pgqueue.celery.app` and :mod:`pgqueue.celery.shared` so that
both can read it without importing each other.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

lock = threading.Lock()
shared: list[tuple[Callable[..., Any], dict[str, Any]]] = []  # (function, decorator options)
apps: weakref.WeakSet[Any] = weakref.WeakSet()  # every Celery app made
