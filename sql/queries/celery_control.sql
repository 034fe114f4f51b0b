-- Queries of app.control (pgqueue.celery.control): Celery's inspect and rate_limit,
-- answered from the tables rather than by broadcast to the workers.

-- name: celery_running :many
-- inspect().active(): the jobs running now, with what a Celery task dict shows; the
-- text id a producer chose (celery_task_ids) where there is one. Through
-- jobs_running_idx's predicate (state = 'running'): finished jobs cost nothing.
SELECT j.id, (SELECT t.task_id FROM {schema}.celery_task_ids t WHERE t.job_id = j.id
              ORDER BY t.created_at DESC LIMIT 1),
       j.task, j.args::text, j.kwargs::text, j.queue, j.priority, j.attempts,
       j.started_at, j.worker_id, j.run_at
FROM {schema}.jobs j
WHERE j.state = 'running'
ORDER BY j.started_at, j.id;

-- name: celery_waiting :many
-- inspect().scheduled() (not due yet: an eta or countdown) and reserved() (due,
-- waiting for a worker): queued jobs of the given queues in claim order, at most
-- limit, through jobs_claim_idx.
SELECT j.id, (SELECT t.task_id FROM {schema}.celery_task_ids t WHERE t.job_id = j.id
              ORDER BY t.created_at DESC LIMIT 1),
       j.task, j.args::text, j.kwargs::text, j.queue, j.priority, j.attempts,
       j.started_at, j.worker_id, j.run_at
FROM {schema}.jobs j
WHERE j.state = 'queued' AND j.queue = ANY(%(queues)s::text[])
  AND (j.run_at > now()) = %(future)s::boolean
ORDER BY j.priority DESC, j.run_at, j.id
LIMIT %(limit)s;

-- name: celery_worker_totals :many
-- inspect().stats()'s "total": jobs each given worker finished, by task, since the
-- earliest of them started (through jobs_finished_idx).
SELECT j.worker_id, j.task, count(*)
FROM {schema}.jobs j
WHERE j.finished_at >= %(since)s AND j.worker_id = ANY(%(workers)s::bigint[])
GROUP BY j.worker_id, j.task;

-- name: set_task_rate :one
-- app.control.rate_limit(task, "10/m"): the task's rate set at run time, its
-- concurrency limit kept. Workers read it within a heartbeat (limits_in_force). A
-- worker that starts with the task in its code writes the code's limits back, as a
-- Celery worker forgets a rate_limit command when it restarts.
INSERT INTO {schema}.task_limits AS t (task, rate, rate_window)
VALUES (%(task)s, %(rate)s, %(rate_window)s)
ON CONFLICT (task) DO UPDATE
SET rate = excluded.rate, rate_window = excluded.rate_window, updated_at = now()
RETURNING t.task, t.rate, t.rate_window, t.concurrency;

-- name: lift_task_rate :many
-- rate_limit(task, None): no rate. A row left with no limit at all goes, so the
-- worker no longer claims the task through claim_limited.
WITH lifted AS (
    UPDATE {schema}.task_limits SET rate = NULL, rate_window = NULL, updated_at = now()
    WHERE task = %(task)s AND concurrency IS NOT NULL
    RETURNING task
)
DELETE FROM {schema}.task_limits t
WHERE t.task = %(task)s AND t.concurrency IS NULL
RETURNING t.task;

-- name: celery_purge :many
-- app.control.purge(): every queued job of the given queues is cancelled (it never
-- runs), as cancel_job does for one, and waiters hear it on the done channel. Jobs
-- waiting on a workflow step aren't queued: like a Celery callback not yet sent,
-- they are left alone. Through jobs_claim_idx.
WITH target AS (
    UPDATE {schema}.jobs
    SET cancel_requested = true, state = 'cancelled', finished_at = now()
    WHERE state = 'queued' AND queue = ANY(%(queues)s::text[])
    RETURNING id
)
SELECT t.id, pg_notify(%(done_channel)s, t.id::text) FROM target t;
