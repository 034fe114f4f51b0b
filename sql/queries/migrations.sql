-- name: migration_lock :none
-- Transaction-scoped: released at COMMIT or ROLLBACK, even if the process dies.
-- Keyed on the schema name so two schemas migrate independently.
SELECT pg_advisory_xact_lock(7283901, hashtext(%(schema_name)s));

-- name: create_schema :none
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: create_migrations_table :none
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: add_breaking_column :none
-- Added after 0.1.0, whose migrate creates the table without it (and leaves it
-- false when it records a migration: 0.1.0 knows no breaking ones).
ALTER TABLE {schema}.schema_migrations
    ADD COLUMN IF NOT EXISTS breaking boolean NOT NULL DEFAULT false;

-- name: applied_migrations :many
-- A database created by 0.1.0 and not migrated since has no breaking column.
SELECT version, name, checksum, applied_at, COALESCE(
           (to_jsonb(m) ->> 'breaking')::boolean, false)
FROM {schema}.schema_migrations AS m ORDER BY version;

-- name: migrations_table_exists :one
SELECT to_regclass(%(table_name)s) IS NOT NULL;

-- name: record_migration :none
INSERT INTO {schema}.schema_migrations (version, name, checksum, breaking)
VALUES (%(version)s, %(name)s, %(checksum)s, %(breaking)s);

-- name: set_search_path :none
-- Migrations are written without a schema name; this points them at ours for
-- this transaction only.
SELECT set_config('search_path', quote_ident(%(schema_name)s), true);

-- name: migration_session_lock :none
-- For a no-transaction migration: the same key as migration_lock, so it also
-- waits for (and holds off) every transactional migrate of this schema.
SELECT pg_advisory_lock(7283901, hashtext(%(schema_name)s));

-- name: migration_session_unlock :none
SELECT pg_advisory_unlock(7283901, hashtext(%(schema_name)s));

-- name: current_search_path :one
SELECT current_setting('search_path');

-- name: set_session_search_path :none
-- A no-transaction migration's statements each commit alone, so the path is
-- set for the session, and restored afterwards (restore_search_path).
SELECT set_config('search_path', quote_ident(%(schema_name)s), false);

-- name: restore_search_path :none
SELECT set_config('search_path', %(search_path)s, false);
