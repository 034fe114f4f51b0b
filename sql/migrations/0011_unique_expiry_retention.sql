-- Unique jobs, expiry and a per-task result retention. Each is a NULL column for
-- the jobs that don't use it: plain jobs pay nothing in space or index writes.

-- A job enqueued with a unique key holds it (job_keys) while it waits or runs,
-- and, when given a window (unique_for), until that long after it was enqueued
-- even once finished. Another enqueue with a held key gets the holder's id.
ALTER TABLE jobs ADD COLUMN unique_key text;
-- Not started by then: cancelled without running (the claim skips it at once,
-- the rescuer's sweep records it).
ALTER TABLE jobs ADD COLUMN expires_at timestamptz;
-- Set by the worker for tasks with result_expires: pruned then instead of after
-- the retention.
ALTER TABLE jobs ADD COLUMN keep_until timestamptz;

-- The primary key is the lock: producers racing on one key serialize on it, and
-- ON CONFLICT sees the winner's row even before their snapshot would.
CREATE TABLE job_keys (
    key         text PRIMARY KEY,
    job_id      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    hold_until  timestamptz,   -- created_at + unique_for; NULL: only while unfinished
    released_at timestamptz    -- when its job ended; NULL while it waits or runs
);

CREATE INDEX jobs_expires_idx ON jobs (expires_at)
    WHERE expires_at IS NOT NULL AND state = 'queued';
CREATE INDEX jobs_keep_until_idx ON jobs (keep_until) WHERE keep_until IS NOT NULL;

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
