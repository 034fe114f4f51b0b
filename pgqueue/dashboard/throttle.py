"""Failed logins, counted per client: past a few a minute, the client must wait.

A wrong token on the login form, a wrong bearer token and wrong basic-auth
credentials all count. Past ``MAX_FAILURES`` within ``WINDOW_SECONDS`` every further
attempt from that client is answered 429 with ``Retry-After``, without looking at
what it sent (else the answers would go on telling right from wrong). A session
cookie already earned still works. IPv6 clients are counted per /64, the block
one machine usually holds, so that changing addresses inside it doesn't reset the
count. Kept in memory, per process, like the sessions.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque

MAX_FAILURES = 5
WINDOW_SECONDS = 60.0
MAX_CLIENTS = 10_000


def client_key(address: str | None) -> str:
    """Who is counted: the address, or for IPv6 its /64."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        mapped = getattr(parsed, "ipv4_mapped", None)
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class FailedLogins:
    """Recent failures per client, in a sliding window; safe to share between threads."""

    def __init__(self, most: int = MAX_FAILURES, window: float = WINDOW_SECONDS) -> None:
        self.most = most
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, client: str | None, now: float | None = None) -> int:
        """0 if ``client`` may try, else how many seconds until it may (for Retry-After)."""
        now = time.monotonic() if now is None else now
        key = client_key(client)
        with self._lock:
            recent = self._recent(key, now)
            if recent is None or len(recent) < self.most:
                return 0
            return max(1, math.ceil(recent[-self.most] + self.window - now))

    def failed(self, client: str | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = client_key(client)
        with self._lock:
            if key not in self._failures and len(self._failures) >= MAX_CLIENTS:
                self._forget_quiet(now)
            recent = self._failures.setdefault(key, deque(maxlen=self.most))
            recent.append(now)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        recent = self._failures.get(key)
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if recent is not None and not recent:
            del self._failures[key]
            return None
        return recent

    def _forget_quiet(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        while len(self._failures) >= MAX_CLIENTS:  # all busy: drop the oldest entry
            del self._failures[next(iter(self._failures))]
