"""Limits as operators type them and as they are read back."""

from __future__ import annotations

import pytest

from pgqueue.limits import concurrency_from_text, describe, rate_from_text


def test_rates_and_concurrency_as_typed():
    assert rate_from_text(" 600/m ") == "600/m"
    assert rate_from_text("none") is None and rate_from_text("None") is None
    assert rate_from_text("") is None
    assert concurrency_from_text("20") == 20 and concurrency_from_text("NONE") is None
    with pytest.raises(ValueError, match="N/s, N/m or N/h"):
        rate_from_text("10")
    with pytest.raises(ValueError, match="1 or more"):
        concurrency_from_text("0")
    with pytest.raises(ValueError, match="how many jobs may run at once"):
        concurrency_from_text("lots")


@pytest.mark.parametrize("rate, window, concurrency, text", [
    (600, 60.0, 20, "at most 600 starts a minute, 20 running at once"),
    (1, 3600.0, None, "at most 1 start an hour"),
    (3, 1.0, None, "at most 3 starts a second"),
    (5, 10.0, None, "at most 5 starts in any 10 seconds"),
    (5, 300.0, None, "at most 5 starts in any 5 minutes"),
    (5, 7200.0, 1, "at most 5 starts in any 2 hours, 1 running at once"),
    (5, 0.5, None, "at most 5 starts in any 0.5 seconds"),
    (None, None, 4, "at most 4 running at once"),
    (None, None, None, "no limits"),
])
def test_limits_in_words(rate, window, concurrency, text):
    assert describe(rate, window, concurrency) == text
