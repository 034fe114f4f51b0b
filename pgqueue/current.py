"""The app a by-name signature uses when it names none: the last one made in this process.

Celery has ``current_app`` for the same reason: ``signature("add", args=(2, 3))``
in a producer that has no task code. Kept apart from :mod:`pgqueue.app` so that
the canvas can read it without importing the App (and its clients).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgqueue.app import App

_current: weakref.ref[App] | None = None


def set_current(app: App) -> None:
    global _current
    _current = weakref.ref(app)


def current() -> App:
    app = _current() if _current is not None else None
    if app is None:
        raise RuntimeError("no pgqueue App exists yet: make one (app = App(...)) or pass "
                           "app=... to signature()")
    return app
