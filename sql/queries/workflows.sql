-- Queries on workflows (chain, group, chord, link callbacks). What happens when
-- a step ends is not here: the jobs_state_followed trigger (migration 0013) does it,
-- inside the statement that ended the step.

-- name: enqueue_workflow :many :unprepared
-- A whole canvas in one statement: its workflow rows, its groups and every job
-- (each step that waits for another is inserted 'waiting'), so the workflow
-- exists entirely or, if the caller's transaction rolls back, not at all.
-- Ids are drawn first (nextval), so that steps can name the jobs and groups
-- they wait for by their place in the arrays. Unprepared: planned with the
-- arrays' real lengths, the joins on n are hash joins, not nested loops.
WITH wf AS MATERIALIZED (
    SELECT k.n, nextval(pg_get_serial_sequence(%(workflows_table)s, 'id')) AS id, k.kind
    FROM unnest(%(kinds)b::text[]) WITH ORDINALITY AS k(kind, n)
),
wf_in AS (
    INSERT INTO {schema}.workflows (id, kind) OVERRIDING SYSTEM VALUE
    SELECT id, kind FROM wf
),
gr AS MATERIALIZED (
    SELECT g.n, nextval(pg_get_serial_sequence(%(groups_table)s, 'id')) AS id, g.wf, g.size
    FROM unnest(%(group_workflows)b::int[], %(group_sizes)b::int[])
         WITH ORDINALITY AS g(wf, size, n)
),
gr_in AS (
    INSERT INTO {schema}.workflow_groups (id, workflow_id, size) OVERRIDING SYSTEM VALUE
    SELECT gr.id, wf.id, gr.size FROM gr JOIN wf ON wf.n = gr.wf
),
spec AS MATERIALIZED (
    SELECT s.*, nextval(pg_get_serial_sequence(%(jobs_table)s, 'id')) AS id
    FROM unnest(%(queues)b::text[], %(tasks)b::text[], %(priorities)b::smallint[],
                %(etas)b::timestamptz[], %(countdowns)b::float8[], %(max_attempts)b::int[],
                %(args)b::jsonb[], %(kwargs)b::jsonb[], %(headers)b::jsonb[],
                %(workflows)b::int[], %(waiting)b::bool[], %(after_jobs)b::int[],
                %(after_groups)b::int[], %(pass_results)b::bool[], %(member_of)b::int[],
                %(member_index)b::int[], %(errbacks)b::jsonb[],
                %(expires_ats)b::timestamptz[], %(expires_ins)b::float8[],
                %(rate_keys)b::text[], %(concurrency_keys)b::text[])
         WITH ORDINALITY AS s(queue, task, priority, eta, countdown, max_attempts, args,
                              kwargs, headers, wf, waiting, after_job, after_group,
                              pass_result, member_of, member_index, errbacks, expires_at,
                              expires_in, rate_key, concurrency_key, n)
),
jobs_in AS (
    INSERT INTO {schema}.jobs (id, queue, task, priority, run_at, max_attempts, args, kwargs,
                               headers, state, workflow_id, expires_at, rate_key,
                               concurrency_key) OVERRIDING SYSTEM VALUE
    SELECT s.id, s.queue, s.task, s.priority,
           -- A waiting step's delay counts from its release (workflow_release).
           CASE WHEN s.waiting THEN coalesce(s.eta, now())
                ELSE coalesce(s.eta, now() + make_interval(secs => coalesce(s.countdown, 0)))
           END,
           s.max_attempts, s.args, s.kwargs, s.headers,
           CASE WHEN s.waiting THEN 'waiting' ELSE 'queued' END::{schema}.job_state, wf.id,
           coalesce(s.expires_at, now() + make_interval(secs => s.expires_in)),
           s.rate_key, s.concurrency_key
    FROM spec s JOIN wf ON wf.n = s.wf
    ORDER BY s.n
    RETURNING id, created_at, expires_at
),
expiring AS (  -- the expiry sweep's list (migration 0011)
    INSERT INTO {schema}.job_expiry (job_id, expires_at)
    SELECT id, expires_at FROM jobs_in WHERE expires_at IS NOT NULL
),
steps_in AS (
    INSERT INTO {schema}.workflow_steps (job_id, workflow_id, after_job, after_group,
                                         pass_result, countdown, group_id, group_index,
                                         errbacks)
    SELECT s.id, wf.id, aj.id, ag.id, s.pass_result,
           CASE WHEN s.waiting THEN s.countdown END, mg.id, s.member_index, s.errbacks
    FROM spec s
    JOIN wf ON wf.n = s.wf
    LEFT JOIN spec aj ON aj.n = s.after_job
    LEFT JOIN gr ag ON ag.n = s.after_group
    LEFT JOIN gr mg ON mg.n = s.member_of
)
SELECT s.id, j.created_at,
       (SELECT array_agg(id ORDER BY n) FROM wf),
       (SELECT coalesce(array_agg(id ORDER BY n), '{{}}') FROM gr)
FROM spec s JOIN jobs_in j ON j.id = s.id
ORDER BY s.n;

-- name: group_status :one
-- A group's counters: how many members, how many succeeded, how many failed.
SELECT size, succeeded, failed FROM {schema}.workflow_groups WHERE id = %(id)s;

-- name: group_members :many
-- A group's members in order, each as get_job reads a job: its state, result
-- and latest error (with the job it came from, for a step that never ran).
SELECT j.id, j.task, j.queue, j.state::text, j.attempts, j.max_attempts, j.priority,
       j.run_at, j.created_at, j.started_at, j.finished_at,
       r.value::text, e.type, e.message, e.traceback, e.cause_job, j.progress::text,
       e.module, e.args::text, j.cancel_requested
FROM {schema}.workflow_steps s
JOIN {schema}.jobs j ON j.id = s.job_id
LEFT JOIN {schema}.job_results r ON r.job_id = j.id
LEFT JOIN LATERAL (
    SELECT type, message, traceback, cause_job, module, args FROM {schema}.job_errors
    WHERE job_id = j.id ORDER BY attempt DESC LIMIT 1
) e ON true
WHERE s.group_id = %(id)s
ORDER BY s.group_index;

-- name: workflow_of_job :one
-- `pgq workflows show --job ID`: no row, no such job; a NULL, a plain job.
SELECT workflow_id FROM {schema}.jobs WHERE id = %(id)s;

-- name: workflow_steps :many
-- Every job of a workflow, with what it waits for and belongs to: what
-- `pgq workflows show` and the dashboard draw as a tree (monitor_tree.py),
-- each with its latest error (and, for a step cancelled because an earlier
-- one failed, the job that error came from).
SELECT j.id, j.task, j.queue, j.state::text, j.attempts, j.created_at, j.finished_at,
       s.after_job, s.after_group, s.group_id, s.group_index, s.errback_of, s.pass_result,
       e.type, e.message, e.cause_job
FROM {schema}.workflow_steps s
JOIN {schema}.jobs j ON j.id = s.job_id
LEFT JOIN LATERAL (
    SELECT type, message, cause_job FROM {schema}.job_errors
    WHERE job_id = j.id ORDER BY attempt DESC LIMIT 1
) e ON true
WHERE s.workflow_id = %(id)s
ORDER BY j.id;

-- name: workflow_groups :many
SELECT id, size, succeeded, failed, finished_at FROM {schema}.workflow_groups
WHERE workflow_id = %(id)s ORDER BY id;

-- name: workflow_groups_by_id :many
-- The groups a job's page names (the one it belongs to, the one it waits for).
SELECT id, size, succeeded, failed, finished_at FROM {schema}.workflow_groups
WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id;

-- name: workflow_summary :one
SELECT id, kind, created_at, jobs, waiting, queued, running, succeeded, failed, cancelled,
       finished, finished_at
FROM {schema}.workflow_status WHERE id = %(id)s;

-- name: workflow_list :many
-- The newest workflows with their counts. The ids are picked first, newest by
-- the primary key, then the view is read for each: OFFSET 0 keeps the planner
-- from flattening the lateral subquery into one aggregate over every workflow,
-- so the id reaches the view's GROUP BY and only the listed ones are counted.
SELECT v.id, v.kind, v.created_at, v.jobs, v.waiting, v.queued, v.running, v.succeeded,
       v.failed, v.cancelled, v.finished, v.finished_at
FROM (SELECT id FROM {schema}.workflows ORDER BY id DESC LIMIT %(limit)s) w
CROSS JOIN LATERAL (SELECT * FROM {schema}.workflow_status s WHERE s.id = w.id OFFSET 0) v
ORDER BY v.id DESC;

-- name: workflow_neighbours :many
-- A job's place in its workflow, for its page, read without the whole
-- workflow (a group may have thousands of members): its own step ('self'),
-- what it waits for ('parent': the previous job, or every member of a chord's
-- header), the job it is an errback of, the other members of its group
-- ('sibling'), the steps waiting for it or for its group ('callback') and its
-- errbacks: each list cut at %(cap)s, and counted whole in the last four
-- columns. No row: the job is not part of a workflow.
WITH me AS MATERIALIZED (
    SELECT * FROM {schema}.workflow_steps WHERE job_id = %(id)s
),
related(relation, job_id) AS (
    SELECT 'self', job_id FROM me
    UNION ALL
    SELECT 'parent', after_job FROM me WHERE after_job IS NOT NULL
    UNION ALL
    SELECT 'errback_of', errback_of FROM me WHERE errback_of IS NOT NULL
    UNION ALL
    (SELECT 'parent', s.job_id FROM me JOIN {schema}.workflow_steps s
         ON s.group_id = me.after_group
     ORDER BY s.group_index, s.job_id LIMIT %(cap)s)
    UNION ALL
    (SELECT 'sibling', s.job_id FROM me JOIN {schema}.workflow_steps s
         ON s.group_id = me.group_id AND s.job_id <> me.job_id
     ORDER BY s.group_index, s.job_id LIMIT %(cap)s)
    UNION ALL
    (SELECT 'callback', s.job_id FROM me JOIN {schema}.workflow_steps s
         ON s.after_job = me.job_id OR s.after_group = me.group_id
     ORDER BY s.job_id LIMIT %(cap)s)
    UNION ALL
    -- No index on errback_of: the workflow's own rows are searched.
    (SELECT 'errback', s.job_id FROM me JOIN {schema}.workflow_steps s
         ON s.workflow_id = me.workflow_id AND s.errback_of = me.job_id
     ORDER BY s.job_id LIMIT %(cap)s)
),
counts AS MATERIALIZED (
    SELECT CASE WHEN me.after_group IS NOT NULL
                THEN (SELECT count(*) FROM {schema}.workflow_steps s
                      WHERE s.group_id = me.after_group)
                ELSE (me.after_job IS NOT NULL)::int END AS parents,
           (SELECT count(*) FROM {schema}.workflow_steps s
            WHERE s.group_id = me.group_id AND s.job_id <> me.job_id) AS siblings,
           (SELECT count(*) FROM {schema}.workflow_steps s
            WHERE s.after_job = me.job_id OR s.after_group = me.group_id) AS callbacks,
           (SELECT count(*) FROM {schema}.workflow_steps s
            WHERE s.workflow_id = me.workflow_id AND s.errback_of = me.job_id) AS errbacks
    FROM me
)
SELECT r.relation, me.workflow_id,
       j.id, j.task, j.queue, j.state::text, j.attempts, j.created_at, j.finished_at,
       s.after_job, s.after_group, s.group_id, s.group_index, s.errback_of,
       coalesce(s.pass_result, true), e.type, e.message, e.cause_job,
       c.parents, c.siblings, c.callbacks, c.errbacks
FROM related r
CROSS JOIN me
CROSS JOIN counts c
JOIN {schema}.jobs j ON j.id = r.job_id
LEFT JOIN {schema}.workflow_steps s ON s.job_id = j.id
LEFT JOIN LATERAL (
    SELECT type, message, cause_job FROM {schema}.job_errors
    WHERE job_id = j.id ORDER BY attempt DESC LIMIT 1
) e ON true
ORDER BY r.relation, s.group_index, j.id;

-- name: prune_workflows :one
-- Workflows go whole: once every one of their jobs has ended and the last
-- ended longer ago than the retention, with their jobs, results, errors,
-- steps and groups (prune_finished leaves workflow jobs alone).
WITH old AS (
    SELECT w.id FROM {schema}.workflows w
    WHERE w.created_at < now() - make_interval(secs => %(retention_seconds)s)
      AND NOT EXISTS (
          SELECT 1 FROM {schema}.workflow_steps s JOIN {schema}.jobs j ON j.id = s.job_id
          WHERE s.workflow_id = w.id
            AND (j.finished_at IS NULL
                 OR j.finished_at >= now() - make_interval(secs => %(retention_seconds)s)))
    ORDER BY w.id
    LIMIT greatest(%(batch)s / 100, 1)
    FOR UPDATE SKIP LOCKED
),
steps AS (
    DELETE FROM {schema}.workflow_steps s USING old WHERE s.workflow_id = old.id
    RETURNING s.job_id
),
gone AS (
    DELETE FROM {schema}.jobs j USING steps WHERE j.id = steps.job_id RETURNING j.id
),
results AS (
    DELETE FROM {schema}.job_results r USING gone WHERE r.job_id = gone.id
),
errors AS (
    DELETE FROM {schema}.job_errors e USING gone WHERE e.job_id = gone.id
),
groups AS (
    DELETE FROM {schema}.workflow_groups g USING old WHERE g.workflow_id = old.id
),
workflows AS (
    DELETE FROM {schema}.workflows w USING old WHERE w.id = old.id
)
SELECT count(*) FROM gone;
