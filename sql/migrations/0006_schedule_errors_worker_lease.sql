-- Bad schedule rows are skipped and reported, not fatal; a worker is "down"
-- once its heartbeat is older than its own lease.

-- Set by the scheduler when a schedule's rule or time zone can't be evaluated
-- (the schedule is skipped, every other one keeps firing); cleared when it fires.
ALTER TABLE schedules ADD COLUMN error text;
ALTER TABLE schedules ADD COLUMN error_at timestamptz;

-- The lease the worker runs with: after that long without a heartbeat its jobs
-- are rescued, so that is also when monitoring should call it down.
ALTER TABLE workers ADD COLUMN lease_seconds double precision NOT NULL DEFAULT 30;
