-- name: sync_schedule :none
-- Code-declared schedules are upserted at scheduler start. What operators
-- change at run time (paused) and the tick history are left alone; a changed
-- rule restarts counting from now, so a new rule never fires its "missed" past.
-- A row the code rewrites is valid again, so its stored error goes.
INSERT INTO {schema}.schedules AS s (name, task, cron, every_seconds, tz, args, kwargs, queue,
                                     priority, max_attempts, catch_up, catch_up_window)
VALUES (%(name)s, %(task)s, %(cron)s, %(every_seconds)s, %(tz)s, %(args)s::jsonb,
        %(kwargs)s::jsonb, %(queue)s, %(priority)s, %(max_attempts)s, %(catch_up)s,
        %(catch_up_window)s)
ON CONFLICT (name) DO UPDATE
SET task = excluded.task, args = excluded.args, kwargs = excluded.kwargs,
    queue = excluded.queue, priority = excluded.priority,
    max_attempts = excluded.max_attempts, catch_up = excluded.catch_up,
    catch_up_window = excluded.catch_up_window,
    cron = excluded.cron, every_seconds = excluded.every_seconds, tz = excluded.tz,
    anchor_at = CASE WHEN (s.cron, s.every_seconds, s.tz)
                          IS DISTINCT FROM (excluded.cron, excluded.every_seconds, excluded.tz)
                     THEN now() ELSE s.anchor_at END,
    error = NULL, error_at = NULL,
    updated_at = now()
WHERE (s.task, s.args, s.kwargs, s.queue, s.priority, s.max_attempts, s.catch_up,
       s.catch_up_window, s.cron, s.every_seconds, s.tz)
      IS DISTINCT FROM
      (excluded.task, excluded.args, excluded.kwargs, excluded.queue, excluded.priority,
       excluded.max_attempts, excluded.catch_up, excluded.catch_up_window, excluded.cron,
       excluded.every_seconds, excluded.tz);

-- name: fire_ticks :many
-- Enqueue each (schedule, fire time) at most once: the tick row is inserted
-- first, with the job's id drawn in advance, and the job is written only for
-- ticks that were new. A tick another scheduler already fired is skipped. A
-- schedule whose args or kwargs no job could carry (edited by hand since it was
-- checked) is left out, unadvanced, so it can't fail the statement for the others.
WITH wanted AS (
    SELECT w.name, w.fire_at
    FROM unnest(%(names)s::text[], %(fire_ats)s::timestamptz[]) AS w(name, fire_at)
    JOIN {schema}.schedules s ON s.name = w.name
    WHERE jsonb_typeof(s.args) = 'array' AND jsonb_typeof(s.kwargs) = 'object'
),
ticks AS (
    INSERT INTO {schema}.schedule_ticks (schedule, fire_at, job_id)
    SELECT w.name, w.fire_at, nextval(pg_get_serial_sequence(%(jobs_table)s, 'id'))
    FROM wanted w
    ORDER BY w.fire_at
    ON CONFLICT (schedule, fire_at) DO NOTHING
    RETURNING schedule, fire_at, job_id
),
jobs AS (
    INSERT INTO {schema}.jobs (id, queue, task, priority, max_attempts, args, kwargs)
    OVERRIDING SYSTEM VALUE
    SELECT t.job_id, s.queue, s.task, s.priority, s.max_attempts, s.args, s.kwargs
    FROM ticks t JOIN {schema}.schedules s ON s.name = t.schedule
    RETURNING id
),
advanced AS (
    UPDATE {schema}.schedules s
    SET last_fire_at = greatest(s.last_fire_at, w.latest)
    FROM (SELECT name, max(fire_at) AS latest FROM wanted GROUP BY name) AS w
    WHERE s.name = w.name
)
SELECT t.schedule, t.fire_at, t.job_id FROM ticks t JOIN jobs j ON j.id = t.job_id;

-- name: schedule_states :many
-- What the leader needs to work out due ticks, with the database's clock. What
-- Python can't read (a non-finite time) or no job could carry (args that are not
-- a list) comes back as a problem for that row, so one bad row can't fail the
-- read for every other schedule; rules and time zones are checked in Python.
SELECT name, cron, every_seconds, tz, catch_up, catch_up_window, paused,
       CASE WHEN isfinite(coalesce(last_fire_at, anchor_at))
            THEN coalesce(last_fire_at, anchor_at) END,
       now(),
       CASE WHEN jsonb_typeof(args) <> 'array'
            THEN 'args must be a JSON array (the positional arguments), not '
                 || jsonb_typeof(args)
            WHEN jsonb_typeof(kwargs) <> 'object'
            THEN 'kwargs must be a JSON object (the keyword arguments), not '
                 || jsonb_typeof(kwargs)
            WHEN every_seconds IN ('NaN', 'Infinity')
                 OR catch_up_window IN ('NaN', 'Infinity', '-Infinity')
            THEN 'every_seconds and catch_up_window must be finite numbers of seconds'
            WHEN NOT isfinite(coalesce(last_fire_at, anchor_at))
            THEN 'last_fire_at/anchor_at must be a finite time, not '
                 || coalesce(last_fire_at, anchor_at)::text
       END
FROM {schema}.schedules
ORDER BY name;

-- name: record_schedule_checks :none
-- After each run the leader stores every schedule's next fire time, or the
-- error that made it skip the schedule. A row is written only when either
-- changed, and error_at keeps the time the error was first seen.
UPDATE {schema}.schedules s
SET next_fire_at = coalesce(c.next_fire_at, s.next_fire_at),
    error = c.error,
    error_at = CASE WHEN c.error IS NULL THEN NULL
                    WHEN c.error IS NOT DISTINCT FROM s.error THEN s.error_at
                    ELSE now() END
FROM unnest(%(names)s::text[], %(next_fire_ats)s::timestamptz[], %(errors)s::text[])
     AS c(name, next_fire_at, error)
WHERE s.name = c.name
  AND (coalesce(c.next_fire_at, s.next_fire_at), c.error)
      IS DISTINCT FROM (s.next_fire_at, s.error);

-- name: delete_schedule :one
-- A schedule the code no longer declares; its tick records go with the pruning.
DELETE FROM {schema}.schedules WHERE name = %(name)s RETURNING name;

-- name: prune_schedules :many
-- `pgq beat --prune-schedules`: every stored schedule the running code doesn't
-- declare goes (only safe when every scheduler runs the same code).
DELETE FROM {schema}.schedules WHERE NOT (name = ANY(%(keep)s::text[])) RETURNING name;

-- name: pause_schedule :one
UPDATE {schema}.schedules SET paused = true, updated_at = now()
WHERE name = %(name)s RETURNING name;

-- name: resume_schedule :one
-- Ticks that fell while paused are not caught up: counting restarts now.
UPDATE {schema}.schedules
SET paused = false, anchor_at = now(), last_fire_at = NULL, updated_at = now()
WHERE name = %(name)s RETURNING name;

-- name: trigger_schedule :one
-- Run a schedule's task now, outside its ticks.
INSERT INTO {schema}.jobs (queue, task, priority, max_attempts, args, kwargs)
SELECT queue, task, priority, max_attempts, args, kwargs
FROM {schema}.schedules WHERE name = %(name)s
RETURNING id;

-- name: leader_lock :one
-- Session-level: held for as long as the leader's connection lives, released
-- by Postgres the moment that connection dies.
SELECT pg_try_advisory_lock(7283902, hashtext(%(schema_name)s));

-- name: leader_session :none
-- A leader that stops talking (paused, partitioned) loses its session, and so
-- the lock, after this long; a live one speaks at least every second.
SELECT set_config('idle_session_timeout', %(timeout)s, false);

-- name: leader_check :one
SELECT 1;

-- name: prune_finished :one
-- Built-in clean-up, run by the leader: finished jobs older than the
-- retention go, with their results and errors, a bounded batch per statement
-- (its own short transaction: no long lock, no giant WAL burst). The cursor
-- (the last batch's newest finished_at) starts each batch where the last one
-- ended, so no batch walks jobs_finished_idx past the entries of the rows the
-- earlier batches deleted (dead until vacuum): without it batch n of a big
-- prune reads n batches' worth of dead entries first.
WITH old AS (
    SELECT id, finished_at FROM {schema}.jobs
    WHERE finished_at < now() - make_interval(secs => %(retention_seconds)s)
      AND finished_at >= coalesce(%(after)s::timestamptz, '-infinity')
      AND workflow_id IS NULL  -- workflows go whole: prune_workflows
      -- result_expires: prune_kept
      AND NOT EXISTS (SELECT 1 FROM {schema}.job_keep k WHERE k.job_id = jobs.id)
    ORDER BY finished_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM {schema}.jobs j USING old WHERE j.id = old.id RETURNING j.id
),
results AS (
    DELETE FROM {schema}.job_results r USING gone WHERE r.job_id = gone.id
),
errors AS (
    DELETE FROM {schema}.job_errors e USING gone WHERE e.job_id = gone.id
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM old),
       (SELECT max(finished_at) FROM old);

-- name: prune_kept :one
-- Finished jobs of tasks with result_expires, once that has passed (whatever the
-- retention). Workflow jobs still go whole.
WITH old AS (
    SELECT k.job_id AS id FROM {schema}.job_keep k
    WHERE k.keep_until < now()
    ORDER BY k.keep_until
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
),
unkept AS (
    DELETE FROM {schema}.job_keep k USING old WHERE k.job_id = old.id
),
gone AS (
    DELETE FROM {schema}.jobs j USING old
    WHERE j.id = old.id AND j.workflow_id IS NULL AND j.finished_at IS NOT NULL
    RETURNING j.id
),
results AS (
    DELETE FROM {schema}.job_results r USING gone WHERE r.job_id = gone.id
),
errors AS (
    DELETE FROM {schema}.job_errors e USING gone WHERE e.job_id = gone.id
)
SELECT count(*) FROM gone;

-- name: prune_keys :one
-- Unique keys that hold nothing any more (their job ended and their window
-- passed), and rate buckets idle for a day (a new start makes them again).
WITH gone AS (
    DELETE FROM {schema}.job_keys
    WHERE released_at IS NOT NULL AND coalesce(hold_until < now(), true)
    RETURNING 1
),
buckets AS (
    DELETE FROM {schema}.limit_buckets WHERE next_at < now() - interval '1 day'
)
SELECT count(*) FROM gone;

-- name: prune_ticks :one
-- In batches off schedule_ticks_created_idx, like prune_finished.
WITH old AS (
    SELECT schedule, fire_at FROM {schema}.schedule_ticks
    WHERE created_at < now() - make_interval(secs => %(retention_seconds)s)
    ORDER BY created_at
    LIMIT %(batch)s
),
gone AS (
    DELETE FROM {schema}.schedule_ticks t USING old
    WHERE t.schedule = old.schedule AND t.fire_at = old.fire_at
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: prune_workers :one
-- Stopped or long-dead workers' rows, once nothing refers to them any more.
WITH gone AS (
    DELETE FROM {schema}.workers w
    WHERE coalesce(w.stopped_at, w.heartbeat_at) < now() - make_interval(secs => %(retention_seconds)s)
      AND NOT EXISTS (SELECT 1 FROM {schema}.jobs j WHERE j.worker_id = w.id)
    RETURNING 1
)
SELECT count(*) FROM gone;
