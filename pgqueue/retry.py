"""Retry policy of a task: which failures are retried, and after how long. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass

FOREVER = 2**31 - 1  # max_attempts of a job retried forever (the integer column's largest)


@dataclass(frozen=True)
class RetryPolicy:
    """``@app.task(max_retries=3, retry_backoff=True, autoretry_for=(IOError,))``.

    - ``max_retries``: how many times a failed job runs again (0: never; None:
      forever, as in Celery).
    - ``autoretry_for``: the exceptions that are retried; if not given, every
      exception is, once ``max_retries`` > 0. ``self.retry()`` in a bound task
      always asks for a retry, within ``max_retries``.
    - ``retry_backoff``: False waits ``default_retry_delay`` between attempts;
      True (or a number of seconds, the base) doubles the wait each attempt:
      base, 2*base, 4*base... capped at ``retry_backoff_max``.
    - ``retry_jitter``: spreads each wait over [wait/2, wait] so a burst of
      failures does not come back as a burst.
    - ``retry_timeouts``: whether an attempt stopped at its time limit is retried
      like a failure (True), or fails the job (False, as Celery does).
    """

    max_retries: int | None = 0
    autoretry_for: tuple[type[BaseException], ...] | None = None
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    default_retry_delay: float = 3.0
    retry_timeouts: bool = True

    def __post_init__(self) -> None:
        if self.max_retries is not None and (
                isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int)):
            raise TypeError(f"max_retries must be an int or None, not {self.max_retries!r}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more (None: retry forever)")
        if self.retry_backoff_max <= 0 or self.default_retry_delay < 0:
            raise ValueError("retry delays must be positive")

    @property
    def max_attempts(self) -> int:
        """The attempt budget stored with each job (retrying "forever" is a budget no
        job reaches: the largest the column holds)."""
        if self.max_retries is None:
            return FOREVER
        return min(self.max_retries + 1, FOREVER)

    @property
    def retries(self) -> bool:
        """Whether failures are retried at all."""
        return self.max_retries is None or self.max_retries > 0

    def retries_on(self, exc: BaseException) -> bool:
        """Whether this exception asks for a retry (attempts left are checked elsewhere)."""
        if not self.retries:
            return False
        return self.autoretry_for is None or isinstance(exc, self.autoretry_for)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the attempt after ``attempt`` (1-based)."""
        if self.retry_backoff is False:
            wait = self.default_retry_delay
        else:
            base = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
            wait = min(self.retry_backoff_max, base * 2 ** (attempt - 1))
        if self.retry_jitter and wait > 0:
            wait = (rng or random).uniform(wait / 2, wait)
        return wait
