"""Login sessions, kept in the dashboard process's memory so logging out ends them.

The browser's cookie holds a random id (256 bits) and nothing else; the server keeps
a hash of it with its expiry. Logging out deletes it here, so the cookie is worth
nothing afterwards, even to someone who copied it. What follows from keeping them in
memory, and is documented: a restart of the dashboard logs everyone out, and each
dashboard process has sessions of its own (behind a balancer over several processes,
use sticky sessions, or bearer or basic auth, which need no session).

No table holds them because a session is worth less than a migration: a login lost
with a restart costs one more paste of the token.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000  # only a right token makes one; the cap bounds memory regardless


def _key(session_id: str) -> bytes:
    # Stored hashed: a lookup's timing then says nothing about the id, and a memory
    # dump of the dashboard holds no usable cookie.
    return hashlib.sha256(session_id.encode("utf-8", "replace")).digest()


class Sessions:
    """Live session ids and when each ends; safe to share between threads."""

    def __init__(self, seconds: float = SESSION_SECONDS, most: int = MAX_SESSIONS) -> None:
        self.seconds = seconds
        self.most = most
        self._ends: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def new(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._ends) >= self.most:
                self._forget_expired(now)
            while len(self._ends) >= self.most:  # still full: the oldest goes
                del self._ends[next(iter(self._ends))]
            self._ends[_key(session_id)] = now + self.seconds
        return session_id

    def valid(self, session_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        key = _key(session_id)
        with self._lock:
            ends = self._ends.get(key)
            if ends is not None and ends <= now:
                del self._ends[key]
                return False
            return ends is not None

    def end(self, session_id: str) -> None:
        with self._lock:
            self._ends.pop(_key(session_id), None)

    def __len__(self) -> int:
        return len(self._ends)

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, ends in self._ends.items() if ends <= now]:
            del self._ends[key]
