"""Applies ``sql/migrations/NNNN_name.sql`` to a schema, forward only.

All pending migrations run in one transaction that first takes a
transaction-scoped advisory lock, so any number of processes may run
``pgq migrate`` at once: one applies, the others wait and then find nothing to
do. Each applied file's checksum is recorded; if a file changed after it was
applied, migrate refuses to run rather than leave the schema in an unknown shape.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from pgqueue.client import run
from pgqueue.errors import MigrationError
from pgqueue.sql import queries, sql_dir
from pgqueue.statements import Statement, plain

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


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


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: dt.datetime | None
    changed: bool


def available() -> list[Migration]:
    found = []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text()))
    return found


def _applied(conn: psycopg.Connection[Any], schema: str) -> dict[int, tuple[str, str, Any]]:
    exists = Statement(
        queries(schema)["migrations_table_exists"],
        {"table_name": f'"{schema}".schema_migrations'},
        lambda rows: bool(rows[0][0]),
    )
    if not run(conn, exists):
        return {}
    rows = run(conn, Statement(queries(schema)["applied_migrations"], {}, lambda r: r))
    return {version: (name, checksum, applied_at) for version, name, checksum, applied_at in rows}


def status(conn: psycopg.Connection[Any], schema: str) -> list[MigrationStatus]:
    """What is applied and what is pending, without changing anything."""
    applied = _applied(conn, schema)
    out = []
    for m in available():
        row = applied.get(m.version)
        out.append(MigrationStatus(m.version, m.name, row[2] if row else None,
                                   changed=bool(row and row[1] != m.checksum)))
    return out


def _check(known: list[Migration], applied: dict[int, tuple[str, str, Any]]) -> None:
    by_version = {m.version: m for m in known}
    for version, (name, checksum, _) in sorted(applied.items()):
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


def migrate(conn: psycopg.Connection[Any], schema: str) -> list[Migration]:
    """Apply pending migrations; returns the ones applied by this call."""
    known = available()
    done: list[Migration] = []
    with conn.transaction():
        run(conn, plain(schema, "migration_lock", schema_name=schema))
        run(conn, plain(schema, "create_schema"))
        run(conn, plain(schema, "create_migrations_table"))
        applied = _applied(conn, schema)
        _check(known, applied)
        for m in known:
            if m.version in applied:
                continue
            run(conn, plain(schema, "set_search_path", schema_name=schema))
            with conn.cursor(row_factory=tuple_row) as cur:
                # No parameters: the file's several statements go as one simple query.
                cur.execute(m.text.encode(), prepare=False)
            run(conn, plain(schema, "record_migration", version=m.version, name=m.name,
                            checksum=m.checksum))
            done.append(m)
    return done


def migrate_dsn(dsn: str, schema: str) -> list[Migration]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return migrate(conn, schema)
