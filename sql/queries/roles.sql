-- Least-privilege roles (pgq roles create; README "Security: roles, limits and
-- secrets" has the same statements to run by hand). The three roles are NOLOGIN
-- groups, cluster-wide like every role: a login user is granted one
-- (GRANT pgqueue_worker TO app_worker). Every statement here is safe to run again,
-- and running them again after `pgq migrate` grants on the tables it added.
-- Triggers that follow a job's state (workflows, unique keys) run as the schema's
-- owner (migration 0015), so a role needs no rights on the tables they touch.

-- name: roles_present :many
SELECT rolname FROM pg_roles
WHERE rolname IN ('pgqueue_producer', 'pgqueue_worker', 'pgqueue_monitor')
ORDER BY rolname;

-- name: create_roles :none
-- CREATE ROLE has no IF NOT EXISTS; a role made by hand (or another schema's run)
-- is kept as it is.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgqueue_producer') THEN
        CREATE ROLE pgqueue_producer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgqueue_worker') THEN
        CREATE ROLE pgqueue_worker NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgqueue_monitor') THEN
        CREATE ROLE pgqueue_monitor NOLOGIN;
    END IF;
END
$$;

-- name: grant_usage :none
-- Reaching the schema's objects at all; CREATE on it stays with its owner.
GRANT USAGE ON SCHEMA {schema} TO pgqueue_producer, pgqueue_worker, pgqueue_monitor;

-- name: grant_read :none
-- Everyone reads everything: the dashboard, /metrics and `pgq status` read every
-- table and view; a producer reads its jobs' state, results, workflows and unique
-- keys. (Jobs' arguments and results are readable by all three: keep secrets out
-- of arguments.)
GRANT SELECT ON ALL TABLES IN SCHEMA {schema}
TO pgqueue_producer, pgqueue_worker, pgqueue_monitor;

-- name: grant_producer :none
-- Enqueueing writes jobs and what comes with them: an expiry, a unique key (taken
-- over with ON CONFLICT DO UPDATE once free), a workflow's rows, a Celery task id.
GRANT INSERT ON {schema}.jobs, {schema}.job_expiry, {schema}.workflows,
                {schema}.workflow_groups, {schema}.workflow_steps
TO pgqueue_producer;

-- name: grant_producer_upserts :none
GRANT INSERT, UPDATE ON {schema}.job_keys, {schema}.celery_task_ids TO pgqueue_producer;

-- name: grant_producer_cancel :none
-- Cancelling a job (JobResult.cancel, the dashboard's Cancel) sets these three
-- columns and no others: a producer can't claim a job, extend a lease, or write a
-- result, an error, a schedule or a queue's settings.
GRANT UPDATE (state, cancel_requested, finished_at) ON {schema}.jobs TO pgqueue_producer;

-- name: grant_sequences :none
-- Ids: enqueueing draws them ahead (nextval) for unique jobs and workflows.
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO pgqueue_producer, pgqueue_worker;

-- name: grant_sequences_read :none
-- /metrics counts jobs ever enqueued by the jobs' id sequence (last_value); SELECT
-- on a sequence reads it and can't draw from it.
GRANT SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO pgqueue_monitor;

-- name: grant_monitor_stats :none
-- The xmin-horizon report (pgq status, the dashboard, /metrics) reads other roles'
-- sessions in pg_stat_activity, which show their xact_start and backend_xmin only to
-- pg_read_all_stats. Granting it needs a superuser (or its admin option): without
-- one, the report shows only the monitor's own sessions, and this says so.
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE WITH ADMIN OPTION') THEN
        GRANT pg_read_all_stats TO pgqueue_monitor;
    ELSE
        RAISE NOTICE 'pg_read_all_stats not granted to pgqueue_monitor (needs a superuser): '
                     'the xmin-horizon report will show only its own sessions';
    END IF;
END $$;

-- name: grant_worker :none
-- A worker claims, heartbeats, records outcomes and runs the maintenance (rescue,
-- expiry, pruning of every table), the scheduler (--beat) and limits: it writes
-- nearly every table, so it is given them all but the migrations ledger (below).
-- No TRUNCATE, REFERENCES or TRIGGER, and no CREATE anywhere.
GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO pgqueue_worker;

-- name: revoke_worker_ledger :none
-- Only `pgq migrate` (the schema's owner) records migrations.
REVOKE INSERT, UPDATE, DELETE ON {schema}.schema_migrations FROM pgqueue_worker;

-- name: grant_functions :none
-- claim_limited() and the workflow helpers; EXECUTE is PUBLIC's by default, granted
-- here in case a database revoked that.
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO pgqueue_worker;

-- name: role_grants :many
-- What the roles may now do in the schema, for `pgq roles create` to print.
SELECT grantee, privilege_type, count(DISTINCT table_name)
FROM information_schema.role_table_grants
WHERE table_schema = %(schema_name)s
  AND grantee IN ('pgqueue_producer', 'pgqueue_worker', 'pgqueue_monitor')
GROUP BY grantee, privilege_type
ORDER BY grantee, array_position(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
                                 privilege_type::text);
