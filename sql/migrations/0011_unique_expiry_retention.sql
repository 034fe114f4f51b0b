-- Unique jobs, expiry and a per-task result retention. Each is a NULL column for
-- the jobs that don't use it: plain jobs pay nothing in space or index writes.

-- A job enqueued with a unique key holds it (job_keys) while it waits or runs,
-- and, when given a window (unique_for), until that long after it was enqueued
-- even once finished. Another enqueue with a held key gets the holder's id.
ALTER TABLE jobs ADD COLUMN unique_key text;
-- Not started by then: cancelled without running (the claim skips it at once,
-- the rescuer's sweep records it).
ALTER TABLE jobs ADD COLUMN expires_at timestamptz;

-- The sweep's list and the pruner's are tables of their own, not partial indexes
-- on jobs: every claim and finish of every job would evaluate such an index's
-- predicate (measured: 4% of both statements). A job with an expiry gets a row
-- here from the statement that inserts it; the sweep deletes it.
CREATE TABLE job_expiry (
    job_id     bigint PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX job_expiry_at_idx ON job_expiry (expires_at);

-- Written by the finish of a task with result_expires: its job is pruned then,
-- instead of after the retention.
CREATE TABLE job_keep (
    job_id     bigint PRIMARY KEY,
    keep_until timestamptz NOT NULL
);
CREATE INDEX job_keep_until_idx ON job_keep (keep_until);


-- The primary key is the lock: producers racing on one key serialize on it, and
-- ON CONFLICT sees the winner's row even before their snapshot would.
CREATE TABLE job_keys (
    key         text PRIMARY KEY,
    job_id      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    hold_until  timestamptz,   -- created_at + unique_for; NULL: only while unfinished
    released_at timestamptz    -- when its job ended; NULL while it waits or runs
);


-- A keyed job that ends releases its key (the window, if any, still holds it);
-- one put back on its queue (replay) holds it again, if nobody took it since.
CREATE FUNCTION job_key_follow() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE job_keys
    SET released_at = CASE WHEN NEW.state IN ('succeeded', 'failed', 'cancelled')
                           THEN now() END
    WHERE key = NEW.unique_key AND job_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_unique_key AFTER UPDATE OF state ON jobs
    FOR EACH ROW
    WHEN (NEW.unique_key IS NOT NULL AND OLD.state IS DISTINCT FROM NEW.state
          AND (NEW.state IN ('succeeded', 'failed', 'cancelled')
               OR OLD.state IN ('succeeded', 'failed', 'cancelled')))
    EXECUTE FUNCTION job_key_follow();
