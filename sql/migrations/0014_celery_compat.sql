-- What the Celery compatibility layer (pgqueue.celery) needs from the schema.
--
-- 1. An error's exception class and arguments, so a producer can raise the
--    task's exception again as its own type (AsyncResult.get()): the module the
--    class lives in (type stays its qualified name, as before) and its args as
--    JSON (NULL when they can't be stored as JSON). Additive: rows written
--    before, and errors SQL records itself (WorkerLost, JobExpired), have NULLs.
ALTER TABLE job_errors ADD COLUMN module text;
ALTER TABLE job_errors ADD COLUMN args jsonb;

-- 2. Celery task ids chosen by the producer (apply_async(task_id=uuid())): the
--    text id a caller keeps, and the job it names. Written in the enqueue's
--    transaction; a job's ids go with it when it is pruned (the cascade, served
--    by the index on job_id). Re-using an id points it at the newer job, as a
--    Celery result backend overwrites the older task's state.
CREATE TABLE celery_task_ids (
    task_id    text PRIMARY KEY CHECK (length(task_id) BETWEEN 1 AND 255),
    job_id     bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX celery_task_ids_job_idx ON celery_task_ids (job_id);
