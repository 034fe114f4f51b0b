"""The dashboard's pure parts, without a database: windows, parameters, paths, formats."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl

import pytest

from pgqueue.dashboard import params, windows
from pgqueue.dashboard.paths import local
from pgqueue.dashboard.templating import age, runtime, span
from pgqueue.monitor import Bucket

UTC = dt.UTC


@pytest.mark.parametrize("text, seconds", [("10s", 10), ("5m", 300), ("1h", 3600),
                                           ("24h", 86400), ("7d", 604800), (" 2H ", 7200)])
def test_parse_span(text, seconds):
    assert windows.parse_span(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "1w", "-5m", "1.5h", "9s", "32d"])
def test_parse_span_rejects(text):
    with pytest.raises(ValueError):
        windows.parse_span(text)


def test_bucket_gives_about_sixty_points_in_whole_seconds():
    assert {k: windows.bucket_for(v).total_seconds() for k, v in windows.CHOICES.items()} == {
        "5m": 10, "1h": 60, "24h": 1440, "7d": 10080}
    assert windows.bucket_for(dt.timedelta(seconds=1001)).total_seconds() == 17


def test_poll_slower_for_long_windows():
    assert [windows.poll_seconds(v) for v in windows.CHOICES.values()] == [2, 2, 10, 30]


def test_dense_fills_gaps_with_zeros_on_the_database_grid():
    now = dt.datetime(2026, 1, 1, 12, 0, 35, tzinfo=UTC)
    at = dt.datetime(2026, 1, 1, 11, 59, 0, tzinfo=UTC)
    out = windows.dense([Bucket(at, 3, 1)], dt.timedelta(minutes=5), dt.timedelta(minutes=1),
                        now)
    assert [b.at.strftime("%H:%M") for b in out] == ["11:55", "11:56", "11:57", "11:58",
                                                     "11:59", "12:00"]
    assert [(b.succeeded, b.failed) for b in out] == [(0, 0)] * 4 + [(3, 1), (0, 0)]


def test_job_filters_round_trip_through_the_query_string():
    filters = params.job_filters({"state": "failed", "queue": " emails ", "task": "",
                                  "since": "2026-05-01T13:00", "before_id": "42"})
    assert filters.queue == "emails" and filters.task is None
    assert filters.since == dt.datetime(2026, 5, 1, 13, 0, tzinfo=UTC)
    assert params.job_filters(dict(parse_qsl(filters.query()))) == filters
    assert "before_id=7" in filters.query(before_id=7)


@pytest.mark.parametrize("target, expected", [
    ("/jobs?state=failed", "/jobs?state=failed"), (None, "/"), ("", "/"),
    ("https://evil.example/", "/"), ("//evil.example/", "/"), ("/\\evil.example", "/"),
    ("jobs", "/"), ("/x\r\nSet-Cookie: a=b", "/"),
])
def test_local_keeps_redirects_on_the_dashboard(target, expected):
    assert local(target, "") == expected


def test_local_under_a_root_path():
    assert local("/jobs", "/pgq") == "/pgq/jobs"
    assert local("/pgq/jobs", "/pgq") == "/pgq/jobs"
    assert local("//evil", "/pgq") == "/pgq/"


def test_formats():
    assert [age(s) for s in (None, 0.4, 59, 61, 3600 + 120, 3 * 86400 + 4 * 3600)] == [
        "—", "0s", "59s", "1m 01s", "1h 02m", "3d 04h"]
    assert [runtime(v) for v in (None, 12.34, 1500)] == ["—", "12.3 ms", "1.50 s"]
    assert [span(s) for s in (10, 60, 1440, 3600, 5400, 10080)] == [
        "10 s", "1 min", "24 min", "1 h", "90 min", "2 h 48 min"]
