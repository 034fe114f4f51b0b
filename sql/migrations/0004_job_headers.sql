-- Headers travel with a job from its producer to its worker: trace context
-- (OpenTelemetry's traceparent), correlation ids. NULL, the common case, costs
-- no space in the row.
ALTER TABLE jobs ADD COLUMN headers jsonb;
