"""Migrations after the last release may not rewrite or long-lock a big table.

A table that holds a row per job can have tens of millions of rows: a
migration that rewrites it (``ALTER COLUMN ... TYPE``, a volatile default),
scans it under an exclusive lock (``SET NOT NULL``, a constraint validated at
once) or builds an index without ``CONCURRENTLY`` stops every producer and
worker for as long as that takes. Released migrations can't be edited, so they
are exempt; a new one that must break a rule is added to ``ALLOWED`` with why.
See README, "Migrations".
"""

from __future__ import annotations

import re

import pytest

from pgqueue.errors import MigrationError
from pgqueue.migrate import Migration, available, split_statements

# The last migration of the newest release (v0.1.0): these ran on real databases.
RELEASED = 14
# version -> why this migration may break a rule below (none so far).
ALLOWED: dict[int, str] = {}

BIG_TABLES = frozenset({
    "jobs", "job_results", "job_errors", "job_keys", "job_keep", "job_expiry",
    "celery_task_ids", "workflows", "workflow_groups", "workflow_steps", "schedule_ticks",
})
_VOLATILE = r"\b(clock_timestamp|random|gen_random_uuid|uuid_generate_\w+|nextval|timeofday)\s*\("
_NAME = r'(?:"?\w+"?\.)?"?(\w+)"?'


def big(table: str) -> bool:
    return table in BIG_TABLES or table.startswith(("jobs_", "job_"))


def _clean(statement: str) -> str:
    """One line, comments and string literals' contents gone, upper case."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", statement, flags=re.DOTALL)
    text = re.sub(r"'(?:[^']|'')*'", "''", text)
    return " ".join(text.split()).upper()


def _alter_table(table: str, body: str) -> list[str]:
    found = []
    rules = [
        (r"\bALTER (COLUMN )?\S+ (SET DATA )?TYPE\b", "changes a column's type (rewrites it)"),
        (r"\bSET NOT NULL\b", "SET NOT NULL scans it under an exclusive lock (add a "
                              "CHECK (... IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT)"),
        (r"\bSET (TABLESPACE|LOGGED|UNLOGGED|ACCESS METHOD)\b", "rewrites it"),
    ]
    for pattern, why in rules:
        if re.search(pattern, body):
            found.append(f"ALTER TABLE {table}: {why}")
    for add in re.split(r",\s*(?=ADD\b)", body):
        if not add.lstrip().startswith("ADD "):
            continue
        if re.search(_VOLATILE, add, re.IGNORECASE) or re.search(
                r"\b(SMALLSERIAL|BIGSERIAL|SERIAL)\b|\bGENERATED\b", add):
            found.append(f"ALTER TABLE {table}: a column with a volatile default, serial, "
                         "identity or generated value rewrites it")
        if re.search(r"\b(CHECK|FOREIGN KEY|REFERENCES)\b", add) and "NOT VALID" not in add:
            found.append(f"ALTER TABLE {table}: a constraint checked at once scans it under "
                         "lock (add it NOT VALID, then VALIDATE CONSTRAINT)")
        if re.search(r"\b(PRIMARY KEY|UNIQUE|EXCLUDE)\b", add) and "USING INDEX" not in add:
            found.append(f"ALTER TABLE {table}: builds an index under lock (CREATE UNIQUE "
                         "INDEX CONCURRENTLY, then ADD ... USING INDEX)")
    return found


def violations(m: Migration) -> list[str]:
    """What in this migration would rewrite or long-lock a big table."""
    found: list[str] = []
    dropped: set[str] = set()
    created: set[str] = set()  # new in this file, so still empty: nothing to rewrite
    for raw in split_statements(m.text):
        s = _clean(raw)
        table = re.match(rf"CREATE (?:UNLOGGED )?TABLE (?:IF NOT EXISTS )?{_NAME}", s)
        if table:
            created.add(table.group(1).lower())
        alter = re.match(rf"ALTER TABLE (?:IF EXISTS )?(?:ONLY )?{_NAME} (.*)", s)
        if alter and big(alter.group(1).lower()) and alter.group(1).lower() not in created:
            found += _alter_table(alter.group(1).lower(), alter.group(2))
        if re.match(r"(CLUSTER|VACUUM \(?FULL)\b", s):
            found.append(f"{s.split()[0]} rewrites tables")
        if s.startswith("REINDEX") and "CONCURRENTLY" not in s:
            found.append("REINDEX without CONCURRENTLY locks the table")
        drop = re.match(rf"DROP INDEX (CONCURRENTLY )?(?:IF EXISTS )?{_NAME}", s)
        if drop:
            name = drop.group(2).lower()
            dropped.add(name)
            if not drop.group(1) and big(name):
                found.append(f"DROP INDEX {name}: use DROP INDEX CONCURRENTLY (no-transaction)")
        index = re.match(rf"CREATE (?:UNIQUE )?INDEX (CONCURRENTLY )?(?:IF NOT EXISTS )?"
                         rf"{_NAME} ON (?:ONLY )?{_NAME}", s)
        if index and big(index.group(3).lower()) and index.group(3).lower() not in created:
            concurrently, name, table = index.group(1), index.group(2).lower(), index.group(3)
            if not concurrently:
                found.append(f"CREATE INDEX {name} on {table.lower()}: build it CONCURRENTLY")
            elif m.transactional:
                found.append(f"CREATE INDEX CONCURRENTLY {name}: the file needs the header "
                             "'-- pgqueue: no-transaction'")
            elif name not in dropped:
                found.append(f"CREATE INDEX CONCURRENTLY {name}: precede it with DROP INDEX "
                             f"CONCURRENTLY IF EXISTS {name} (a failed build leaves an "
                             "invalid index, and the file is re-run whole)")
    return found


def test_migrations_after_the_release_leave_big_tables_alone():
    new = [m for m in available() if m.version > RELEASED and m.version not in ALLOWED]
    found = {m.filename: v for m in new if (v := violations(m))}
    assert not found, f"see README 'Migrations' for the rules: {found}"


def test_released_migrations_are_still_there():
    # RELEASED is what the exemption hangs on: the released files must all exist.
    assert {m.version for m in available()} >= set(range(1, RELEASED + 1))


def _m(text: str) -> Migration:
    return Migration(99, "probe", text)


@pytest.mark.parametrize("text", [
    "ALTER TABLE jobs ALTER COLUMN priority TYPE integer;",
    "alter table pgqueue.jobs alter priority set data type bigint",
    "ALTER TABLE jobs ADD COLUMN token uuid DEFAULT gen_random_uuid();",
    "ALTER TABLE job_errors ADD COLUMN n bigserial;",
    "ALTER TABLE jobs ADD COLUMN s text GENERATED ALWAYS AS (task || queue) STORED;",
    "ALTER TABLE jobs ALTER COLUMN lease SET NOT NULL;",
    "ALTER TABLE jobs ADD CONSTRAINT c CHECK (priority > -100);",
    "ALTER TABLE job_results ADD FOREIGN KEY (job_id) REFERENCES jobs (id);",
    "ALTER TABLE jobs ADD CONSTRAINT u UNIQUE (lease);",
    "ALTER TABLE ONLY jobs SET UNLOGGED;",
    "CREATE INDEX jobs_task_idx ON jobs (task);",
    "CREATE UNIQUE INDEX IF NOT EXISTS job_keys_x ON job_keys (key);",
    "CREATE INDEX CONCURRENTLY jobs_task_idx ON jobs (task);",  # inside a transaction
    "-- pgqueue: no-transaction\nCREATE INDEX CONCURRENTLY jobs_task_idx ON jobs (task);",
    "DROP INDEX jobs_claim_idx;",
    "REINDEX TABLE jobs;",
    "VACUUM FULL jobs;",
    "CLUSTER jobs USING jobs_pkey;",
])
def test_each_rule_catches_its_statement(text):
    assert violations(_m(text)), text


@pytest.mark.parametrize("text", [
    "ALTER TABLE jobs ADD COLUMN note text;",
    "ALTER TABLE jobs ADD COLUMN seen timestamptz NOT NULL DEFAULT now(), "
    "ADD COLUMN tries integer NOT NULL DEFAULT 0;",
    "ALTER TABLE jobs ADD CONSTRAINT c CHECK (priority > -100) NOT VALID;",
    "ALTER TABLE jobs VALIDATE CONSTRAINT c;",
    "ALTER TABLE jobs ADD CONSTRAINT u UNIQUE USING INDEX jobs_lease_idx;",
    "ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01);",
    "ALTER TABLE queues ALTER COLUMN rate TYPE bigint;",  # a small table
    "CREATE INDEX queues_x ON queues (name);",
    "CREATE TABLE job_notes (id bigint, n text); CREATE INDEX job_notes_idx ON job_notes (n);"
    "ALTER TABLE job_notes ALTER n TYPE varchar;",
    "CREATE TABLE queue_notes (id bigint); CREATE INDEX n_idx ON queue_notes (id);",
    "-- pgqueue: no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS jobs_task_idx;\n"
    "CREATE INDEX CONCURRENTLY jobs_task_idx ON jobs (task);\n"
    "DROP INDEX CONCURRENTLY IF EXISTS jobs_old_idx;",
    "COMMENT ON TABLE jobs IS 'ALTER TABLE jobs ALTER priority TYPE int';",
])
def test_what_the_rules_let_through(text):
    assert violations(_m(text)) == [], text


def test_flags_are_read_from_the_leading_comments_only():
    m = _m("-- why this migration exists\n-- pgqueue: breaking\n--pgqueue: no-transaction\n"
           "SELECT 1;\n-- pgqueue: nonsense\n")
    assert m.flags == {"breaking", "no-transaction"}
    assert m.breaking and not m.transactional
    assert _m("SELECT 1;").flags == frozenset()


def test_an_unknown_flag_is_refused(tmp_path):
    (tmp_path / "0001_x.sql").write_text("-- pgqueue: no-transactions\nSELECT 1;\n")
    with pytest.raises(MigrationError, match=r"unknown flag.*no-transactions"):
        available(tmp_path)


def test_statements_split_outside_quotes_and_comments():
    text = """-- a; comment
CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $body$ BEGIN RETURN 'a;b'; END $body$;
/* block; comment */ SELECT 'it''s; fine', "odd;name" FROM t;
SELECT $$;$$;
-- trailing comment only
"""
    parts = split_statements(text)
    assert len(parts) == 3
    assert parts[0].endswith("END $body$") and parts[2] == "SELECT $$;$$"
