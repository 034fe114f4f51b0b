-- Queries on jobs, results and errors. {schema} and the {..._channel} names are
-- identifiers filled in once at load time by pgqueue/sql.py (quoted, never
-- formatted from user input); %(name)s are bind parameters, and %(name)b ones
-- are sent in binary: arrays then need no quoting or escaping of each element
-- (batch enqueue: 38,000 -> 48,000 jobs/s).

-- name: enqueue_jobs :many
-- One statement for one job or ten thousand: arrays in, one row per job out (its
-- id, and the time the database stored, so no second read is needed for it).
-- run_at is the database's clock plus the countdown, or the given eta.
WITH inserted AS (
INSERT INTO {schema}.jobs (queue, task, priority, run_at, max_attempts, args, kwargs, headers,
                           expires_at, rate_key, concurrency_key)
SELECT i.queue, i.task, i.priority,
       coalesce(i.eta, now() + make_interval(secs => coalesce(i.countdown, 0))),
       i.max_attempts, i.args, i.kwargs, i.headers,
       coalesce(i.expires_at, now() + make_interval(secs => i.expires_in)),
       i.rate_key, i.concurrency_key
FROM unnest(%(queues)b::text[], %(tasks)b::text[], %(priorities)b::smallint[],
            %(etas)b::timestamptz[], %(countdowns)b::float8[], %(max_attempts)b::int[],
            %(args)b::jsonb[], %(kwargs)b::jsonb[], %(headers)b::jsonb[],
            %(expires_ats)b::timestamptz[], %(expires_ins)b::float8[],
            %(rate_keys)b::text[], %(concurrency_keys)b::text[])
     WITH ORDINALITY AS i(queue, task, priority, eta, countdown, max_attempts, args, kwargs,
                          headers, expires_at, expires_in, rate_key, concurrency_key, n)
ORDER BY i.n
RETURNING id, created_at, expires_at
),
expiring AS (  -- the expiry sweep's list (migration 0011)
    INSERT INTO {schema}.job_expiry (job_id, expires_at)
    SELECT id, expires_at FROM inserted WHERE expires_at IS NOT NULL
)
SELECT id, created_at FROM inserted;

-- name: enqueue_unique :many :unprepared
-- enqueue_jobs for a batch with unique keys (no key twice in it). Each keyed job
-- first takes its key in job_keys: the key's primary key makes racing producers
-- wait for each other, and ON CONFLICT DO UPDATE then sees the winner's row
-- (committed after this statement's snapshot was taken, which a plain SELECT
-- would miss). A held key keeps its job; a free one (its job ended and its
-- window passed) is taken over. Only jobs that got their key are inserted; the
-- others come back with the holder's id and deduplicated = true.
WITH spec AS MATERIALIZED (
    SELECT i.*, nextval(pg_get_serial_sequence(%(jobs_table)s, 'id')) AS new_id
    FROM unnest(%(queues)b::text[], %(tasks)b::text[], %(priorities)b::smallint[],
                %(etas)b::timestamptz[], %(countdowns)b::float8[], %(max_attempts)b::int[],
                %(args)b::jsonb[], %(kwargs)b::jsonb[], %(headers)b::jsonb[],
                %(expires_ats)b::timestamptz[], %(expires_ins)b::float8[],
                %(rate_keys)b::text[], %(concurrency_keys)b::text[],
                %(unique_keys)b::text[], %(unique_fors)b::float8[])
         WITH ORDINALITY AS i(queue, task, priority, eta, countdown, max_attempts, args,
                              kwargs, headers, expires_at, expires_in, rate_key,
                              concurrency_key, unique_key, unique_for, n)
),
keyed AS (
    INSERT INTO {schema}.job_keys AS k (key, job_id, created_at, hold_until)
    SELECT unique_key, new_id, now(), now() + make_interval(secs => unique_for)
    FROM spec WHERE unique_key IS NOT NULL
    ON CONFLICT (key) DO UPDATE
    SET job_id = CASE WHEN k.released_at IS NOT NULL AND coalesce(k.hold_until <= now(), true)
                      THEN excluded.job_id ELSE k.job_id END,
        created_at = CASE WHEN k.released_at IS NOT NULL
                               AND coalesce(k.hold_until <= now(), true)
                          THEN excluded.created_at ELSE k.created_at END,
        hold_until = CASE WHEN k.released_at IS NOT NULL
                               AND coalesce(k.hold_until <= now(), true)
                          THEN excluded.hold_until ELSE k.hold_until END,
        released_at = CASE WHEN k.released_at IS NOT NULL
                                AND coalesce(k.hold_until <= now(), true)
                           THEN NULL ELSE k.released_at END
    RETURNING k.key, k.job_id
),
chosen AS (
    SELECT s.n, s.new_id, coalesce(kd.job_id, s.new_id) AS id,
           coalesce(kd.job_id = s.new_id, true) AS created
    FROM spec s LEFT JOIN keyed kd ON kd.key = s.unique_key
),
inserted AS (
    INSERT INTO {schema}.jobs (id, queue, task, priority, run_at, max_attempts, args, kwargs,
                               headers, expires_at, unique_key, rate_key, concurrency_key)
                               OVERRIDING SYSTEM VALUE
    SELECT s.new_id, s.queue, s.task, s.priority,
           coalesce(s.eta, now() + make_interval(secs => coalesce(s.countdown, 0))),
           s.max_attempts, s.args, s.kwargs, s.headers,
           coalesce(s.expires_at, now() + make_interval(secs => s.expires_in)), s.unique_key,
           s.rate_key, s.concurrency_key
    FROM spec s JOIN chosen c ON c.n = s.n
    WHERE c.created
    ORDER BY s.n
    RETURNING id, created_at, expires_at
),
expiring AS (
    INSERT INTO {schema}.job_expiry (job_id, expires_at)
    SELECT id, expires_at FROM inserted WHERE expires_at IS NOT NULL
)
SELECT c.id, i.created_at, NOT c.created
FROM chosen c LEFT JOIN inserted i ON i.id = c.new_id AND c.created
ORDER BY c.n;

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
WITH inserted AS (
INSERT INTO {schema}.jobs (queue, task, priority, run_at, max_attempts, args, kwargs, headers,
                           expires_at, rate_key, concurrency_key)
VALUES (%(queue)s, %(task)s, %(priority)s,
        coalesce(%(eta)s::timestamptz,
                 now() + make_interval(secs => coalesce(%(countdown)s::float8, 0))),
        %(max_attempts)s, %(args)s::jsonb, %(kwargs)s::jsonb, %(headers)s::jsonb,
        coalesce(%(expires_at)s::timestamptz,
                 now() + make_interval(secs => %(expires_in)s::float8)),
        %(rate_key)s, %(concurrency_key)s)
RETURNING id, created_at, expires_at
),
expiring AS (
    INSERT INTO {schema}.job_expiry (job_id, expires_at)
    SELECT id, expires_at FROM inserted WHERE expires_at IS NOT NULL
)
SELECT id, created_at FROM inserted;

-- name: claim_jobs :many
-- Per queue (paused ones skipped), the best candidates straight off
-- jobs_claim_idx; then the best %(limit)s of those overall. SKIP LOCKED lets many workers claim at once
-- without waiting on each other. The new lease token fences this attempt:
-- every later write for it must present the token.
--
-- Priority aging (%(aging)s seconds a level, 0: off): a job's effective priority
-- is its priority plus one for every %(aging)s seconds it has been due, at most
-- %(aging_cap)s more. Still index scans: the distinct priorities waiting in a
-- queue are found by a skip scan down jobs_claim_idx (one probe a level), and
-- from each level below the top only jobs old enough to have caught up with the
-- top level are read (the oldest of a level is its first in the index). Ties go
-- to the older job, so a job enqueued before a stream of jobs (top - p) levels
-- above it starts within (top - p) * aging seconds of being due. That part
-- ("aging") doubles the time Postgres spends planning the claim, which it does
-- on every call, so a worker includes it in at most one claim a second
-- (pgqueue.worker.limited): the bound grows by that second.
--
-- The claim commits without waiting for its WAL to reach disk
-- (synchronous_commit off for this transaction only): if Postgres crashes
-- within that instant, the claim is undone and the job is queued again, which
-- the lease token already makes safe. The worker holding the lost lease can't
-- record an outcome, and an atomic task's writes roll back with it. Enqueues
-- and outcomes still wait for the disk.
WITH RECURSIVE async_commit AS MATERIALIZED (
    SELECT set_config('synchronous_commit', 'off', true)
),
attempt AS MATERIALIZED (SELECT gen_random_uuid() AS token),
-- with: many
-- Many queues: the best of every queue are read without locking, then the best
-- %(heads)s of those overall are locked in that order until %(limit)s are held.
-- Locking while reading (the one-queue form below) locks up to %(limit)s rows in
-- every queue to keep %(limit)s: each lock a WAL record and a page write.
-- Reading is bounded too: first %(share)s of each queue (one and a half fair
-- shares of %(heads)s); then only a queue whose last row read still ranks among
-- the best %(heads)s read so far can hold more of the best, and only it is read
-- further, no more than could still rank. So the best overall are found however
-- the jobs are spread, and an even spread reads about 1.5 x %(heads)s rows.
-- %(heads)s is twice %(limit)s
-- so that two workers claiming at once share the best rather than one getting
-- none; if locks were still skipped while jobs were left, the rest is locked
-- queue by queue, as the one-queue form does.
first_read AS MATERIALIZED (
    SELECT q.name AS queue, c.id, c.ctid, c.priority, c.run_at, c.rank
    FROM unnest(%(queues)b::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT r.*, row_number() OVER () AS rank FROM (
            SELECT j.id, j.ctid, j.priority, j.run_at
            FROM {schema}.jobs j
            WHERE NOT EXISTS (SELECT 1 FROM {schema}.queues p
                              WHERE p.name = q.name AND p.paused)
              AND j.state = 'queued' AND j.queue = q.name AND j.run_at <= now()
              AND coalesce(j.expires_at, 'infinity') > now()
-- with: skip
              AND NOT (j.task = ANY(%(skip_tasks)b::text[]))
-- end: skip
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT %(share)s
        ) AS r
    ) AS c
),
-- Every row read, placed among all read: place 1 is the best.
placed AS MATERIALIZED (
    SELECT f.*, row_number() OVER (ORDER BY priority DESC, run_at, id) AS place
    FROM first_read f
),
-- A queue whose share-th row is its last read may hold more of the best, but
-- none of them beats that row: with `place` rows read at least as good, at most
-- heads - place more of it can rank among the best heads.
unfinished AS MATERIALIZED (
    SELECT queue, priority, run_at, id, place FROM placed
    WHERE rank = %(share)s AND place < %(heads)s
),
heads AS (
    SELECT queue, id, ctid, priority, run_at FROM placed WHERE place <= %(heads)s
    UNION ALL
    SELECT u.queue, c.id, c.ctid, c.priority, c.run_at
    FROM unfinished u
    CROSS JOIN LATERAL (
        SELECT j.id, j.ctid, j.priority, j.run_at
        FROM {schema}.jobs j
        WHERE j.state = 'queued' AND j.queue = u.queue AND j.run_at <= now()
          AND coalesce(j.expires_at, 'infinity') > now()
-- with: skip
          AND NOT (j.task = ANY(%(skip_tasks)b::text[]))
-- end: skip
          AND (j.priority < u.priority
               OR (j.priority = u.priority AND (j.run_at, j.id) > (u.run_at, u.id)))
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT %(heads)s - u.place
    ) AS c
),
locked AS MATERIALIZED (
    SELECT l.id, l.ctid, l.priority, l.run_at, l.priority AS effective
    FROM (SELECT * FROM heads ORDER BY priority DESC, run_at, id LIMIT %(heads)s) AS h
    CROSS JOIN LATERAL (
        -- By address; the state and due time checked again on the row locked, in
        -- case another claim took it since this statement's snapshot.
        SELECT j.id, j.ctid, j.priority, j.run_at
        FROM {schema}.jobs j
        WHERE j.ctid = h.ctid AND j.queue = h.queue AND j.state = 'queued'
          AND j.run_at <= now()
          AND EXISTS (SELECT FROM async_commit)
        FOR UPDATE SKIP LOCKED
    ) AS l
    LIMIT %(limit)s
),
-- end: many
-- One queue: its best, locked as they are read. Many queues: only if the best
-- read above were locked by others and jobs are left, the rest, queue by queue
-- (no ORDER BY: rows are locked only as they are taken).
candidates AS (
-- with: many
    SELECT * FROM locked
    UNION ALL
    (
-- end: many
    SELECT c.id, c.ctid, c.priority, c.run_at, c.priority AS effective
    FROM unnest(%(queues)b::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT j.id, j.ctid, j.priority, j.run_at
        FROM {schema}.jobs j
        WHERE NOT EXISTS (SELECT 1 FROM {schema}.queues p WHERE p.name = q.name AND p.paused)
          AND EXISTS (SELECT FROM async_commit)
          AND j.state = 'queued' AND j.queue = q.name AND j.run_at <= now()
          -- Not IS NULL OR > now(): planning that looks up the column's statistics,
          -- on every claim.
          AND coalesce(j.expires_at, 'infinity') > now()
-- with: skip
          -- Tasks under a limit are claimed by claim_limited (migration 0012).
          AND NOT (j.task = ANY(%(skip_tasks)b::text[]))
-- end: skip
-- with: many
          AND j.id <> ALL(ARRAY(SELECT id FROM locked))
-- end: many
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
-- with: many
    -- Evaluated once: false (the common case) and this part never runs.
    WHERE (SELECT count(*) FROM locked) < least(%(limit)s, (SELECT count(*) FROM heads))
    LIMIT %(limit)s - (SELECT count(*) FROM locked))
-- end: many
-- without: many
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT %(limit)s
-- end: many
),
-- with: aging
levels(queue, top, p) AS (
    SELECT q.name, m.p, m.p
    FROM unnest(%(queues)b::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT max(j.priority) AS p FROM {schema}.jobs j
        WHERE j.state = 'queued' AND j.queue = q.name
    ) AS m
    WHERE m.p IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues p WHERE p.name = q.name AND p.paused)
    UNION ALL
    SELECT l.queue, l.top, (SELECT max(j.priority) FROM {schema}.jobs j
                            WHERE j.state = 'queued' AND j.queue = l.queue AND j.priority < l.p)
    FROM levels l
    WHERE l.p IS NOT NULL AND l.top - l.p < %(aging_cap)s
),
aged AS (
    SELECT c.id, c.ctid, c.priority, c.run_at, c.effective
    FROM levels AS l
    CROSS JOIN LATERAL (
        SELECT j.id, j.ctid, j.priority, j.run_at,
               j.priority + least(%(aging_cap)s,
                                  floor(extract(epoch FROM now() - j.run_at) / %(aging)s)
                                  )::int AS effective
        FROM {schema}.jobs j
        WHERE j.state = 'queued' AND j.queue = l.queue AND j.priority = l.p
          AND j.run_at <= now() - make_interval(secs => (l.top - l.p) * %(aging)s)
          AND coalesce(j.expires_at, 'infinity') > now()
-- with: skip
          AND NOT (j.task = ANY(%(skip_tasks)b::text[]))
-- end: skip
          AND j.id <> ALL(ARRAY(SELECT id FROM candidates))
        ORDER BY j.run_at, j.id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
    WHERE l.p IS NOT NULL AND l.p < l.top
),
picked AS (
    SELECT ctid FROM (SELECT * FROM candidates UNION ALL SELECT * FROM aged) AS both_
    ORDER BY effective DESC, run_at, id
    LIMIT %(limit)s
),
-- end: aging
-- without: aging
picked AS (SELECT ctid FROM candidates),
-- end: aging
claimed AS (
    UPDATE {schema}.jobs j
    SET state = 'running',
        -- least(): a row SQL set to the integer's limit must not fail every claim.
        attempts = least(j.attempts, 2147483646) + 1,
        -- One token per claim, not per job: a write is fenced by (id, token), and
        -- each claim's token is fresh, so no two attempts of a job share a pair.
        -- A strong random number per job cost about a tenth of the claim's CPU.
        lease = (SELECT token FROM attempt),
        worker_id = %(worker_id)s,
        started_at = now(),
        lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
        progress = NULL  -- a new attempt starts with none: it reports its own
    -- By the rows' addresses, which the locks above hold still: a TID scan, with
    -- no index to search and no plan to choose (a join on the CTE may be planned
    -- as a hash join over a sequential scan of the whole table).
    WHERE j.ctid = ANY(ARRAY(SELECT ctid FROM picked))
    RETURNING j.id, j.task, j.queue, j.attempts, j.max_attempts, j.lease, j.args, j.kwargs,
              j.headers, j.priority, j.run_at, j.workflow_id
)
SELECT id, task, queue, attempts, max_attempts, lease, args::text, kwargs::text, headers::text,
       workflow_id IS NOT NULL
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
    FROM unnest(%(ids)b::bigint[], %(leases)b::uuid[], %(queues)b::text[],
                %(states)b::{schema}.job_state[],
                %(retry_in)b::float8[], %(values)b::jsonb[], %(error_types)b::text[],
                %(error_messages)b::text[], %(tracebacks)b::text[], %(keep_for)b::float8[],
                %(error_modules)b::text[], %(error_args)b::jsonb[])
         AS o(id, lease, queue, state, retry_in, value, error_type, error_message, traceback,
              keep_for, error_module, error_args)
),
-- A workflow's member is counted under its group's row lock, by the
-- jobs_state_followed trigger as each row below is updated, in whatever order the
-- plan meets the rows. Two batches that each reached two groups, in opposite
-- orders, would each hold a group the other waits for: a deadlock, detected
-- only after deadlock_timeout (1 s). So a batch with members of two groups or
-- more locks them here first, in id order, and such batches queue instead. A
-- batch within one group never holds a group while waiting for another: it
-- takes its lock as before, at the end, holding it no longer than it must
-- (the big group's members, the common case, queue on that one lock). Only
-- the workflow jobs of the batch are looked up (the claim told the worker which
-- they are), and a batch with none leaves this part out.
-- with: workflow
member_of AS MATERIALIZED (
    SELECT DISTINCT s.group_id FROM {schema}.workflow_steps s
    WHERE s.job_id = ANY(%(workflow_ids)b::bigint[]) AND s.group_id IS NOT NULL
),
groups AS MATERIALIZED (
    SELECT g.id FROM {schema}.workflow_groups g
    WHERE g.id IN (SELECT group_id FROM member_of)
      AND (SELECT count(*) FROM member_of) > 1
    ORDER BY g.id
    FOR NO KEY UPDATE
),
-- end: workflow
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
    WHERE j.id = o.id AND j.queue = o.queue AND j.lease = o.lease AND j.state = 'running'
-- with: workflow
      -- Evaluated once, before the first row is updated: the groups locked.
      AND (SELECT count(*) FROM groups) >= 0
-- end: workflow
    RETURNING j.id, j.attempts, j.state, j.queue
),
-- with: kept
-- result_expires: this task's finished jobs are pruned then, not after the retention.
kept AS (
    INSERT INTO {schema}.job_keep (job_id, keep_until)
    SELECT f.id, now() + make_interval(secs => o.keep_for)
    FROM (SELECT * FROM outcome WHERE keep_for IS NOT NULL) o JOIN finished f ON f.id = o.id
    WHERE f.state <> 'queued'
    ON CONFLICT (job_id) DO UPDATE SET keep_until = excluded.keep_until
),
-- end: kept
stored_results AS (
    INSERT INTO {schema}.job_results (job_id, value)
    SELECT f.id, o.value FROM finished f JOIN outcome o ON o.id = f.id
    WHERE f.state = 'succeeded' AND o.value IS NOT NULL
    ON CONFLICT (job_id) DO UPDATE SET value = excluded.value, created_at = now()
),
stored_errors AS (
    INSERT INTO {schema}.job_errors (job_id, attempt, type, message, traceback, module, args)
    SELECT f.id, f.attempts, o.error_type, o.error_message, o.traceback, o.error_module,
           o.error_args
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
-- poll interval. NULL when nothing is scheduled. Only jobs that became due after
-- the worker's last claim began (%(lookback)s seconds ago) or later count: due
-- ones it left are held back (a paused queue, a full limit) and must not make an
-- idle worker spin. Index probes only, however long the backlog: the distinct
-- priorities of a queue by a skip scan of jobs_claim_idx, then in each the first
-- run_at after now. A run_at of 'infinity' (only SQL can write one) is never due.
WITH RECURSIVE levels(queue, p) AS (
    SELECT q.name, (SELECT max(priority) FROM {schema}.jobs
                    WHERE state = 'queued' AND queue = q.name)
    FROM unnest(%(queues)s::text[]) AS q(name)
    UNION ALL
    SELECT l.queue, (SELECT max(priority) FROM {schema}.jobs
                     WHERE state = 'queued' AND queue = l.queue AND priority < l.p)
    FROM levels l WHERE l.p IS NOT NULL
)
SELECT extract(epoch FROM min(j.run_at) - now())::float8
FROM levels l
CROSS JOIN LATERAL (
    SELECT run_at FROM {schema}.jobs
    WHERE state = 'queued' AND queue = l.queue AND priority = l.p
      AND run_at > now() - make_interval(secs => %(lookback)s) AND isfinite(run_at)
    ORDER BY run_at
    LIMIT 1
) AS j
WHERE l.p IS NOT NULL;

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
    JOIN unnest(%(ids)b::bigint[], %(leases)b::uuid[], %(queues)b::text[]) AS h(id, lease, queue)
      ON j.id = h.id AND j.queue = h.queue AND j.lease = h.lease
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
    FROM unnest(%(ids)b::bigint[], %(leases)b::uuid[], %(queues)b::text[]) AS h(id, lease, queue)
    WHERE j.id = h.id AND j.queue = h.queue AND j.lease = h.lease AND j.state = 'running'
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
FROM unnest(%(ids)b::bigint[], %(leases)b::uuid[], %(queues)b::text[]) AS r(id, lease, queue)
WHERE j.id = r.id AND j.queue = r.queue AND j.lease = r.lease AND j.state = 'running'
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
FROM unnest(%(ids)b::bigint[], %(leases)b::uuid[], %(queues)b::text[]) AS d(id, lease, queue)
WHERE j.id = d.id AND j.queue = d.queue AND j.lease = d.lease AND j.state = 'running'
  AND j.created_at > now() - make_interval(secs => %(grace_seconds)s)
RETURNING j.id;

-- name: get_job :one
-- Everything a JobResult shows, in one round trip: the job, its result,
-- its latest error and its progress.
SELECT j.id, j.task, j.queue, j.state::text, j.attempts, j.max_attempts, j.priority,
       j.run_at, j.created_at, j.started_at, j.finished_at,
       r.value::text, e.type, e.message, e.traceback, e.cause_job, j.progress::text,
       e.module, e.args::text, j.cancel_requested
FROM {schema}.jobs j
LEFT JOIN {schema}.job_results r ON r.job_id = j.id
LEFT JOIN LATERAL (
    SELECT type, message, traceback, cause_job, module, args FROM {schema}.job_errors
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

-- name: expire_jobs :many
-- Queued jobs whose expiry passed end cancelled, never having run, with a
-- JobExpired error saying when; their waiters are told. (The claim already
-- skips them; this records it.) Read from job_expiry, whose rows all go once
-- due: the job expired, or it had started (or ended) in time.
WITH due AS (
    SELECT job_id, expires_at FROM {schema}.job_expiry
    WHERE expires_at <= now()
    ORDER BY expires_at LIMIT 1000
    FOR UPDATE SKIP LOCKED
),
expired AS (
    UPDATE {schema}.jobs j
    SET state = 'cancelled', finished_at = now()
    FROM due
    WHERE j.id = due.job_id AND j.state = 'queued'
    RETURNING j.id, j.attempts, j.expires_at
),
filed AS (
    DELETE FROM {schema}.job_expiry x USING due WHERE x.job_id = due.job_id
),
noted AS (
    INSERT INTO {schema}.job_errors (job_id, attempt, type, message, traceback)
    SELECT id, attempts + 1, 'JobExpired',
           format('not started before it expired at %%s', expires_at), ''
    FROM expired
    ON CONFLICT (job_id, attempt) DO NOTHING
),
told AS (
    SELECT pg_notify(%(done_channel)s, CASE WHEN count(*) < 500 THEN string_agg(id::text, ',')
                                            ELSE '' END)
    FROM expired HAVING count(*) > 0
)
SELECT id FROM expired, (SELECT count(*) FROM told) AS t;

-- name: claim_limited_jobs :many :unprepared
-- Jobs under a rate or concurrency limit, claimed only where every limit they
-- are under has room (claim_limited(), migration 0012, says how it counts).
SELECT id, task, queue, attempts, max_attempts, lease, args::text, kwargs::text, headers::text,
       workflow_id IS NOT NULL
FROM {schema}.claim_limited(%(worker_id)s, %(queues)s::text[], %(limit)s, %(lease_seconds)s);

-- name: sync_task_limits :none
-- A worker's tasks' limits as its code declares them: set for those with one,
-- removed for those without (so taking a limit out of the code lifts it).
WITH given AS (
    SELECT * FROM unnest(%(tasks)s::text[], %(rates)s::int[], %(windows)s::float8[],
                         %(concurrencies)s::int[]) AS g(task, rate, rate_window, concurrency)
),
upserted AS (
    INSERT INTO {schema}.task_limits (task, rate, rate_window, concurrency)
    SELECT task, rate, rate_window, concurrency FROM given
    WHERE rate IS NOT NULL OR concurrency IS NOT NULL
    ON CONFLICT (task) DO UPDATE
    SET rate = excluded.rate, rate_window = excluded.rate_window,
        concurrency = excluded.concurrency, updated_at = now()
)
DELETE FROM {schema}.task_limits t USING given g
WHERE t.task = g.task AND g.rate IS NULL AND g.concurrency IS NULL;

-- name: limits_in_force :one
-- What a worker must leave to claim_limited: every task with a limit, and its
-- queues that have one. Read each heartbeat, so a change applies within one.
SELECT coalesce((SELECT array_agg(task ORDER BY task) FROM {schema}.task_limits), '{{}}'),
       coalesce((SELECT array_agg(name ORDER BY name) FROM {schema}.queues
                 WHERE name = ANY(%(queues)s::text[])
                   AND (rate IS NOT NULL OR concurrency IS NOT NULL)), '{{}}');

-- name: seconds_until_limit_room :one
-- When the next rate bucket allows a start: how long an idle worker with limits
-- in force sleeps at most. clock_timestamp(): this reads the time now, not the
-- transaction's start.
SELECT extract(epoch FROM min(next_at) - clock_timestamp())::float8
FROM {schema}.limit_buckets WHERE next_at > clock_timestamp();

-- name: update_progress :many :unprepared
-- The latest progress of many running jobs in one statement: a worker's batch,
-- at most every half second, plus one just before it records outcomes. Each row
-- is applied only while its attempt still holds the job (running, same lease),
-- so a report from a lost or finished attempt changes nothing. Only the progress
-- column changes (no indexed one), so the update can be HOT. A row someone has
-- locked right now (the heartbeat, an atomic task recording its completion, an
-- admin's UPDATE) is skipped rather than waited for, so progress never stalls
-- the worker's connection; it comes back with false, and the worker tries that
-- report again. updated_at is the database's clock.
WITH reported AS (
    SELECT * FROM unnest(%(ids)b::bigint[], %(leases)b::uuid[], %(progress)b::jsonb[])
                  AS p(id, lease, progress)
),
held AS (
    SELECT j.id FROM {schema}.jobs j
    JOIN reported p ON j.id = p.id AND j.lease = p.lease
    WHERE j.state = 'running'
),
lockable AS (
    SELECT j.id FROM {schema}.jobs j
    WHERE j.id IN (SELECT id FROM held)
    FOR UPDATE SKIP LOCKED
),
written AS (
    UPDATE {schema}.jobs j
    SET progress = p.progress || jsonb_build_object('updated_at', now())
    FROM reported p
    WHERE j.id = p.id AND j.lease = p.lease AND j.state = 'running'
      AND j.id IN (SELECT id FROM lockable)
    RETURNING j.id
)
SELECT id, true FROM written
UNION ALL
SELECT id, false FROM held WHERE id NOT IN (SELECT id FROM lockable);

-- name: get_progress :many
-- JobResult.progress, polled while a job runs: the one column, not the whole
-- job with its result (no row: no such job).
SELECT progress::text FROM {schema}.jobs WHERE id = %(id)s;
