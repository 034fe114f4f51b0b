"""The encoding's promise holds through Postgres: jsonb stores what dumps writes, and
gives back text loads turns into the same value (jsonb rewrites numbers and key order)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings

from pgqueue import encoding
from tests.unit.test_encoding_properties import _keys, _trees, same, storable_leaves


@pytest.fixture(scope="module")
def conn(pg_server: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_server, autocommit=True) as connection:
        yield connection


def through_jsonb(conn: psycopg.Connection[Any], text: str) -> str:
    row = conn.execute("SELECT %s::jsonb::text", (text,)).fetchone()
    assert row is not None
    return str(row[0])


@settings(max_examples=150, deadline=None)
@given(_trees(storable_leaves, _keys))
def test_storable_values_round_trip_through_jsonb(conn: psycopg.Connection[Any],
                                                  value: Any) -> None:
    assert same(value, encoding.loads(through_jsonb(conn, encoding.dumps(value))), jsonb=True)


@pytest.mark.parametrize("value", [1e16, -1.5e300, 1.7976931348623157e308, 1e-7, 5e-324])
def test_big_and_small_floats_stay_floats_through_jsonb(conn: psycopg.Connection[Any],
                                                        value: float) -> None:
    back = encoding.loads(through_jsonb(conn, encoding.dumps([value])))[0]
    assert type(back) is float and back == value


@pytest.mark.parametrize("text", ['"a\\u0000b"', '"\ud800"'])
def test_postgres_refuses_what_dumps_refuses(conn: psycopg.Connection[Any], text: str) -> None:
    """Why dumps refuses NUL and lone surrogates: Postgres would fail the write."""
    with pytest.raises((psycopg.DataError, UnicodeEncodeError)):
        through_jsonb(conn, text)
    with pytest.raises(encoding.UnstorableValue):
        encoding.dumps([encoding.loads(text) if "u0000" in text else "\ud800"])
