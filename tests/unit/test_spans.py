"""One rule for time spans: ``pgq --window``, the dashboard and Monitor.overview agree."""

from __future__ import annotations

import datetime as dt

import click
import pytest

from pgqueue import spans
from pgqueue.cli_monitor import parse_window
from pgqueue.dashboard import windows


@pytest.mark.parametrize("text", ["10s", "5m", "1h", " 24H ", "7d", "31d"])
def test_cli_and_dashboard_read_a_span_alike(text):
    assert parse_window(text) == windows.parse_span(text) == spans.parse_span(text)


@pytest.mark.parametrize("text", ["soon", "1.5h", "9s", "32d", "1w", ""])
def test_cli_refuses_what_the_dashboard_refuses(text):
    with pytest.raises(ValueError):
        windows.parse_span(text)
    with pytest.raises(click.BadParameter, match=r"5m, 1h, 7d|out of range"):
        parse_window(text)


def test_one_bucket_rule():
    assert windows.bucket_for is spans.bucket_for
    assert spans.bucket_for(dt.timedelta(seconds=5)) == dt.timedelta(seconds=10)
    assert spans.bucket_for(dt.timedelta(hours=1)) == dt.timedelta(minutes=1)
