"""``celery.states``: Celery's task state names, and the sets Celery groups them in.

pgqueue's own states (``JobState``) map to these in :mod:`pgqueue.celery.result`:
waiting/queued -> PENDING (RETRY once an attempt failed and another is due),
running -> STARTED with ``track_started=True`` (else PENDING, or the state a
task set with ``update_state``), succeeded -> SUCCESS, failed -> FAILURE,
cancelled -> REVOKED.
"""

from __future__ import annotations

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
REJECTED = "REJECTED"
RETRY = "RETRY"
IGNORED = "IGNORED"

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})
ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED})

# Celery orders states so that a later one is not overwritten by an earlier one;
# unknown (custom) states sit between PENDING and the rest, as in Celery.
PRECEDENCE = [SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING]
_LOOKUP = {state: i for i, state in enumerate(PRECEDENCE)}
_UNKNOWN = PRECEDENCE.index(None)


def precedence(state: str | None) -> int:
    """The state's place in :data:`PRECEDENCE` (lower wins)."""
    return _LOOKUP.get(state, _UNKNOWN)


class state(str):
    """A state that compares by precedence: ``state(SUCCESS) > state(PENDING)``."""

    def __gt__(self, other: object) -> bool:
        return precedence(self) < precedence(str(other))

    def __ge__(self, other: object) -> bool:
        return precedence(self) <= precedence(str(other))

    def __lt__(self, other: object) -> bool:
        return precedence(self) > precedence(str(other))

    def __le__(self, other: object) -> bool:
        return precedence(self) >= precedence(str(other))
