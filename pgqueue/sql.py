"""Loads the named queries in ``sql/queries/*.sql``; the only place SQL text is read.

Each query starts with a header ``-- name: claim_jobs :many`` (``:one``, ``:many``
or ``:none`` says what the caller gets back). ``{schema}`` and the channel names are
identifiers, filled in once per schema with :mod:`psycopg.sql` quoting, never by
string formatting of user input. The result is plain query text, so psycopg can
prepare hot statements on the server.
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


@functools.cache
def queries(schema: str) -> dict[str, Query]:
    """All named queries, with the schema and channel identifiers filled in."""
    idents = {"schema": sql.Identifier(schema)}
    idents.update({k: sql.Identifier(v) for k, v in channels(schema).items()})
    out: dict[str, Query] = {}
    for name, (kind, body, unprepared) in _raw_queries().items():
        # Drop comment lines: they would be sent to the server on every call.
        code = "\n".join(
            line for line in body.splitlines() if not line.lstrip().startswith("--")
        )
        text = sql.SQL(code).format(**idents).as_string(None)
        out[name] = Query(name, kind, text, False if unprepared else None)
    return out
