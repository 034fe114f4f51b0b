"""Applies ``sql/migrations/NNNN_name.sql`` to a schema, forward only.

Pending migrations run in one transaction that first takes a transaction-scoped
advisory lock, so any number of processes may run ``pgq migrate`` at once: one
applies, the others wait and then find nothing to do. Each applied file's
checksum is recorded; if a file changed after it was applied, migrate refuses to
run rather than leave the schema in an unknown shape.

A migration's first comment lines may carry flags (``-- pgqueue: FLAG``):

* ``no-transaction``: for ``CREATE INDEX CONCURRENTLY`` on a big table, which
  Postgres refuses inside a transaction. Its statements run one by one, each on
  its own, under a session advisory lock (so a direct connection, not a
  transaction pooler); it is recorded once the last succeeds, and a failed run is
  re-run whole, so every statement in it must be re-runnable.
* ``breaking``: code older than this migration can't run against the schema it
  leaves. It is recorded in ``schema_migrations.breaking``, so a worker whose
  code predates it refuses to start (:func:`require_compatible`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from pgqueue.client import run
from pgqueue.errors import MigrationError
from pgqueue.sql import queries, sql_dir
from pgqueue.statements import Statement, plain

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
_FLAG = re.compile(r"^--\s*pgqueue:\s*(\S+)\s*$")
FLAGS = frozenset({"breaking", "no-transaction"})


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def flags(self) -> frozenset[str]:
        """The ``-- pgqueue: FLAG`` lines among the comments the file starts with."""
        found = set()
        for line in self.text.splitlines():
            line = line.strip()
            if line and not line.startswith("--"):
                break
            m = _FLAG.match(line)
            if m:
                found.add(m.group(1))
        return frozenset(found)

    @property
    def breaking(self) -> bool:
        return "breaking" in self.flags

    @property
    def transactional(self) -> bool:
        return "no-transaction" not in self.flags


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: dt.datetime | None
    changed: bool


def available(directory: Path | None = None) -> list[Migration]:
    """The migration files, in order (``directory``: another folder of them, for tests)."""
    found = []
    for path in sorted((directory or sql_dir() / "migrations").glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        migration = Migration(int(m.group(1)), m.group(2), path.read_text())
        unknown = migration.flags - FLAGS
        if unknown:
            raise MigrationError(f"{path}: unknown flag '-- pgqueue: {sorted(unknown)[0]}' "
                                 f"(known: {', '.join(sorted(FLAGS))})")
        found.append(migration)
    return found


_Applied = dict[int, tuple[str, str, Any, bool]]


def _applied(conn: psycopg.Connection[Any], schema: str) -> _Applied:
    exists = Statement(
        queries(schema)["migrations_table_exists"],
        {"table_name": f'"{schema}".schema_migrations'},
        lambda rows: bool(rows[0][0]),
    )
    if not run(conn, exists):
        return {}
    rows = run(conn, Statement(queries(schema)["applied_migrations"], {}, lambda r: r))
    return {version: (name, checksum, applied_at, bool(breaking))
            for version, name, checksum, applied_at, breaking in rows}


def status(conn: psycopg.Connection[Any], schema: str) -> list[MigrationStatus]:
    """What is applied and what is pending, without changing anything."""
    applied = _applied(conn, schema)
    out = []
    for m in available():
        row = applied.get(m.version)
        out.append(MigrationStatus(m.version, m.name, row[2] if row else None,
                                   changed=bool(row and row[1] != m.checksum)))
    return out


def _check(known: list[Migration], applied: _Applied) -> None:
    by_version = {m.version: m for m in known}
    for version, (name, checksum, _, _) in sorted(applied.items()):
        m = by_version.get(version)
        if m is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name} applied, which this "
                "version of pgqueue does not know: upgrade pgqueue"
            )
        if m.checksum != checksum:
            raise MigrationError(
                f"migration {m.filename} was changed after it was applied (checksum "
                f"{checksum[:12]} in the database, {m.checksum[:12]} on disk). Migrations "
                "are forward-only: restore the file and put the change in a new migration"
            )


def _record(conn: psycopg.Connection[Any], schema: str, m: Migration) -> None:
    run(conn, plain(schema, "record_migration", version=m.version, name=m.name,
                    checksum=m.checksum, breaking=m.breaking))


def _prepare(conn: psycopg.Connection[Any], schema: str) -> _Applied:
    """In the caller's transaction: lock, make sure the bookkeeping exists, check it."""
    run(conn, plain(schema, "migration_lock", schema_name=schema))
    run(conn, plain(schema, "create_schema"))
    run(conn, plain(schema, "create_migrations_table"))
    run(conn, plain(schema, "add_breaking_column"))
    return _applied(conn, schema)


def migrate(conn: psycopg.Connection[Any], schema: str,
            known: list[Migration] | None = None) -> list[Migration]:
    """Apply pending migrations (of ``known``, default: the package's); returns the
    ones applied by this call."""
    known = available() if known is None else known
    done: list[Migration] = []
    while True:
        outside: Migration | None = None
        with conn.transaction():
            applied = _prepare(conn, schema)
            _check(known, applied)
            for m in (m for m in known if m.version not in applied):
                if not m.transactional:
                    outside = m
                    break
                run(conn, plain(schema, "set_search_path", schema_name=schema))
                with conn.cursor(row_factory=tuple_row) as cur:
                    # No parameters: the file's several statements go as one simple query.
                    cur.execute(m.text.encode(), prepare=False)
                _record(conn, schema, m)
                done.append(m)
        if outside is None:
            return done
        if _apply_outside_transaction(conn, schema, outside):
            done.append(outside)


def _apply_outside_transaction(conn: psycopg.Connection[Any], schema: str,
                               m: Migration) -> bool:
    """Run a ``no-transaction`` migration statement by statement; False if another
    process applied it while we waited for the lock."""
    if not conn.autocommit or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise MigrationError(
            f"migration {m.filename} must run outside a transaction (it builds an index "
            "CONCURRENTLY): migrate on an autocommit connection (pgq migrate does)")
    run(conn, plain(schema, "migration_session_lock", schema_name=schema))
    try:
        if m.version in _applied(conn, schema):
            return False
        path = run(conn, Statement(queries(schema)["current_search_path"], {},
                                   lambda rows: str(rows[0][0])))
        run(conn, plain(schema, "set_session_search_path", schema_name=schema))
        try:
            with conn.cursor(row_factory=tuple_row) as cur:
                for statement in split_statements(m.text):
                    cur.execute(statement.encode(), prepare=False)
        finally:
            run(conn, plain(schema, "restore_search_path", search_path=path))
        _record(conn, schema, m)
        return True
    finally:
        run(conn, plain(schema, "migration_session_unlock", schema_name=schema))


# A statement ends at a semicolon outside quotes, dollar quotes and comments.
_TOKEN = re.compile(r"""--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|(\$\w*\$).*?\1|;""",
                    re.DOTALL)


def split_statements(text: str) -> list[str]:
    """The statements of a migration file, each without its final semicolon."""
    out: list[str] = []
    start = 0
    for token in _TOKEN.finditer(text):
        if token.group(0) == ";":
            out.append(text[start:token.start()])
            start = token.end()
    out.append(text[start:])
    return [s.strip() for s in out if _TOKEN.sub("", s).strip()]


def require_compatible(conn: psycopg.Connection[Any], schema: str) -> None:
    """Refuse to run this code against a schema it doesn't match: one missing
    migrations this code needs, or with a migration marked breaking that is newer
    than this code (newer migrations not marked breaking are fine: the upgrade
    order is migrate first, then roll the workers)."""
    with conn.transaction():
        applied = _applied(conn, schema)
    known = available()
    missing = [m.filename for m in known if m.version not in applied]
    if missing:
        raise MigrationError(
            f"the database schema {schema!r} lacks {len(missing)} migration(s) this version "
            f"of pgqueue needs ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
            ": run `pgq migrate` first")
    newest = max((m.version for m in known), default=0)
    breaking = [f"{v:04d}_{row[0]}" for v, row in sorted(applied.items())
                if v > newest and row[3]]
    if breaking:
        raise MigrationError(
            f"the database schema {schema!r} has migration {breaking[0]} applied, which is "
            "marked breaking and newer than this version of pgqueue: upgrade pgqueue on "
            "this host before starting it")


def migrate_dsn(dsn: str, schema: str, known: list[Migration] | None = None) -> list[Migration]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return migrate(conn, schema, known)


def require_compatible_dsn(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        require_compatible(conn, schema)
