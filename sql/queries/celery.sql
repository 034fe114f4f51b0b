-- Queries of the Celery compatibility layer (pgqueue/celery/).

-- name: celery_remember_task_id :none
-- A task id the producer chose (apply_async(task_id=...)), run in the enqueue's
-- transaction. A re-used id names the newer job, as a Celery backend overwrites.
INSERT INTO {schema}.celery_task_ids (task_id, job_id)
VALUES (%(task_id)s, %(job_id)s)
ON CONFLICT (task_id) DO UPDATE SET job_id = excluded.job_id, created_at = now();

-- name: celery_job_of_task_id :one
-- The job a producer-chosen task id names (no row: none, or pruned).
SELECT job_id FROM {schema}.celery_task_ids WHERE task_id = %(task_id)s;

-- name: celery_forget :one
-- AsyncResult.forget(): a finished job (not a workflow's step, which goes with
-- its workflow) and what belongs to it, at once rather than at pruning; its
-- task ids go by the cascade.
WITH gone AS (
    DELETE FROM {schema}.jobs
    WHERE id = %(id)s AND finished_at IS NOT NULL AND workflow_id IS NULL
    RETURNING id
),
results AS (
    DELETE FROM {schema}.job_results r USING gone WHERE r.job_id = gone.id
),
errors AS (
    DELETE FROM {schema}.job_errors e USING gone WHERE e.job_id = gone.id
),
kept AS (
    DELETE FROM {schema}.job_keep k USING gone WHERE k.job_id = gone.id
)
SELECT count(*) FROM gone;

-- name: celery_group_of_job :one
-- self.request.group: the group a workflow step is a member of (no row or NULL: none).
SELECT group_id FROM {schema}.workflow_steps WHERE job_id = %(id)s;

-- name: celery_job_arguments :one
-- A result's args and kwargs (result_extended): read only when asked for.
SELECT args::text, kwargs::text FROM {schema}.jobs WHERE id = %(id)s;
