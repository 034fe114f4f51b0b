-- name: register_worker :one
-- A worker's row: what the worker_status view shows.
INSERT INTO {schema}.workers (name, host, pid, queues, pool, concurrency, lease_seconds)
VALUES (%(name)s, %(host)s, %(pid)s, %(queues)s, %(pool)s, %(concurrency)s,
        %(lease_seconds)s)
RETURNING id;

-- name: stop_worker :none
UPDATE {schema}.workers SET stopped_at = now(), heartbeat_at = now() WHERE id = %(worker_id)s;

-- name: backend_pid :one
-- The pid of the server session running this statement. Compared with the pid
-- the connection was given at start-up: a pooler in between (PgBouncer hands out
-- cancel keys of its own) makes them differ. See pgqueue.pooler.
SELECT pg_backend_pid();
