-- Workflows (canvas): chains, groups, chords and link callbacks, kept in tables
-- so that they survive any worker's death.
--
-- Every job of a workflow is written when the workflow is enqueued. A step that
-- waits for another (the next step of a chain, a link callback, a chord's
-- callback) is inserted 'waiting': no claim sees it (jobs_claim_idx holds only
-- queued rows). When a job ends, the trigger below runs in the same transaction
-- as the fenced statement that ended it (finish_jobs, the rescuer, a cancel), so
-- a step is released, cancelled or counted exactly once: a zombie worker's late
-- completion is refused by its lease before the trigger can see it.

-- Usable once this migration has committed: nothing below compares a state to
-- 'waiting' outside a function body or a text comparison.
ALTER TYPE job_state ADD VALUE IF NOT EXISTS 'waiting' BEFORE 'queued';

-- NULL for plain jobs: the trigger's WHEN clause then skips them at no cost.
ALTER TABLE jobs ADD COLUMN workflow_id bigint;

-- For a step cancelled because an earlier one failed (it never ran): the job
-- whose error it carries, so the workflow's result raises that step's error.
ALTER TABLE job_errors ADD COLUMN cause_job bigint;

-- One row per canvas enqueued (kind: the outermost shape).
CREATE TABLE workflows (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A group's counters, which a chord's callback waits on. Updated under the row
-- lock by the trigger, in the transaction that ends each member: the member
-- that makes succeeded = size is the one that releases the callback.
CREATE TABLE workflow_groups (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id bigint NOT NULL,
    size        integer NOT NULL,
    succeeded   integer NOT NULL DEFAULT 0,
    failed      integer NOT NULL DEFAULT 0,
    finished_at timestamptz
);

-- One row per job of a workflow: what it waits for and what it belongs to.
CREATE TABLE workflow_steps (
    job_id      bigint PRIMARY KEY,
    workflow_id bigint NOT NULL,
    after_job   bigint,      -- released when this job succeeds (chain step, link)
    after_group bigint,      -- released when every member of this group succeeded
    pass_result boolean NOT NULL DEFAULT true,  -- false: an immutable signature (si)
    countdown   double precision,               -- its delay, counted from its release
    group_id    bigint,      -- a member of this group (its result is the member's)
    group_index integer,     -- its place in the group's results
    errbacks    jsonb,       -- link_error signatures, enqueued if it fails
    errback_of  bigint       -- this job is a link_error callback of that job
);
CREATE INDEX workflow_steps_after_job_idx ON workflow_steps (after_job)
    WHERE after_job IS NOT NULL;
CREATE INDEX workflow_steps_after_group_idx ON workflow_steps (after_group)
    WHERE after_group IS NOT NULL;
CREATE INDEX workflow_steps_group_idx ON workflow_steps (group_id, group_index)
    WHERE group_id IS NOT NULL;
CREATE INDEX workflow_steps_workflow_idx ON workflow_steps (workflow_id);

-- Waiting steps wake no worker when they are inserted; the trigger below wakes
-- their queue when it releases them.
CREATE OR REPLACE FUNCTION notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM inserted WHERE state::text <> 'waiting') AS q;
    RETURN NULL;
END
$$;

-- Cancel every step that waits, directly or down a chain, on a job that will
-- never succeed, carrying that job's error. Returns the ids cancelled. The
-- cancelled steps' own trigger runs then count them in their groups.
CREATE FUNCTION workflow_cancel_after(ended bigint, etype text, emessage text,
                                      etraceback text, cause bigint) RETURNS bigint[]
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ids bigint[];
BEGIN
    WITH RECURSIVE down(id) AS (
        SELECT s.job_id FROM workflow_steps s WHERE s.after_job = ended
        UNION
        SELECT s.job_id FROM workflow_steps s JOIN down d ON s.after_job = d.id
    ),
    cancelled AS (
        UPDATE jobs j SET state = 'cancelled', finished_at = now()
        FROM down WHERE j.id = down.id AND j.state = 'waiting'
        RETURNING j.id
    ),
    noted AS (
        INSERT INTO job_errors (job_id, attempt, type, message, traceback, cause_job)
        SELECT id, 0, etype, emessage, etraceback, cause FROM cancelled
        ON CONFLICT (job_id, attempt) DO NOTHING
    )
    SELECT array_agg(id) INTO ids FROM cancelled;
    RETURN ids;
END
$$;

CREATE FUNCTION workflow_cancel_group_dependents(grp bigint, etype text, emessage text,
                                                 cause bigint) RETURNS bigint[]
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ids bigint[];
BEGIN
    WITH cancelled AS (
        UPDATE jobs j SET state = 'cancelled', finished_at = now()
        FROM workflow_steps s
        WHERE s.after_group = grp AND j.id = s.job_id AND j.state = 'waiting'
        RETURNING j.id
    ),
    noted AS (
        INSERT INTO job_errors (job_id, attempt, type, message, traceback, cause_job)
        SELECT id, 0, etype, emessage, '', cause FROM cancelled
        ON CONFLICT (job_id, attempt) DO NOTHING
    )
    SELECT array_agg(id) INTO ids FROM cancelled;
    RETURN ids;
END
$$;

-- Release steps (waiting -> queued) that wait on this job or this group, the
-- value they waited for first in their arguments unless immutable; their delay
-- counts from now. Wakes their queues.
CREATE FUNCTION workflow_release(ended bigint, grp bigint, val jsonb) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    woken bigint;
BEGIN
    WITH due AS (
        SELECT s.job_id, s.pass_result, s.countdown FROM workflow_steps s
        WHERE ended IS NOT NULL AND s.after_job = ended
        UNION ALL
        SELECT s.job_id, s.pass_result, s.countdown FROM workflow_steps s
        WHERE grp IS NOT NULL AND s.after_group = grp
    ),
    released AS (
        UPDATE jobs j
        SET state = 'queued',
            args = CASE WHEN due.pass_result THEN jsonb_build_array(val) || j.args
                        ELSE j.args END,
            run_at = greatest(j.run_at, now() + make_interval(secs => coalesce(due.countdown, 0)))
        FROM due
        WHERE j.id = due.job_id AND j.state = 'waiting'
        RETURNING j.queue
    )
    SELECT count(pg_notify(current_schema() || '.jobs', q.queue)) INTO woken
    FROM (SELECT DISTINCT queue FROM released) AS q;
END
$$;

-- Tell result waiters these steps ended (payloads are capped at 8000 bytes; an
-- empty one tells every waiter to look).
CREATE FUNCTION workflow_notify_done(ids bigint[]) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT pg_notify(current_schema() || '.done',
                     CASE WHEN length(array_to_string(ids, ',')) < 7900
                          THEN array_to_string(ids, ',') ELSE '' END)
    WHERE ids IS NOT NULL;
$$;

-- What happens when a workflow's job ends (succeeded, failed or cancelled, by
-- whatever statement): its dependents are released or cancelled, its link_error
-- callbacks enqueued, and its group counted. A group's waiters are told on the
-- done channel by the group's id, negated (job ids are positive).
CREATE FUNCTION workflow_step_ended() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    step workflow_steps%ROWTYPE;
    grp workflow_groups%ROWTYPE;
    err record;
    cause bigint;
BEGIN
    SELECT * INTO step FROM workflow_steps WHERE job_id = NEW.id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    IF NEW.state = 'succeeded' THEN
        IF EXISTS (SELECT 1 FROM workflow_steps WHERE after_job = NEW.id) THEN
            PERFORM workflow_release(NEW.id, NULL, coalesce(
                (SELECT value FROM job_results WHERE job_id = NEW.id), 'null'::jsonb));
        END IF;
    ELSE
        SELECT e.type, e.message, e.traceback, e.cause_job INTO err
        FROM job_errors e WHERE e.job_id = NEW.id ORDER BY e.attempt DESC LIMIT 1;
        IF NOT FOUND THEN
            SELECT CASE WHEN NEW.state = 'cancelled' THEN 'JobCancelled' ELSE 'UnknownError' END
                       AS type,
                   format('job %s (%s) was %s', NEW.id, NEW.task, NEW.state) AS message,
                   ''::text AS traceback, NULL::bigint AS cause_job
            INTO err;
        END IF;
        cause := coalesce(err.cause_job, NEW.id);
        IF EXISTS (SELECT 1 FROM workflow_steps WHERE after_job = NEW.id) THEN
            PERFORM workflow_notify_done(
                workflow_cancel_after(NEW.id, err.type, err.message, err.traceback, cause));
        END IF;
        -- Errbacks run for the job that failed, and for a chord's callback whose
        -- header failed; not for each step a failure cancelled down a chain.
        IF step.errbacks IS NOT NULL AND (err.cause_job IS NULL OR step.after_group IS NOT NULL)
        THEN
            WITH eb AS (
                INSERT INTO jobs (queue, task, priority, max_attempts, args, kwargs, headers,
                                  workflow_id)
                SELECT e->>'queue', e->>'task', (e->>'priority')::smallint,
                       (e->>'max_attempts')::integer,
                       jsonb_build_array(NEW.id, jsonb_build_object(
                           'type', err.type, 'message', err.message,
                           'traceback', err.traceback)) || (e->'args'),
                       e->'kwargs', nullif(e->'headers', 'null'::jsonb), NEW.workflow_id
                FROM jsonb_array_elements(step.errbacks) AS e
                RETURNING id
            )
            INSERT INTO workflow_steps (job_id, workflow_id, errback_of)
            SELECT id, NEW.workflow_id, NEW.id FROM eb;
        END IF;
    END IF;

    IF step.group_id IS NOT NULL THEN
        UPDATE workflow_groups g
        SET succeeded = g.succeeded + (NEW.state = 'succeeded')::integer,
            failed = g.failed + (NEW.state <> 'succeeded')::integer,
            finished_at = CASE WHEN g.succeeded + g.failed + 1 >= g.size THEN now() END
        WHERE g.id = step.group_id
        RETURNING g.* INTO grp;
        IF NEW.state <> 'succeeded' AND grp.failed = 1 THEN
            PERFORM workflow_notify_done(workflow_cancel_group_dependents(
                grp.id, 'ChordError',
                format('member %s of group %s (job %s, %s) failed: %s', step.group_index + 1,
                       grp.id, NEW.id, NEW.task,
                       CASE WHEN err.message = '' THEN err.type
                            ELSE err.type || ': ' || err.message END),
                cause));
            PERFORM pg_notify(current_schema() || '.done', (-grp.id)::text);
        ELSIF grp.succeeded = grp.size THEN
            IF EXISTS (SELECT 1 FROM workflow_steps WHERE after_group = grp.id) THEN
                PERFORM workflow_release(NULL, grp.id, (
                    SELECT jsonb_agg(coalesce(r.value, 'null'::jsonb) ORDER BY s.group_index)
                    FROM workflow_steps s LEFT JOIN job_results r ON r.job_id = s.job_id
                    WHERE s.group_id = grp.id));
            END IF;
            PERFORM pg_notify(current_schema() || '.done', (-grp.id)::text);
        ELSIF grp.succeeded + grp.failed = grp.size THEN
            PERFORM pg_notify(current_schema() || '.done', (-grp.id)::text);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_workflow AFTER UPDATE OF state ON jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NOT NULL
          AND NEW.state IN ('succeeded', 'failed', 'cancelled')
          AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION workflow_step_ended();

-- A failed (or cancelled) member put back on its queue (replay) is no longer
-- counted as failed in its group: once it succeeds, the group's counts, and so
-- GroupResult.get(), say so. What its failure cancelled stays cancelled.
CREATE FUNCTION workflow_step_replayed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE workflow_groups g SET failed = greatest(g.failed - 1, 0), finished_at = NULL
    FROM workflow_steps s WHERE s.job_id = NEW.id AND g.id = s.group_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_workflow_replayed AFTER UPDATE OF state ON jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NOT NULL
          AND OLD.state IN ('failed', 'cancelled') AND NEW.state = 'queued')
    EXECUTE FUNCTION workflow_step_replayed();

-- One row per workflow: how many of its jobs are in each state, and whether
-- (and when) all of them ended. Documented in the README.
CREATE VIEW workflow_status AS
SELECT w.id, w.kind, w.created_at,
       count(j.id) AS jobs,
       count(*) FILTER (WHERE j.state::text = 'waiting') AS waiting,
       count(*) FILTER (WHERE j.state::text = 'queued') AS queued,
       count(*) FILTER (WHERE j.state::text = 'running') AS running,
       count(*) FILTER (WHERE j.state::text = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE j.state::text = 'failed') AS failed,
       count(*) FILTER (WHERE j.state::text = 'cancelled') AS cancelled,
       coalesce(bool_and(j.finished_at IS NOT NULL), false) AS finished,
       CASE WHEN bool_and(j.finished_at IS NOT NULL) THEN max(j.finished_at) END AS finished_at
FROM workflows w
LEFT JOIN workflow_steps s ON s.workflow_id = w.id
LEFT JOIN jobs j ON j.id = s.job_id
GROUP BY w.id;
