-- How far a running job says it is: {"done", "total", "meta", "updated_at"}, the
-- latest report of its current attempt (update_progress in sql/queries/jobs.sql),
-- written by its worker at most every half second. NULL, the common case, costs
-- no space in the row. No index: it is only read with its job, and writing it
-- changes no indexed column, so those updates can be HOT.
ALTER TABLE jobs ADD COLUMN progress jsonb;
