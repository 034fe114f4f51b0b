-- Periodic tasks (the scheduler, "beat"). Runs with search_path set to the target schema.

CREATE TABLE schedules (
    name            text PRIMARY KEY,
    task            text NOT NULL,
    cron            text,
    every_seconds   double precision CHECK (every_seconds > 0),
    tz              text NOT NULL DEFAULT 'UTC',
    args            jsonb NOT NULL DEFAULT '[]',
    kwargs          jsonb NOT NULL DEFAULT '{}',
    queue           text NOT NULL,
    priority        smallint NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 0,
    -- After downtime: 'skip' missed ticks, run the 'latest' one once, or run 'all'
    -- of them that fall within catch_up_window seconds.
    catch_up        text NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('skip', 'latest', 'all')),
    catch_up_window double precision,
    paused          boolean NOT NULL DEFAULT false,
    -- Ticks are counted from here: the schedule's creation, or its last tick.
    anchor_at       timestamptz NOT NULL DEFAULT now(),
    last_fire_at    timestamptz,
    next_fire_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (every_seconds IS NULL))
);

-- One row per (schedule, fire time) ever enqueued. The primary key is what
-- makes a tick fire at most once, even if two schedulers both believe they lead.
CREATE TABLE schedule_ticks (
    schedule   text NOT NULL,
    fire_at    timestamptz NOT NULL,
    job_id     bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule, fire_at)
);
CREATE INDEX schedule_ticks_created_idx ON schedule_ticks (created_at);

CREATE VIEW schedule_status AS
SELECT s.name, s.task, coalesce(s.cron, 'every ' || s.every_seconds || 's') AS rule, s.tz,
       s.queue, s.catch_up, s.paused, s.last_fire_at, s.next_fire_at,
       (SELECT count(*) FROM schedule_ticks t WHERE t.schedule = s.name) AS ticks_kept
FROM schedules s;
