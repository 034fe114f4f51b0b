-- pgqueue schema, version 1.
-- Runs with search_path set to the target schema (see pgqueue/migrate.py), so
-- nothing here names the schema: the same file installs into any schema.

CREATE TYPE job_state AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- The hot table: one narrow row per job. Results and errors live in their own
-- tables so that claim and finish touch only this one. fillfactor leaves room
-- on each page for HOT updates (no indexed column changes on claim/finish
-- except state, which only the partial index sees).
CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_at           timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_expires_at timestamptz,
    worker_id        bigint,
    lease            uuid,
    state            job_state NOT NULL DEFAULT 'queued',
    priority         smallint NOT NULL DEFAULT 0,
    rescues          smallint NOT NULL DEFAULT 0,   -- times its worker was lost mid-run
    cancel_requested boolean NOT NULL DEFAULT false,
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 1,
    queue            text NOT NULL,
    task             text NOT NULL,
    args             jsonb NOT NULL,
    kwargs           jsonb NOT NULL
) WITH (fillfactor = 80);

-- Serves claim_jobs: only queued rows are indexed, in claim order, so the index
-- stays as small as the backlog however many finished jobs are kept.
CREATE INDEX jobs_claim_idx ON jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
-- Serves the rescuer and the "running jobs" view.
CREATE INDEX jobs_running_idx ON jobs (lease_expires_at) WHERE state = 'running';
-- Serves pruning and "recent failures".
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE job_results (
    job_id     bigint PRIMARY KEY,
    value      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per failed attempt: the attempt history, not only the last error.
CREATE TABLE job_errors (
    job_id     bigint NOT NULL,
    attempt    integer NOT NULL,
    type       text NOT NULL,
    message    text NOT NULL,
    traceback  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE workers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    queues       text[] NOT NULL,
    pool         text NOT NULL,
    concurrency  integer NOT NULL,
    jobs_done    bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz
);

-- One NOTIFY per queue per INSERT statement (not per row): a 1,000-row batch
-- wakes each worker once. The channel carries the schema so that two pgqueue
-- schemas in one database don't wake each other's workers.
CREATE FUNCTION notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM inserted) AS q;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION notify_jobs();

-- Views for people with psql. Documented in the README.
CREATE VIEW queue_stats AS
SELECT queue,
       count(*) FILTER (WHERE state = 'queued')    AS queued,
       count(*) FILTER (WHERE state = 'queued' AND run_at > now()) AS scheduled,
       count(*) FILTER (WHERE state = 'running')   AS running,
       count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE state = 'failed')    AS failed,
       count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
       now() - min(run_at) FILTER (WHERE state = 'queued' AND run_at <= now()) AS oldest_waiting
FROM jobs
GROUP BY queue;

CREATE VIEW worker_status AS
SELECT w.id, w.name, w.host, w.pid, w.queues, w.pool, w.concurrency, w.jobs_done,
       w.started_at, w.heartbeat_at,
       now() - w.heartbeat_at AS heartbeat_age,
       CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
            WHEN now() - w.heartbeat_at > interval '60 seconds' THEN 'down'
            ELSE 'up' END AS status,
       (SELECT count(*) FROM jobs j WHERE j.state = 'running' AND j.worker_id = w.id) AS running
FROM workers w;

CREATE VIEW running_jobs AS
SELECT j.id, j.queue, j.task, j.attempts, j.started_at, now() - j.started_at AS running_for,
       j.lease_expires_at, w.name AS worker, w.host, w.pid
FROM jobs j
LEFT JOIN workers w ON w.id = j.worker_id
WHERE j.state = 'running';

CREATE VIEW recent_failures AS
SELECT j.id, j.queue, j.task, j.attempts, j.finished_at, e.type AS error_type,
       e.message AS error_message, e.traceback
FROM jobs j
LEFT JOIN LATERAL (
    SELECT * FROM job_errors e WHERE e.job_id = j.id ORDER BY e.attempt DESC LIMIT 1
) e ON true
WHERE j.state = 'failed'
ORDER BY j.finished_at DESC;
