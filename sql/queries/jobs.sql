-- Queries on jobs, results and errors. {schema} and the {..._channel} names are
-- identifiers filled in once at load time by pgqueue/sql.py (quoted, never
-- formatted from user input); %(name)s are bind parameters, and %(name)b ones
-- are sent in binary: arrays then need no quoting or escaping of each element
-- (batch enqueue: 38,000 -> 48,000 jobs/s).

-- name: enqueue_jobs :many
-- One statement for one job or ten thousand: arrays in, one row per job out (its
-- id, and the time the database stored, so no second read is needed for it).
-- run_at is the database's clock plus the countdown, or the given eta.
INSERT INTO {schema}.jobs (queue, task, priority, run_at, max_attempts, args, kwargs, headers)
SELECT i.queue, i.task, i.priority,
       coalesce(i.eta, now() + make_interval(secs => coalesce(i.countdown, 0))),
       i.max_attempts, i.args, i.kwargs, i.headers
FROM unnest(%(queues)b::text[], %(tasks)b::text[], %(priorities)b::smallint[],
            %(etas)b::timestamptz[], %(countdowns)b::float8[], %(max_attempts)b::int[],
            %(args)b::jsonb[], %(kwargs)b::jsonb[], %(headers)b::jsonb[])
     WITH ORDINALITY AS i(queue, task, priority, eta, countdown, max_attempts, args, kwargs,
                          headers, n)
ORDER BY i.n
RETURNING id, created_at;

-- name: enqueue_same :many
-- task.map(): many jobs of one task with the same options, differing only in
-- their positional arguments, sent as one JSON array of argument lists. One
-- encode in Python and one parse here instead of a thousand of each: about
-- twice as fast as enqueue_jobs for a batch of small jobs.
INSERT INTO {schema}.jobs (queue, task, priority, max_attempts, args, kwargs)
SELECT %(queue)s, %(task)s, %(priority)s, %(max_attempts)s, a.args, '{{}}'::jsonb
FROM jsonb_array_elements(%(args)s::jsonb) WITH ORDINALITY AS a(args, n)
ORDER BY a.n
RETURNING id, created_at;

-- name: enqueue_job :many
-- The common case, one job, with plain parameters: no arrays to build and
-- unnest, about a third cheaper than enqueue_jobs for a single row.
INSERT INTO {schema}.jobs (queue, task, priority, run_at, max_attempts, args, kwargs, headers)
VALUES (%(queue)s, %(task)s, %(priority)s,
        coalesce(%(eta)s::timestamptz,
                 now() + make_interval(secs => coalesce(%(countdown)s::float8, 0))),
        %(max_attempts)s, %(args)s::jsonb, %(kwargs)s::jsonb, %(headers)s::jsonb)
RETURNING id, created_at;

-- name: claim_jobs :many
-- Per queue (paused ones skipped), the best candidates straight off
-- jobs_claim_idx; then the best %(limit)s of those overall. SKIP LOCKED lets many workers claim at once
-- without waiting on each other. The new lease token fences this attempt:
-- every later write for it must present the token.
--
-- The claim commits without waiting for its WAL to reach disk
-- (synchronous_commit off for this transaction only): if Postgres crashes
-- within that instant, the claim is undone and the job is queued again, which
-- the lease token already makes safe. The worker holding the lost lease can't
-- record an outcome, and an atomic task's writes roll back with it. Enqueues
-- and outcomes still wait for the disk.
WITH async_commit AS MATERIALIZED (
    SELECT set_config('synchronous_commit', 'off', true)
),
candidates AS (
    SELECT c.id, c.priority, c.run_at
    FROM unnest(%(queues)b::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.run_at
        FROM {schema}.jobs j
        WHERE NOT EXISTS (SELECT 1 FROM {schema}.queues p WHERE p.name = q.name AND p.paused)
          AND EXISTS (SELECT FROM async_commit)
          AND j.state = 'queued' AND j.queue = q.name AND j.run_at <= now()
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT %(limit)s
),
claimed AS (
    UPDATE {schema}.jobs j
    SET state = 'running',
        -- least(): a row SQL set to the integer's limit must not fail every claim.
        attempts = least(j.attempts, 2147483646) + 1,
        lease = gen_random_uuid(),
        worker_id = %(worker_id)s,
        started_at = now(),
        lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
    -- An array, not a join: a join on the CTE may be planned as a hash join over
    -- a sequential scan of the whole table (finished jobs included).
    WHERE j.id = ANY(ARRAY(SELECT id FROM candidates))
    RETURNING j.id, j.task, j.queue, j.attempts, j.max_attempts, j.lease, j.args, j.kwargs,
              j.headers, j.priority, j.run_at
)
SELECT id, task, queue, attempts, max_attempts, lease, args::text, kwargs::text, headers::text
FROM claimed
ORDER BY priority DESC, run_at, id;

-- name: finish_jobs :one :unprepared
-- Records a batch of outcomes in one statement. Each row is applied only if
-- the job is still running under the lease that attempt was given, so a late
-- writer (a worker that lost its lease) changes nothing and learns so from the
-- ids it gets back. One NOTIFY tells result waiters which jobs finished; one
-- per queue with retries wakes idle workers to schedule them.
WITH outcome AS (
    SELECT *
    FROM unnest(%(ids)b::bigint[], %(leases)b::uuid[], %(states)b::{schema}.job_state[],
                %(retry_in)b::float8[], %(values)b::jsonb[], %(error_types)b::text[],
                %(error_messages)b::text[], %(tracebacks)b::text[])
         AS o(id, lease, state, retry_in, value, error_type, error_message, traceback)
),
-- A workflow's member is counted under its group's row lock, by the
-- jobs_workflow trigger as each row below is updated, in whatever order the
-- plan meets the rows. Two batches that each reached two groups, in opposite
-- orders, would each hold a group the other waits for: a deadlock, detected
-- only after deadlock_timeout (1 s). So a batch with members of two groups or
-- more locks them here first, in id order, and such batches queue instead. A
-- batch within one group never holds a group while waiting for another: it
-- takes its lock as before, at the end, holding it no longer than it must
-- (the big group's members, the common case, queue on that one lock). For a
-- plain job this is one index probe that finds no step.
member_of AS MATERIALIZED (
    SELECT DISTINCT s.group_id FROM {schema}.workflow_steps s
    WHERE s.job_id = ANY(%(ids)b::bigint[]) AND s.group_id IS NOT NULL
),
groups AS MATERIALIZED (
    SELECT g.id FROM {schema}.workflow_groups g
    WHERE g.id IN (SELECT group_id FROM member_of)
      AND (SELECT count(*) FROM member_of) > 1
    ORDER BY g.id
    FOR NO KEY UPDATE
),
finished AS (
    UPDATE {schema}.jobs j
    SET state = o.state,
        finished_at = CASE WHEN o.state = 'queued' THEN NULL ELSE now() END,
        run_at = CASE WHEN o.state = 'queued'
                      THEN now() + make_interval(secs => coalesce(o.retry_in, 0))
                      ELSE j.run_at END,
        lease = NULL,
        lease_expires_at = NULL
    FROM outcome o
    WHERE j.id = o.id AND j.lease = o.lease AND j.state = 'running'
      -- Evaluated once, before the first row is updated: the groups locked.
      AND (SELECT count(*) FROM groups) >= 0
    RETURNING j.id, j.attempts, j.state, j.queue
),
stored_results AS (
    INSERT INTO {schema}.job_results (job_id, value)
    SELECT f.id, o.value FROM finished f JOIN outcome o ON o.id = f.id
    WHERE f.state = 'succeeded' AND o.value IS NOT NULL
    ON CONFLICT (job_id) DO UPDATE SET value = excluded.value, created_at = now()
),
stored_errors AS (
    INSERT INTO {schema}.job_errors (job_id, attempt, type, message, traceback)
    SELECT f.id, f.attempts, o.error_type, o.error_message, o.traceback
    FROM finished f JOIN outcome o ON o.id = f.id
    WHERE o.error_type IS NOT NULL
    ON CONFLICT (job_id, attempt) DO NOTHING
),
counted AS (
    UPDATE {schema}.workers SET jobs_done = jobs_done + (SELECT count(*) FROM finished)
    WHERE id = %(worker_id)s
),
retries_woken AS (
    SELECT pg_notify(%(jobs_channel)s, q.queue)
    FROM (SELECT DISTINCT queue FROM finished WHERE state = 'queued') AS q
),
accepted AS (
    SELECT coalesce(array_agg(id), '{{}}') AS ids,
           coalesce(string_agg(id::text, ','), '') AS payload
    FROM finished
)
-- Payloads are capped at 8000 bytes; an empty payload tells waiters "look".
SELECT ids, pg_notify(%(done_channel)s,
                      CASE WHEN length(payload) < 7900 THEN payload ELSE '' END),
       (SELECT count(*) FROM retries_woken)
FROM accepted;

-- name: seconds_until_next_job :one
-- How long until the earliest job scheduled in the future becomes due, by the
-- database's clock, so an idle worker sleeps until then rather than a whole
-- poll interval. NULL when nothing is scheduled. A run_at of 'infinity' (only
-- SQL can write one) is never due, and must not break the subtraction.
SELECT extract(epoch FROM min(j.run_at) - now())::float8
FROM unnest(%(queues)s::text[]) AS q(name)
CROSS JOIN LATERAL (
    SELECT run_at FROM {schema}.jobs
    WHERE state = 'queued' AND queue = q.name AND isfinite(run_at)
    ORDER BY run_at
    LIMIT 1
) AS j;

-- name: extend_leases :many :unprepared
-- The heartbeat: pushes out the lease of each job this worker still holds
-- (checked by token) and returns the ones it still owns, with their cancel
-- flag (a backstop for a cancel NOTIFY the worker missed) and whether the lease
-- was extended. A row someone else has locked right now (a long transaction,
-- an admin's UPDATE) is skipped rather than waited for, so one locked row can't
-- stall the heartbeat and cost the others their leases: it is still ours, and
-- the next beat extends it.
WITH alive AS (
    UPDATE {schema}.workers SET heartbeat_at = now() WHERE id = %(worker_id)s
),
held AS (
    SELECT j.id FROM {schema}.jobs j
    JOIN unnest(%(ids)b::bigint[], %(leases)b::uuid[]) AS h(id, lease)
      ON j.id = h.id AND j.lease = h.lease
    WHERE j.state = 'running'
),
lockable AS (
    SELECT j.id FROM {schema}.jobs j
    WHERE j.id IN (SELECT id FROM held)
    FOR UPDATE SKIP LOCKED
),
extended AS (
    UPDATE {schema}.jobs j
    SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
    FROM unnest(%(ids)b::bigint[], %(leases)b::uuid[]) AS h(id, lease)
    WHERE j.id = h.id AND j.lease = h.lease AND j.state = 'running'
      AND j.id IN (SELECT id FROM lockable)
    RETURNING j.id, j.cancel_requested
)
SELECT id, cancel_requested FROM extended
UNION ALL
SELECT id, false FROM held WHERE id NOT IN (SELECT id FROM lockable);

-- name: release_jobs :many :unprepared
-- Graceful shutdown: give back jobs that were claimed but will not be run
-- here, without counting the attempt against the job.
UPDATE {schema}.jobs j
SET state = 'queued', attempts = j.attempts - 1, lease = NULL, lease_expires_at = NULL,
    worker_id = NULL, started_at = NULL
FROM unnest(%(ids)b::bigint[], %(leases)b::uuid[]) AS r(id, lease)
WHERE j.id = r.id AND j.lease = r.lease AND j.state = 'running'
RETURNING j.id;

-- name: defer_jobs :many :unprepared
-- Jobs this worker can't run yet (their task isn't registered here) go back,
-- the attempt uncounted, while they are younger than the grace, each time a
-- little later (a tenth of their age, 1 s to 60 s). Older ones aren't returned:
-- the worker then records them failed. Lease-checked like every transition.
UPDATE {schema}.jobs j
SET state = 'queued', attempts = greatest(j.attempts - 1, 0), lease = NULL,
    lease_expires_at = NULL, worker_id = NULL, started_at = NULL,
    run_at = now() + make_interval(secs => least(60, greatest(1,
        extract(epoch FROM now() - j.created_at) / 10)))
FROM unnest(%(ids)b::bigint[], %(leases)b::uuid[]) AS d(id, lease)
WHERE j.id = d.id AND j.lease = d.lease AND j.state = 'running'
  AND j.created_at > now() - make_interval(secs => %(grace_seconds)s)
RETURNING j.id;

-- name: get_job :one
-- Everything a JobResult shows, in one round trip: the job, its result and
-- its latest error.
SELECT j.id, j.task, j.queue, j.state::text, j.attempts, j.max_attempts, j.priority,
       j.run_at, j.created_at, j.started_at, j.finished_at,
       r.value::text, e.type, e.message, e.traceback, e.cause_job
FROM {schema}.jobs j
LEFT JOIN {schema}.job_results r ON r.job_id = j.id
LEFT JOIN LATERAL (
    SELECT type, message, traceback, cause_job FROM {schema}.job_errors
    WHERE job_id = j.id ORDER BY attempt DESC LIMIT 1
) e ON true
WHERE j.id = %(id)s;

-- name: rescue_expired :many
-- Jobs whose lease ran out (their worker died, stalled or lost its network)
-- go back to the queue (keeping their place: run_at is unchanged), or to
-- failed once rescued %(max_rescues)s times, or to cancelled if a cancel was
-- asked for. The outer WHERE re-checks what the
-- inner SELECT saw, so a heartbeat that lands in between wins. Each rescue is
-- recorded as an error of that attempt, and each queue is woken once.
WITH expired AS (
    SELECT id FROM {schema}.jobs
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
),
rescued AS (
    UPDATE {schema}.jobs j
    SET state = CASE WHEN j.cancel_requested THEN 'cancelled'
                     WHEN j.rescues + 1 >= %(max_rescues)s THEN 'failed'
                     ELSE 'queued' END::{schema}.job_state,
        rescues = least(j.rescues, 32766) + 1,
        finished_at = CASE WHEN j.cancel_requested OR j.rescues + 1 >= %(max_rescues)s
                           THEN now() END,
        lease = NULL, lease_expires_at = NULL
    FROM expired
    WHERE j.id = expired.id AND j.state = 'running' AND j.lease_expires_at < now()
    RETURNING j.id, j.queue, j.attempts, j.state, j.worker_id
),
recorded AS (
    INSERT INTO {schema}.job_errors (job_id, attempt, type, message, traceback)
    SELECT id, attempts, 'WorkerLost',
           format('the lease of worker %%s expired before the job finished', worker_id), ''
    FROM rescued
    ON CONFLICT (job_id, attempt) DO NOTHING
)
SELECT r.id, r.state::text, pg_notify(%(jobs_channel)s, r.queue)
FROM rescued r;

-- name: cancel_job :one
-- A queued (or waiting) job is cancelled at once and never runs; a running one
-- is flagged and its worker told (NOTIFY), so it stops the job and records it
-- cancelled.
WITH target AS (
    UPDATE {schema}.jobs
    SET cancel_requested = true,
        state = CASE WHEN state IN ('queued', 'waiting') THEN 'cancelled'::{schema}.job_state
                     ELSE state END,
        finished_at = CASE WHEN state IN ('queued', 'waiting') THEN now() ELSE finished_at END
    WHERE id = %(id)s AND state IN ('queued', 'running', 'waiting')
    RETURNING id, state
)
SELECT t.state::text,
       CASE WHEN t.state = 'running' THEN pg_notify(%(cancel_channel)s, t.id::text)
            ELSE pg_notify(%(done_channel)s, t.id::text) END
FROM target t;

-- name: retry_jobs :many
-- Put failed jobs (and, when picked by id, cancelled ones) back on their queue
-- with as many attempts as they were enqueued with: the first replay keeps that
-- budget in its own column, so replaying again doesn't grow it. Selected by id,
-- or by filter; NULL filters match everything.
WITH picked AS (
    SELECT id FROM {schema}.jobs
    WHERE state = ANY(%(states)s::{schema}.job_state[])
      AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
      -- A workflow step cancelled before it ran, for an earlier step's failure,
      -- has no arguments of its own to run with.
      AND NOT EXISTS (SELECT 1 FROM {schema}.job_errors e
                      WHERE e.job_id = jobs.id AND e.cause_job IS NOT NULL)
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
      AND (%(task)s::text IS NULL OR task = %(task)s::text)
    FOR UPDATE SKIP LOCKED
),
requeued AS (
    UPDATE {schema}.jobs j
    SET state = 'queued', run_at = now(), finished_at = NULL, cancel_requested = false,
        budget = coalesce(j.budget, greatest(j.max_attempts, 1)),
        max_attempts = least(j.attempts::bigint + coalesce(j.budget, greatest(j.max_attempts, 1)),
                             2147483647),
        rescues = 0, lease = NULL, lease_expires_at = NULL, worker_id = NULL
    FROM picked
    WHERE j.id = picked.id AND j.state = ANY(%(states)s::{schema}.job_state[])
    RETURNING j.id, j.queue
)
SELECT r.id, pg_notify(%(jobs_channel)s, r.queue) FROM requeued r;

-- name: listen_cancel :none
LISTEN {cancel_channel};

-- name: listen_done :none
LISTEN {done_channel};

-- name: listen_jobs :none
LISTEN {jobs_channel};

-- name: unlisten_all :none
UNLISTEN *;
