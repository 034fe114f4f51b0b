"""Upgrading gives the same schema as installing the newest version at once.

For every point k in the migration history: apply 0001..k, put jobs in (in
each state, with results and errors), apply the rest, and compare the catalog
with a database migrated in one go: tables, columns (types, defaults, NOT
NULL), indexes, constraints, views, functions, triggers, sequences, types,
policies, grants and storage options. Also: a no-transaction migration builds
its index CONCURRENTLY, and a breaking one is recorded.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgqueue.migrate import available, migrate_dsn

SCHEMA = "pgqueue"

# Each query returns rows of text, sorted, describing one kind of object in the schema.
CATALOG = {
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence, c.reloptions::text, c.relacl::text,
               c.relrowsecurity, c.relispartition
        FROM pg_class c WHERE c.relnamespace = %(ns)s::regnamespace AND c.relkind <> 'i'""",
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               a.attcollation::regcollation::text, a.attacl::text,
               -- the position among live columns: a SELECT * sees this order
               rank() OVER (PARTITION BY c.oid ORDER BY a.attnum)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = %(ns)s::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')""",
    "indexes": """
        SELECT pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisprimary,
               c.reloptions::text
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relnamespace = %(ns)s::regnamespace""",
    "constraints": """
        SELECT conrelid::regclass::text, contypid::regtype::text, conname,
               pg_get_constraintdef(oid), convalidated, condeferrable
        FROM pg_constraint WHERE connamespace = %(ns)s::regnamespace""",
    "views": """
        SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c
        WHERE c.relnamespace = %(ns)s::regnamespace AND c.relkind IN ('v', 'm')""",
    "functions": """
        SELECT p.oid::regprocedure::text,
               CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END,
               p.proacl::text, p.prosecdef, p.proconfig::text
        FROM pg_proc p WHERE p.pronamespace = %(ns)s::regnamespace""",
    "triggers": """
        SELECT pg_get_triggerdef(t.oid), t.tgenabled FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = %(ns)s::regnamespace AND NOT t.tgisinternal""",
    "sequences": """
        SELECT s.seqrelid::regclass::text, s.seqtypid::regtype::text, s.seqstart,
               s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
        WHERE c.relnamespace = %(ns)s::regnamespace""",
    "types": """
        SELECT t.typname, t.typtype,
               (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                FROM pg_enum e WHERE e.enumtypid = t.oid), t.typacl::text
        FROM pg_type t WHERE t.typnamespace = %(ns)s::regnamespace
          AND t.typtype IN ('e', 'd', 'c')
          AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')""",
    "policies": """
        SELECT pol.polrelid::regclass::text, pol.polname, pol.polcmd, pol.polroles::text,
               pg_get_expr(pol.polqual, pol.polrelid), pg_get_expr(pol.polwithcheck, pol.polrelid)
        FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
        WHERE c.relnamespace = %(ns)s::regnamespace""",
    "schema": """
        SELECT n.nspname, n.nspacl::text, pg_get_userbyid(n.nspowner) FROM pg_namespace n
        WHERE n.oid = %(ns)s::regnamespace""",
    "default privileges": """
        SELECT d.defaclobjtype, d.defaclacl::text FROM pg_default_acl d
        WHERE d.defaclnamespace = %(ns)s::regnamespace""",
    "migrations recorded":
        "SELECT version, name, checksum, breaking FROM pgqueue.schema_migrations",
}


def catalog(db: str | psycopg.Connection) -> dict[str, list[str]]:
    if isinstance(db, str):
        with psycopg.connect(db) as conn:
            return catalog(conn)
    return {kind: sorted(" | ".join(map(str, row)) for row in
                         db.execute(query, {"ns": SCHEMA}).fetchall())  # type: ignore[arg-type]
            for kind, query in CATALOG.items()}


def diff(a: dict[str, list[str]], b: dict[str, list[str]]) -> str:
    """The differences, per kind of object, as a unified diff (empty: the same)."""
    out = []
    for kind in CATALOG:
        lines = difflib.unified_diff(a[kind], b[kind], "upgraded", "fresh", lineterm="", n=0)
        body = [line for line in lines if not line.startswith(("---", "+++", "@@"))]
        if body:
            out.append(f"{kind}:\n  " + "\n  ".join(body))
    return "\n".join(out)



@pytest.fixture(scope="module")
def fresh(pg_server: str, template_db: str) -> dict[str, list[str]]:
    # The template is what every test starts from: all migrations applied in one go.
    return catalog(make_conninfo(pg_server, dbname=template_db))


def put_jobs_in(dsn: str) -> None:
    """Jobs in each state, with results and errors, using 0001's columns only (later
    migrations must cope with the rows that were there)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET search_path = pgqueue")
        conn.execute("""
            INSERT INTO jobs (queue, task, args, kwargs, state, attempts, started_at,
                              finished_at, lease_expires_at, lease)
            SELECT 'q' || (i % 3), 'tasks.t' || (i % 5), jsonb_build_array(i), '{}', s,
                   CASE WHEN s = 'queued' THEN 0 ELSE 1 END,
                   CASE WHEN s <> 'queued' THEN now() END,
                   CASE WHEN s NOT IN ('queued', 'running') THEN now() END,
                   CASE WHEN s = 'running' THEN now() + interval '30 s' END,
                   CASE WHEN s = 'running' THEN gen_random_uuid() END
            FROM generate_series(1, 50) i,
                 unnest('{queued,running,succeeded,failed,cancelled}'::job_state[]) s""")
        conn.execute("INSERT INTO job_results (job_id, value) SELECT id, '{\"ok\": 1}' "
                     "FROM jobs WHERE state = 'succeeded'")
        conn.execute("INSERT INTO job_errors (job_id, attempt, type, message, traceback) "
                     "SELECT id, 1, 'ValueError', 'bad', 'Traceback' FROM jobs "
                     "WHERE state = 'failed'")


def test_the_comparison_reads_every_kind_of_object(fresh):
    assert all(fresh[kind] for kind in
               ("relations", "columns", "indexes", "constraints", "views", "functions",
                "triggers", "types", "migrations recorded")), \
        [kind for kind, rows in fresh.items() if not rows]


STEPS = [m.version for m in available()][:-1]


@pytest.mark.parametrize("k", STEPS, ids=[f"upgrade-from-{k:04d}" for k in STEPS])
def test_upgrading_from_each_version_equals_a_fresh_install(k, empty_db, fresh):
    known = available()
    migrate_dsn(empty_db, SCHEMA, [m for m in known if m.version <= k])
    put_jobs_in(empty_db)
    applied = migrate_dsn(empty_db, SCHEMA)
    assert [m.version for m in applied] == [m.version for m in known if m.version > k]
    differences = diff(catalog(empty_db), fresh)
    assert not differences, f"upgrading from {k:04d} differs from a fresh install:\n" \
                            f"{differences}"


CHANGES = [
    ("ALTER TABLE jobs ALTER COLUMN priority SET DEFAULT 1", "columns"),
    ("DROP INDEX jobs_finished_idx", "indexes"),
    ("ALTER TABLE job_results ALTER COLUMN created_at TYPE timestamp", "columns"),
    ("CREATE OR REPLACE VIEW probe AS SELECT 1 AS one", "views"),
    ("ALTER TABLE jobs ADD CONSTRAINT probe CHECK (priority < 1000)", "constraints"),
    ("REVOKE ALL ON jobs FROM PUBLIC; GRANT SELECT ON jobs TO PUBLIC", "relations"),
    ("ALTER TABLE jobs SET (fillfactor = 90)", "relations"),
    ("CREATE FUNCTION probe() RETURNS int LANGUAGE sql AS 'SELECT 1'", "functions"),
    ("ALTER TABLE jobs DISABLE TRIGGER USER", "triggers"),
    ("ALTER TYPE job_state ADD VALUE 'probe'", "types"),
]


def test_the_comparison_sees_each_kind_of_difference(empty_db, fresh):
    migrate_dsn(empty_db, SCHEMA)
    with psycopg.connect(empty_db) as conn:
        assert diff(catalog(conn), fresh) == ""
        conn.execute("SET search_path = pgqueue")
        for change, expected in CHANGES:
            conn.execute(change)  # type: ignore[arg-type]
            differences = diff(catalog(conn), fresh)
            assert differences.startswith(f"{expected}:") or f"\n{expected}:" in differences, \
                (change, differences)
            conn.rollback()  # undo it before the next change
            conn.execute("SET search_path = pgqueue")


def _with_extra(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for m in available():
        (folder / m.filename).write_text(m.text)
    (folder / name).write_text(text)
    return folder


NO_TRANSACTION = """-- Builds an index on the big table without blocking writes.
-- pgqueue: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS jobs_probe_idx;
CREATE INDEX CONCURRENTLY jobs_probe_idx ON jobs (task) WHERE state = 'failed';
CREATE OR REPLACE FUNCTION probe() RETURNS text LANGUAGE plpgsql AS $$
BEGIN RETURN 'a;b'; END $$;
"""


def test_a_no_transaction_migration_builds_its_index_concurrently(tmp_path, empty_db):
    folder = _with_extra(tmp_path, "9999_probe.sql", NO_TRANSACTION)
    known = available(folder)
    migrate_dsn(empty_db, SCHEMA, known[:-1])
    put_jobs_in(empty_db)
    with psycopg.connect(empty_db) as conn:
        path_before = conn.execute("SHOW search_path").fetchone()
    applied = migrate_dsn(empty_db, SCHEMA, known)
    assert [m.version for m in applied] == [9999]
    assert migrate_dsn(empty_db, SCHEMA, known) == []
    with psycopg.connect(empty_db) as conn:
        valid = conn.execute("SELECT indisvalid FROM pg_index "
                             "WHERE indexrelid = 'pgqueue.jobs_probe_idx'::regclass").fetchone()
        assert valid == (True,)
        assert conn.execute("SELECT pgqueue.probe()").fetchone() == ("a;b",)
        assert conn.execute("SELECT breaking FROM pgqueue.schema_migrations "
                            "WHERE version = 9999").fetchone() == (False,)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        from pgqueue.migrate import migrate

        migrate(conn, SCHEMA, known)  # nothing pending: the caller's session is untouched
        assert conn.execute("SHOW search_path").fetchone() == path_before


def test_a_failed_no_transaction_migration_is_re_run_whole(tmp_path, empty_db):
    bad = NO_TRANSACTION + "SELECT no_such_function();\n"
    folder = _with_extra(tmp_path, "9999_probe.sql", bad)
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate_dsn(empty_db, SCHEMA, available(folder))
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pgqueue.schema_migrations "
                            "WHERE version = 9999").fetchone() == (0,)
        # The lock was released: a transactional migrate does not wait for it.
        conn.execute("SET lock_timeout = '2s'")
        conn.execute("SELECT pg_advisory_xact_lock(7283901, hashtext('pgqueue'))")
    shutil.rmtree(folder)
    folder = _with_extra(tmp_path, "9999_probe.sql", NO_TRANSACTION)
    assert [m.version for m in migrate_dsn(empty_db, SCHEMA, available(folder))] == [9999]


def test_a_breaking_migration_is_recorded_as_such(tmp_path, empty_db):
    folder = _with_extra(tmp_path, "9999_drop.sql", "-- pgqueue: breaking\nSELECT 1;\n")
    migrate_dsn(empty_db, SCHEMA, available(folder))
    with psycopg.connect(empty_db) as conn:
        rows = conn.execute("SELECT version FROM pgqueue.schema_migrations WHERE breaking"
                            ).fetchall()
    assert rows == [(9999,)]
