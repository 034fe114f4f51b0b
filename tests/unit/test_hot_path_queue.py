"""Every hot-path statement on jobs names the job's queue.

Spread over nodes by queue (Citus, with ``jobs`` distributed on ``queue``, see
docs/operating.md), a statement that filters its jobs by queue is routed to the
node holding that queue; one that doesn't is sent to every node. So each
statement a worker runs per job or per batch must compare ``queue`` with a
value it was given, not only the job's id.
"""

from __future__ import annotations

import re

import pytest

from pgqueue.sql import queries

# name -> what shows the query filters jobs by queue
HOT_PATH = {
    "enqueue_jobs": None,  # an insert: the queue is a column it writes
    "claim_jobs": r"j\.queue = q\.name",
    "claim_limited_jobs": r"%\(queues\)s::text\[\]",
    "finish_jobs": r"j\.queue = o\.queue",
    "extend_leases": r"j\.queue = h\.queue",
    "release_jobs": r"j\.queue = r\.queue",
    "defer_jobs": r"j\.queue = d\.queue",
}


@pytest.mark.parametrize("name", sorted(HOT_PATH))
def test_hot_path_query_filters_by_queue(name: str) -> None:
    named = queries("pgqueue")
    assert name in named, f"{name} is not a named query any more: update this list"
    text = named[name].text
    pattern = HOT_PATH[name]
    if pattern is None:
        assert re.search(r"INSERT INTO \S*jobs\s*\([^)]*\bqueue\b", text), text[:400]
    else:
        assert re.search(pattern, text), f"{name} does not filter its jobs by queue"


def test_every_update_of_jobs_in_the_worker_queries_names_the_queue() -> None:
    """A new UPDATE of jobs in the worker's file must name the queue too, or be
    listed here with the reason it is not on the hot path."""
    not_hot = {
        "rescue_expired",  # the sweep after a worker's death: every node, by design
        "expire_jobs",  # a periodic sweep of expired jobs
        "cancel_job", "retry_jobs",  # operator actions, by job id
        "update_progress",  # only tasks that report progress, at most once a second
    }
    named = queries("pgqueue")
    for name, query in named.items():
        text = query.text
        if name in not_hot or not re.search(r"UPDATE \S*\.jobs j\b", text):
            continue
        assert re.search(r"j\.queue = ", text), f"{name} updates jobs without its queue"
