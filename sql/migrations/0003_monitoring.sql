-- Monitoring and operations: pausable queues, indexes for the dashboard's job
-- lists, and views that show in psql what the dashboard shows.

-- A queue listed here with paused = true is skipped by claim_jobs; its jobs wait.
CREATE TABLE queues (
    name       text PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Failed and cancelled jobs are few among many succeeded ones: a small partial
-- index keeps "show me the failures" fast with millions of rows kept.
CREATE INDEX jobs_failed_idx ON jobs (id) WHERE state IN ('failed', 'cancelled');

-- Per task over the last hour: outcomes and run times.
CREATE VIEW task_stats AS
SELECT task,
       count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE state = 'failed') AS failed,
       count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
       sum(greatest(attempts - 1, 0)) AS retried,
       round((avg(extract(epoch FROM finished_at - started_at))
              FILTER (WHERE state = 'succeeded') * 1000)::numeric, 2) AS mean_runtime_ms,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
              FILTER (WHERE state = 'succeeded') * 1000)::numeric, 2) AS p95_runtime_ms
FROM jobs
WHERE finished_at > now() - interval '1 hour'
GROUP BY task;

-- Jobs finished per minute over the last hour.
CREATE VIEW throughput_per_minute AS
SELECT date_trunc('minute', finished_at) AS minute,
       count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE state = 'failed') AS failed
FROM jobs
WHERE finished_at > now() - interval '1 hour'
GROUP BY 1
ORDER BY 1;

CREATE VIEW paused_queues AS
SELECT name, updated_at AS paused_since FROM queues WHERE paused;
