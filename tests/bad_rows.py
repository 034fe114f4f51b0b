"""Rows a producer can't write but SQL can, for the tests that check that monitoring
(``pgq status``/``jobs``, the dashboard, /metrics) keeps answering over them."""

from __future__ import annotations

import json
from typing import Any

import psycopg

DEEP = "[" * 3000 + "]" * 3000  # deeper than Python's json parser will go
HUGE_CHARS = 300_000


def _job(conn: psycopg.Connection[Any], *, args: str = "[]", kwargs: str = "{}",
         state: str = "queued", **columns: Any) -> int:
    names = ["queue", "task", "args", "kwargs", "state", *columns]
    marks = ["%s"] * len(names)
    if state in ("succeeded", "failed"):  # finished a second ago, as a worker would leave it
        names += ["started_at", "finished_at"]
        marks += ["now() - interval '1 second'", "now()"]
    row = conn.execute(f"INSERT INTO pgqueue.jobs ({', '.join(names)}) "
                       f"VALUES ({', '.join(marks)}) RETURNING id",
                       ["default", "add", args, kwargs, state, *columns.values()]).fetchone()
    assert row is not None
    return int(row[0])


def _result(conn: psycopg.Connection[Any], value: str) -> int:
    job_id = _job(conn, state="succeeded")
    conn.execute("INSERT INTO pgqueue.job_results (job_id, value) VALUES (%s, %s)",
                 (job_id, value))
    return job_id


def insert_bad_rows(dsn: str) -> dict[str, int]:
    """One job per kind of bad row; returns {kind: job id}."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            "run_at_infinity": _job(conn, run_at="infinity"),
            "run_at_minus_infinity": _job(conn, run_at="-infinity"),
            "attempts_max": _job(conn, state="failed", attempts=2**31 - 1),
            "deep_headers": _job(conn, headers=DEEP),
            "args_dict": _job(conn, args='{"a": 1}'),
            "args_null": _job(conn, args="null"),
            "args_bad_tag": _job(conn, args='[{"$uuid": "not-a-uuid"}]'),
            "kwargs_list": _job(conn, kwargs="[1, 2]"),
            "result_date_tag": _result(conn, '{"$date": "x"}'),
            "result_decimal_tag": _result(conn, '{"$decimal": "abc"}'),
            "result_deep": _result(conn, DEEP),
            # Too deep to decode, and too long to show whole.
            "result_huge_bad": _result(conn, "[" * 2000 + json.dumps("x" * HUGE_CHARS)
                                       + "]" * 2000),
            "result_huge": _result(conn, json.dumps(["y" * HUGE_CHARS])),
        }


# A tag that doesn't parse ({"$date": "x"}) can only be a plain dict an older
# encoder stored, so it decodes as that dict: those rows are not raw.
RAW = {"args_dict", "args_null", "kwargs_list", "result_deep", "result_huge_bad"}
