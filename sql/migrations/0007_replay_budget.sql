-- A replayed job gets the attempts it started with, however often it is replayed.
-- NULL until the first replay (then: the max_attempts the job was enqueued with).
ALTER TABLE jobs ADD COLUMN budget integer;
