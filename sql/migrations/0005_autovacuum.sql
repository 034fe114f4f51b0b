-- Autovacuum for a queue table, chosen on purpose rather than left at the defaults.
--
-- Every job is written three times (insert, claim, finish), and neither update
-- can be HOT: both change indexed columns (state is in the partial indexes'
-- predicates). So each finished job leaves two dead row versions and dead
-- entries in jobs_claim_idx, which every claim walks past until a vacuum
-- removes them. The default trigger (20% of the table dead) lets a table of a
-- million finished jobs collect 200,000 dead rows first; here a vacuum starts
-- after 1% (+ 1,000 rows), and runs without cost-based sleeping on this table,
-- so it finishes in seconds instead of throttling itself behind the churn.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- One row per worker, updated every heartbeat: vacuum it often, it is tiny.
ALTER TABLE workers SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 200
);
