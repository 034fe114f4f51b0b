-- Global rate and concurrency limits, per task (optionally per key) and per queue,
-- enforced where every worker claims: here.
--
-- A limited job is claimed by claim_limited() below, never by claim_jobs (which
-- skips limited tasks and queues). For each job it looks at, it takes each of
-- the job's buckets with a transaction-level advisory lock (try only: a bucket
-- another worker is deciding right now is skipped, never waited for), counts
-- what the bucket allows, and claims the job only if every bucket has room. The
-- counts are read under the lock, so across any number of workers:
--   rate: N per W seconds means one start every W/N seconds, as in Celery: a
--         bucket keeps the earliest time its next start is allowed (next_at,
--         by the clock the lock was held at, which is also the job's
--         started_at), moved to that start + W/N. Consecutive starts are at
--         least W/N apart, so no W-second window ever holds more than N; a
--         worker wakes at next_at, so the limit is not starved either.
--   concurrency: the bucket's running jobs whose lease has not expired. A dead
--         worker's job stops counting when its lease runs out.
-- Jobs held back stay queued, keep their place and their attempts.

-- The key a job's limit is counted under, within its task (NULL: the task's one bucket).
ALTER TABLE jobs ADD COLUMN rate_key text;
ALTER TABLE jobs ADD COLUMN concurrency_key text;

-- Queue-wide limits, set at run time (pgq queues limit).
ALTER TABLE queues ADD COLUMN rate integer;
ALTER TABLE queues ADD COLUMN rate_window double precision;
ALTER TABLE queues ADD COLUMN concurrency integer;

-- Task limits, as the workers' code declares them (@app.task(rate_limit=...,
-- concurrency_limit=...)); written by each worker when it starts.
CREATE TABLE task_limits (
    task        text PRIMARY KEY,
    rate        integer,
    rate_window double precision,
    concurrency integer,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per rate bucket (a task, a task and key, a queue): when it next allows a start.
CREATE TABLE limit_buckets (
    bucket  text PRIMARY KEY,
    next_at timestamptz NOT NULL
);
-- An idle worker with limits in force sleeps until the next bucket opens.
CREATE INDEX limit_buckets_next_idx ON limit_buckets (next_at);

CREATE FUNCTION claim_limited(p_worker bigint, p_queues text[], p_limit integer,
                              p_lease double precision)
RETURNS SETOF jobs
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    j jobs%ROWTYPE;
    task_map jsonb;           -- task -> its limits (the whole table: it is small)
    queue_map jsonb;          -- queue -> its limits, for p_queues
    tl jsonb;
    ql jsonb;
    ts timestamptz;
    claimed integer := 0;
    room jsonb := '{}';       -- bucket -> starts (or slots) still allowed in this call
    buckets text[];
    windows double precision[];
    caps integer[];
    kinds text[];
    b text;
    i integer;
    left_ integer;
    ok boolean;
BEGIN
    SELECT coalesce(jsonb_object_agg(task, jsonb_build_object(
               'rate', rate, 'window', rate_window, 'concurrency', concurrency)), '{}')
    INTO task_map FROM task_limits;
    SELECT coalesce(jsonb_object_agg(name, jsonb_build_object(
               'rate', rate, 'window', rate_window, 'concurrency', concurrency)), '{}')
    INTO queue_map FROM queues
    WHERE name = ANY(p_queues) AND NOT paused AND (rate IS NOT NULL OR concurrency IS NOT NULL);

    -- Read, not locked: only the jobs this call claims are locked, one by one, so a
    -- call that finds its limits full writes nothing.
    FOR j IN
        SELECT c.* FROM unnest(p_queues) AS q(name)
        CROSS JOIN LATERAL (
            SELECT jj.* FROM jobs jj
            WHERE jj.state = 'queued' AND jj.queue = q.name AND jj.run_at <= now()
              AND (jj.expires_at IS NULL OR jj.expires_at > now())
              AND NOT EXISTS (SELECT 1 FROM queues p WHERE p.name = q.name AND p.paused)
              AND (task_map ? jj.task OR queue_map ? q.name)
            ORDER BY jj.priority DESC, jj.run_at, jj.id
            -- Past the first ones: jobs of a full bucket must not hide others.
            LIMIT p_limit * 20
        ) AS c
        ORDER BY c.priority DESC, c.run_at, c.id
    LOOP
        EXIT WHEN claimed >= p_limit;
        buckets := '{}'; windows := '{}'; caps := '{}'; kinds := '{}';
        tl := task_map -> j.task;
        IF tl IS NOT NULL AND tl ->> 'rate' IS NOT NULL THEN
            buckets := buckets || ('task-rate:' || j.task || ':' || coalesce(j.rate_key, ''));
            windows := windows || (tl ->> 'window')::double precision;
            caps := caps || (tl ->> 'rate')::integer; kinds := kinds || 'rate'::text;
        END IF;
        IF tl IS NOT NULL AND tl ->> 'concurrency' IS NOT NULL THEN
            buckets := buckets || ('task-conc:' || j.task || ':' || coalesce(j.concurrency_key, ''));
            windows := windows || NULL::double precision;
            caps := caps || (tl ->> 'concurrency')::integer; kinds := kinds || 'task-conc'::text;
        END IF;
        ql := queue_map -> j.queue;
        IF ql IS NOT NULL AND ql ->> 'rate' IS NOT NULL THEN
            buckets := buckets || ('queue-rate:' || j.queue);
            windows := windows || (ql ->> 'window')::double precision;
            caps := caps || (ql ->> 'rate')::integer; kinds := kinds || 'rate'::text;
        END IF;
        IF ql IS NOT NULL AND ql ->> 'concurrency' IS NOT NULL THEN
            buckets := buckets || ('queue-conc:' || j.queue);
            windows := windows || NULL::double precision;
            caps := caps || (ql ->> 'concurrency')::integer; kinds := kinds || 'queue-conc'::text;
        END IF;

        ok := cardinality(buckets) > 0;
        FOR i IN 1 .. coalesce(cardinality(buckets), 0) LOOP
            b := buckets[i];
            IF NOT room ? b THEN
                IF NOT pg_try_advisory_xact_lock(hashtextextended(b, 7283903)) THEN
                    room := room || jsonb_build_object(b, 0);  -- being decided elsewhere
                ELSE
                    ts := clock_timestamp();
                    IF kinds[i] = 'rate' THEN
                        SELECT CASE WHEN coalesce(max(next_at) <= ts, true) THEN 1 ELSE 0 END
                        INTO left_ FROM limit_buckets WHERE bucket = b;
                    ELSIF kinds[i] = 'task-conc' THEN
                        SELECT caps[i] - count(*) INTO left_ FROM jobs r
                        WHERE r.state = 'running' AND r.lease_expires_at > now()
                          AND r.task = j.task
                          AND coalesce(r.concurrency_key, '') = coalesce(j.concurrency_key, '');
                    ELSE
                        SELECT caps[i] - count(*) INTO left_ FROM jobs r
                        WHERE r.state = 'running' AND r.lease_expires_at > now()
                          AND r.queue = j.queue;
                    END IF;
                    room := room || jsonb_build_object(b, greatest(left_, 0));
                END IF;
            END IF;
            IF (room ->> b)::integer <= 0 THEN
                ok := false;
                EXIT;
            END IF;
        END LOOP;
        CONTINUE WHEN NOT ok;

        -- Another worker may have claimed it since it was read: skip, never wait.
        PERFORM 1 FROM jobs WHERE id = j.id AND state = 'queued' FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        ts := clock_timestamp();
        UPDATE jobs
        SET state = 'running', attempts = least(attempts, 2147483646) + 1,
            lease = gen_random_uuid(), worker_id = p_worker, started_at = ts,
            lease_expires_at = now() + make_interval(secs => p_lease),
            progress = NULL  -- as claim_jobs: a new attempt reports its own
        WHERE id = j.id AND state = 'queued'
        RETURNING * INTO j;
        CONTINUE WHEN NOT FOUND;
        FOR i IN 1 .. cardinality(buckets) LOOP
            room := jsonb_set(room, ARRAY[buckets[i]], to_jsonb((room ->> buckets[i])::integer - 1));
            IF kinds[i] = 'rate' THEN  -- the next start: W/N seconds after this one
                INSERT INTO limit_buckets AS lb (bucket, next_at)
                VALUES (buckets[i], ts + make_interval(secs => windows[i] / caps[i]))
                ON CONFLICT (bucket) DO UPDATE SET next_at = excluded.next_at;
            END IF;
        END LOOP;
        claimed := claimed + 1;
        RETURN NEXT j;
    END LOOP;
    RETURN;
END
$$;

-- Limits in one place, for people with psql: each task's and each queue's, and
-- how many due jobs each holds back right now (queued, due, not yet claimed).
CREATE VIEW limit_status AS
SELECT 'task' AS scope, t.task AS name, t.rate, t.rate_window, t.concurrency,
       (SELECT count(*) FROM jobs j WHERE j.state = 'queued' AND j.task = t.task
          AND j.run_at <= now()) AS waiting,
       (SELECT count(*) FROM jobs j WHERE j.state = 'running' AND j.task = t.task) AS running
FROM task_limits t
UNION ALL
SELECT 'queue', q.name, q.rate, q.rate_window, q.concurrency,
       (SELECT count(*) FROM jobs j WHERE j.state = 'queued' AND j.queue = q.name
          AND j.run_at <= now()),
       (SELECT count(*) FROM jobs j WHERE j.state = 'running' AND j.queue = q.name)
FROM queues q
WHERE q.rate IS NOT NULL OR q.concurrency IS NOT NULL;
