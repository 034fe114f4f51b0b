-- Least-privilege roles (pgq roles create): what follows a job's state change is
-- the schema's own bookkeeping, so it runs as the schema's owner. A producer that
-- cancels a workflow step then needs no rights to cancel its dependents or write
-- their errors, nor to release a unique key; a worker none beyond its own.
-- SECURITY DEFINER is safe here: the function pins its search_path (SET
-- search_path FROM CURRENT, migration 0013), and a trigger function can't be
-- called directly, only fired by an UPDATE the caller was allowed to make.
-- A later migration that replaces this function must say SECURITY DEFINER again
-- (tests/integration/test_roles.py checks).
ALTER FUNCTION job_state_followed() SECURITY DEFINER;
