-- Monitoring views that follow migration 0006: workers down after their lease,
-- schedules with the error that makes the scheduler skip them.

-- A worker is "down" once its heartbeat is older than its own lease (migration
-- 0006 stores it), not after a fixed 60 s: that is when the rescuer takes its
-- jobs, so a SIGKILLed worker shows as down from the moment its jobs are re-queued.
-- Same columns as before, in the same order, plus lease_seconds at the end.
CREATE OR REPLACE VIEW worker_status AS
SELECT w.id, w.name, w.host, w.pid, w.queues, w.pool, w.concurrency, w.jobs_done,
       w.started_at, w.heartbeat_at,
       now() - w.heartbeat_at AS heartbeat_age,
       CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
            WHEN w.heartbeat_at < now() - make_interval(secs => w.lease_seconds) THEN 'down'
            ELSE 'up' END AS status,
       (SELECT count(*) FROM jobs j WHERE j.state = 'running' AND j.worker_id = w.id) AS running,
       w.lease_seconds
FROM workers w;

-- The schedules view also says why a schedule is skipped (migration 0006's columns).
CREATE OR REPLACE VIEW schedule_status AS
SELECT s.name, s.task, coalesce(s.cron, 'every ' || s.every_seconds || 's') AS rule, s.tz,
       s.queue, s.catch_up, s.paused, s.last_fire_at, s.next_fire_at,
       (SELECT count(*) FROM schedule_ticks t WHERE t.schedule = s.name) AS ticks_kept,
       s.error, s.error_at
FROM schedules s;
