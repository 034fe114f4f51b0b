-- Checks behind NOTIFY hints. Any role that can connect may NOTIFY any channel, so a
-- worker acts on a notification only once the table agrees.

-- name: cancel_requested :one
-- A cancel notification names a job; it is stopped only if its row asks for it.
SELECT cancel_requested FROM {schema}.jobs WHERE id = %(id)s;
