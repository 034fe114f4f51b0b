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

-- name: applied_migrations :many
SELECT version, name, checksum, applied_at FROM {schema}.schema_migrations ORDER BY version;

-- name: migrations_table_exists :one
SELECT to_regclass(%(table_name)s) IS NOT NULL;

-- name: record_migration :none
INSERT INTO {schema}.schema_migrations (version, name, checksum)
VALUES (%(version)s, %(name)s, %(checksum)s);

-- name: set_search_path :none
-- Migrations are written without a schema name; this points them at ours for
-- this transaction only.
SELECT set_config('search_path', quote_ident(%(schema_name)s), true);
