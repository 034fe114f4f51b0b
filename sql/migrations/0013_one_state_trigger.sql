-- One trigger instead of three on jobs' state. Every UPDATE OF state (each
-- claim, each finish) paid for each row trigger: Postgres compiles each
-- trigger's WHEN clause once per statement and evaluates it per row, which cost
-- a claim of 25 jobs about 10,000 instructions a job (callgrind) for triggers
-- that plain jobs never need. One trigger, with the shortest WHEN, does the
-- work of jobs_unique_key (0011), jobs_workflow_replayed and jobs_workflow
-- (0009), in that order, as they fired (triggers fire by name).

DROP TRIGGER jobs_unique_key ON jobs;
DROP TRIGGER jobs_workflow_replayed ON jobs;
DROP TRIGGER jobs_workflow ON jobs;
DROP FUNCTION job_key_follow();
DROP FUNCTION workflow_step_replayed();
DROP FUNCTION workflow_step_ended();

-- A keyed job that ends releases its key (the window, if any, still holds it);
-- one put back on its queue (replay) holds it again, if nobody took it since.
-- A failed (or cancelled) workflow member put back on its queue is no longer
-- counted as failed in its group; what its failure cancelled stays cancelled.
-- A workflow job that ends (succeeded, failed or cancelled, by whatever
-- statement) releases or cancels its dependents, enqueues its link_error
-- callbacks, and is counted in its group; a group's waiters are told on the
-- done channel by the group's id, negated (job ids are positive).
CREATE FUNCTION job_state_followed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    step workflow_steps%ROWTYPE;
    grp workflow_groups%ROWTYPE;
    err record;
    cause bigint;
BEGIN
    IF OLD.state IS NOT DISTINCT FROM NEW.state THEN
        RETURN NULL;
    END IF;
    IF NEW.unique_key IS NOT NULL
       AND (NEW.state IN ('succeeded', 'failed', 'cancelled')
            OR OLD.state IN ('succeeded', 'failed', 'cancelled')) THEN
        UPDATE job_keys
        SET released_at = CASE WHEN NEW.state IN ('succeeded', 'failed', 'cancelled')
                               THEN now() END
        WHERE key = NEW.unique_key AND job_id = NEW.id;
    END IF;
    IF NEW.workflow_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF OLD.state IN ('failed', 'cancelled') AND NEW.state = 'queued' THEN
        UPDATE workflow_groups g SET failed = greatest(g.failed - 1, 0), finished_at = NULL
        FROM workflow_steps s WHERE s.job_id = NEW.id AND g.id = s.group_id;
        RETURN NULL;
    END IF;
    IF NEW.state NOT IN ('succeeded', 'failed', 'cancelled') THEN
        RETURN NULL;
    END IF;

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

CREATE TRIGGER jobs_state_followed AFTER UPDATE OF state ON jobs
    FOR EACH ROW
    -- As short as it can be: Postgres compiles it in every statement that updates a
    -- job's state (the function looks at the states). A claim never fires it.
    WHEN ((NEW.workflow_id IS NOT NULL OR NEW.unique_key IS NOT NULL)
          AND NEW.state <> 'running')
    EXECUTE FUNCTION job_state_followed();
