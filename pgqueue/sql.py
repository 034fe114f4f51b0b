"""Loads the named queries in ``sql/queries/*.sql``; the only place SQL text is read.

Each query starts with a header ``-- name: claim_jobs :many`` (``:one``, ``:many``
or ``:none`` says what the caller gets back). ``{schema}`` and the channel names are
identifiers, filled in once per schema with :mod:`psycopg.sql` quoting, never by
string formatting of user input. The result is plain query text, so psycopg can
prepare hot statements on the server.

A query may hold optional parts, between ``-- with: part`` and ``-- end: part``
lines (and what stands in for a part left out, between ``-- without: part`` and
``-- end: part``). ``queries(schema)[name]`` is the query without them and
``variant(schema, name, part, ...)`` the query with those parts: the hot
statements (claim, finish) leave out what most calls don't need, because
Postgres plans them on every call and every common table expression adds to
that planning (a small claim spends more planning than running).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from psycopg import sql

Kind = Literal["one", "many", "none"]

# ":unprepared" marks a query that must always be planned with its actual
# parameters: psycopg prepares a statement after a few runs, and Postgres may
# then switch to a generic plan, which guesses that an unnest() of an array
# parameter yields one row and joins by scanning (seen: 5x slower finishes).
_HEADER = re.compile(r"^-- name: (\w+) :(one|many|none)( :unprepared)?\s*$", re.MULTILINE)
_PART = re.compile(r"^\s*-- (with|without|end): (\w+)\s*$")


@dataclass(frozen=True)
class Query:
    name: str
    kind: Kind
    text: str
    prepare: bool | None = None  # None: psycopg's default (prepare once used often)

    @property
    def read_only(self) -> bool:
        """A plain SELECT: running it twice changes nothing, so a client may retry it
        on a fresh connection when the one it used died."""
        return self.text.lstrip()[:6].upper() == "SELECT" and "pg_notify" not in self.text


def sql_dir() -> Path:
    """Where the SQL files are: inside the installed wheel, or the source tree."""
    packaged = resources.files("pgqueue") / "sql"
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parent.parent / "sql"
    if source.is_dir():
        return source
    raise FileNotFoundError(
        "pgqueue's SQL files are missing (looked in the package and the source tree); "
        "reinstall pgqueue"
    )


def parse(text: str) -> dict[str, tuple[Kind, str, bool]]:
    """Split a queries file into {name: (kind, body, unprepared)}."""
    parts = _HEADER.split(text)
    out: dict[str, tuple[Kind, str, bool]] = {}
    # parts = [preamble, name, kind, unprepared, body, name, kind, unprepared, body, ...]
    for i in range(1, len(parts), 4):
        name, kind, unprepared, body = parts[i], parts[i + 1], parts[i + 2], parts[i + 3]
        if name in out:
            raise ValueError(f"query {name!r} is defined twice")
        out[name] = (kind, body.strip(), bool(unprepared))  # type: ignore[assignment]
    return out


@functools.cache
def _raw_queries() -> dict[str, tuple[Kind, str, bool]]:
    queries: dict[str, tuple[Kind, str, bool]] = {}
    for path in sorted((sql_dir() / "queries").glob("*.sql")):
        for name, value in parse(path.read_text()).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice ({path.name})")
            queries[name] = value
    return queries


def channels(schema: str) -> dict[str, str]:
    """NOTIFY channel names for a schema (also used by the insert trigger)."""
    return {"jobs_channel": f"{schema}.jobs", "done_channel": f"{schema}.done",
            "cancel_channel": f"{schema}.cancel"}


def select_parts(body: str, parts: frozenset[str]) -> str:
    """The body with the optional parts named kept, the others left out, and comment
    lines dropped (they would be sent to the server on every call)."""
    kept: list[str] = []
    open_parts: list[tuple[str, bool]] = []  # (part, whether its lines are kept)
    for line in body.splitlines():
        marker = _PART.match(line)
        if marker is not None:
            what, part = marker.groups()
            if what != "end":
                open_parts.append((part, (part in parts) == (what == "with")))
            elif not open_parts or open_parts.pop()[0] != part:
                raise ValueError(f"'-- end: {part}' closes no '-- with: {part}'")
            continue
        if line.lstrip().startswith("--") or not all(keep for _, keep in open_parts):
            continue
        kept.append(line)
    if open_parts:
        raise ValueError(f"'-- with: {open_parts[-1][0]}' is never ended")
    return "\n".join(kept)


def _idents(schema: str) -> dict[str, sql.Identifier]:
    idents = {"schema": sql.Identifier(schema)}
    idents.update({k: sql.Identifier(v) for k, v in channels(schema).items()})
    return idents


@functools.cache
def queries(schema: str) -> dict[str, Query]:
    """All named queries (without their optional parts), with the schema and channel
    identifiers filled in."""
    idents = _idents(schema)
    out: dict[str, Query] = {}
    for name, (kind, body, unprepared) in _raw_queries().items():
        text = sql.SQL(select_parts(body, frozenset())).format(**idents).as_string(None)
        out[name] = Query(name, kind, text, False if unprepared else None)
    return out


@functools.cache
def _variant(schema: str, name: str, parts: frozenset[str]) -> Query:
    kind, body, unprepared = _raw_queries()[name]
    named = {m.group(2) for m in map(_PART.match, body.splitlines()) if m is not None}
    if not parts <= named:
        raise ValueError(f"query {name!r} has no part {sorted(parts - named)[0]!r}")
    text = sql.SQL(select_parts(body, parts)).format(**_idents(schema)).as_string(None)
    return Query(name, kind, text, False if unprepared else None)


def variant(schema: str, name: str, *parts: str) -> Query:
    """A named query with these optional parts kept (no parts: ``queries(schema)[name]``)."""
    return _variant(schema, name, frozenset(parts)) if parts else queries(schema)[name]
