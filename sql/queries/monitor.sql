-- Queries behind `pgq status`, `pgq jobs`, the dashboard and /metrics. Each
-- reads through an index that stays small however many finished jobs are kept:
-- live counts from the partial indexes on queued/running jobs, finished counts
-- from jobs_finished_idx within the chosen window.

-- name: queue_stats :many
-- With each queue's own limits, and held_back: its due jobs under a limit, which
-- only claim_limited() starts (migration 0012), waiting for room or the next
-- claim. In a limited queue that is every due job; elsewhere those of limited tasks.
WITH live AS (
    SELECT queue,
           count(*) FILTER (WHERE run_at <= now()) AS queued,
           count(*) FILTER (WHERE run_at > now()) AS scheduled,
           count(*) FILTER (WHERE run_at <= now()
                            AND task IN (SELECT task FROM {schema}.task_limits))
               AS of_limited_tasks,
           -- greatest(): a run_at of '-infinity' (only SQL can write one) has no age.
           extract(epoch FROM now() - greatest(min(run_at) FILTER (WHERE run_at <= now()),
                                               timestamptz '0001-01-02 00:00+00'))::float8
               AS oldest_waiting
    FROM {schema}.jobs WHERE state = 'queued' GROUP BY queue
),
busy AS (
    SELECT queue, count(*) AS running FROM {schema}.jobs WHERE state = 'running' GROUP BY queue
),
done AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled
    FROM {schema}.jobs
    WHERE finished_at > now() - make_interval(secs => %(window)s)
    GROUP BY queue
),
names AS (
    SELECT queue FROM live UNION SELECT queue FROM busy UNION SELECT queue FROM done
    UNION SELECT name FROM {schema}.queues
)
SELECT n.queue, coalesce(l.queued, 0), coalesce(l.scheduled, 0), coalesce(b.running, 0),
       coalesce(d.succeeded, 0), coalesce(d.failed, 0), coalesce(d.cancelled, 0),
       l.oldest_waiting, coalesce(q.paused, false), q.rate, q.rate_window, q.concurrency,
       CASE WHEN q.rate IS NOT NULL OR q.concurrency IS NOT NULL THEN coalesce(l.queued, 0)
            ELSE coalesce(l.of_limited_tasks, 0) END
FROM names n
LEFT JOIN live l ON l.queue = n.queue
LEFT JOIN busy b ON b.queue = n.queue
LEFT JOIN done d ON d.queue = n.queue
LEFT JOIN {schema}.queues q ON q.name = n.queue
ORDER BY n.queue;

-- name: worker_list :many
-- Stopped workers are listed for an hour after they stop, then only in the table.
SELECT w.id, w.name, w.host, w.pid, w.queues, w.pool, w.concurrency, w.running, w.jobs_done,
       w.started_at, w.heartbeat_at, extract(epoch FROM w.heartbeat_age)::float8,
       extract(epoch FROM now() - w.started_at)::float8, w.status
FROM {schema}.worker_status w
WHERE w.status <> 'stopped' OR w.heartbeat_at > now() - interval '1 hour'
ORDER BY w.status = 'up' DESC, w.started_at DESC;

-- name: task_stats :many
-- retried: extra attempts of jobs finished in the window (failed attempts that
-- were run again, and rescues).
SELECT task,
       count(*) FILTER (WHERE state = 'succeeded'),
       count(*) FILTER (WHERE state = 'failed'),
       coalesce(sum(greatest(attempts - 1, 0)), 0)::bigint,
       (avg(extract(epoch FROM finished_at - started_at))
            FILTER (WHERE state = 'succeeded') * 1000)::float8,
       (percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
            FILTER (WHERE state = 'succeeded') * 1000)::float8
FROM {schema}.jobs
WHERE finished_at > now() - make_interval(secs => %(window)s)
GROUP BY task
ORDER BY task;

-- name: throughput_series :many
SELECT date_bin(make_interval(secs => %(bucket)s), finished_at, timestamptz '2000-01-01')
           AS at,
       count(*) FILTER (WHERE state = 'succeeded'),
       count(*) FILTER (WHERE state = 'failed')
FROM {schema}.jobs
WHERE finished_at > now() - make_interval(secs => %(window)s)
GROUP BY 1
ORDER BY 1;

-- name: job_list :many
-- Newest first, keyset-paginated on id (no OFFSET: page 1,000 costs what page 1 does).
-- NULL filters match everything. Progress without its meta: a list shows how far
-- each job is, and a page of fifty needn't carry fifty metas.
SELECT j.id, j.task, j.queue, j.state::text, j.priority, j.attempts, j.created_at,
       j.started_at, j.finished_at, w.name, (j.progress - 'meta')::text
FROM {schema}.jobs j
LEFT JOIN {schema}.workers w ON w.id = j.worker_id
WHERE (%(state)s::text IS NULL OR j.state = %(state)s::text::{schema}.job_state)
  AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
  AND (%(task)s::text IS NULL OR j.task = %(task)s::text)
  AND (%(since)s::timestamptz IS NULL OR j.created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR j.created_at < %(until)s::timestamptz)
  AND (%(before_id)s::bigint IS NULL OR j.id < %(before_id)s::bigint)
ORDER BY j.id DESC
LIMIT %(limit)s;

-- name: job_detail :one
-- Values as text, decoded in Python (one that can't be is shown raw); run_at clamped to
-- what Python's datetime holds in any session time zone, since SQL can write 'infinity'.
SELECT j.id, j.task, j.queue, j.state::text, j.priority, j.attempts, j.created_at,
       j.started_at, j.finished_at, w.name, j.args::text, j.kwargs::text, r.value::text,
       least(greatest(j.run_at, timestamptz '0001-01-02 00:00+00'),
             timestamptz '9999-12-30 00:00+00'),
       j.rescues, j.cancel_requested, j.lease_expires_at, w.host, w.pid,
       j.max_attempts, j.progress::text
FROM {schema}.jobs j
LEFT JOIN {schema}.workers w ON w.id = j.worker_id
LEFT JOIN {schema}.job_results r ON r.job_id = j.id
WHERE j.id = %(id)s;

-- name: job_attempts :many
SELECT attempt, type, message, traceback, created_at
FROM {schema}.job_errors WHERE job_id = %(id)s ORDER BY attempt;

-- name: schedule_list :many
-- With the error that made the scheduler skip a schedule, and the database's clock to
-- work out a next fire time that no scheduler has stored yet.
SELECT name, task, cron, every_seconds, tz, queue, paused, last_fire_at, next_fire_at,
       error, error_at, now()
FROM {schema}.schedules ORDER BY name;

-- name: set_queue_paused :one
-- Pausing takes effect at the next claim of every worker; resuming also wakes them.
WITH upserted AS (
    INSERT INTO {schema}.queues (name, paused) VALUES (%(name)s, %(paused)s)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now()
    RETURNING name, paused
)
SELECT name, CASE WHEN NOT paused THEN pg_notify(%(jobs_channel)s, name) END FROM upserted;

-- name: set_queue_limits :one
-- pgq queues limit and the dashboard's form: each limit is set (NULL removes it)
-- or, with keep_*, left as it is, in one statement, so two people changing
-- different limits of a queue at once both have their way. updated_at is left
-- alone: for a paused queue it says since when (paused_queues). Workers read the
-- limits each heartbeat (limits_in_force). Returns what is now in force.
INSERT INTO {schema}.queues AS q (name, rate, rate_window, concurrency)
VALUES (%(name)s,
        CASE WHEN NOT %(keep_rate)s::boolean THEN %(rate)s::integer END,
        CASE WHEN NOT %(keep_rate)s::boolean THEN %(rate_window)s::float8 END,
        CASE WHEN NOT %(keep_concurrency)s::boolean THEN %(concurrency)s::integer END)
ON CONFLICT (name) DO UPDATE
SET rate = CASE WHEN %(keep_rate)s::boolean THEN q.rate ELSE excluded.rate END,
    rate_window = CASE WHEN %(keep_rate)s::boolean THEN q.rate_window
                       ELSE excluded.rate_window END,
    concurrency = CASE WHEN %(keep_concurrency)s::boolean THEN q.concurrency
                       ELSE excluded.concurrency END
RETURNING q.name, q.rate, q.rate_window, q.concurrency;

-- name: task_limit_list :many
-- Each task's limits as the workers' code declares them (written when a worker
-- starts: declared_at), with the due jobs each holds back and the task's jobs
-- running now. Counted through the partial indexes on queued and running jobs,
-- as queue_stats is, so finished jobs cost nothing here.
WITH waiting AS (
    SELECT task, count(*) AS n FROM {schema}.jobs
    WHERE state = 'queued' AND run_at <= now()
      AND task IN (SELECT task FROM {schema}.task_limits)
    GROUP BY task
),
busy AS (
    SELECT task, count(*) AS n FROM {schema}.jobs
    WHERE state = 'running' AND task IN (SELECT task FROM {schema}.task_limits)
    GROUP BY task
)
SELECT t.task, t.rate, t.rate_window, t.concurrency, coalesce(w.n, 0), coalesce(b.n, 0),
       t.updated_at
FROM {schema}.task_limits t
LEFT JOIN waiting w ON w.task = t.task
LEFT JOIN busy b ON b.task = t.task
ORDER BY t.task;

-- name: jobs_enqueued_total :one
-- Every job ever enqueued took one value of the id sequence: a counter that
-- pruning never lowers (rolled-back enqueues use values too: an upper bound).
SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence(%(jobs_table)s, 'id')), 0);

-- name: xmin_holders :many
-- What holds back this database's xmin horizon (the oldest transaction vacuum must
-- still keep dead rows for), oldest first: every dead job row younger than it stays,
-- and every SKIP LOCKED claim walks past them. Sessions (idle in transaction, long
-- queries) and prepared transactions of this database count, as do physical slots
-- and standbys' hot_standby_feedback, which hold it for every database. Not the
-- query text: it may carry a secret. Other users' sessions show only with
-- pg_read_all_stats (their backend_xmin is NULL otherwise).
SELECT kind, pid, name, usename, state, client, seconds, xids FROM (
    SELECT 'session' AS kind, a.pid, a.application_name AS name, a.usename::text,
           a.state, host(a.client_addr) AS client,
           extract(epoch FROM now() - a.xact_start)::float8 AS seconds,
           greatest(age(a.backend_xmin), age(a.backend_xid)) AS xids
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
      AND (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
      AND a.xact_start < now() - make_interval(secs => %(min_seconds)s)
    UNION ALL
    SELECT 'prepared', NULL, p.gid, p.owner::text, 'prepared', NULL,
           extract(epoch FROM now() - p.prepared)::float8, age(p.transaction)
    FROM pg_prepared_xacts p
    WHERE p.database = current_database()
      AND p.prepared < now() - make_interval(secs => %(min_seconds)s)
    UNION ALL
    -- a slot has no start time: its age is in transactions only
    SELECT 'slot', s.active_pid, s.slot_name::text, NULL,
           CASE WHEN s.active THEN 'active' ELSE 'inactive' END, NULL, NULL, age(s.xmin)
    FROM pg_replication_slots s WHERE s.xmin IS NOT NULL
    UNION ALL
    SELECT 'standby', r.pid, r.application_name, r.usename::text, r.state,
           host(r.client_addr), NULL, age(r.backend_xmin)
    FROM pg_stat_replication r WHERE r.backend_xmin IS NOT NULL
) h
ORDER BY seconds DESC NULLS LAST, xids DESC NULLS LAST
LIMIT %(limit)s;
