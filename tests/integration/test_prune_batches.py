"""The pruner deletes in bounded batches, each its own short transaction, from a
cursor; it never waits on a row someone holds, and says how far it has got."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import psycopg
import pytest

from pgqueue.link import Link
from pgqueue.maintenance import Pruner
from tests.conftest import count

OLD = 2_300


def _prefill(dsn: str) -> tuple[int, int, int]:
    """OLD finished jobs 8-9 days old (every tenth with a result), one of them kept by
    result_expires, one recent; returns (the kept id, the recent id, a queued id)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, kwargs, state, attempts, finished_at) "
            "SELECT 'default', 't', '[]', '{}', 'succeeded', 1, "
            " now() - interval '9 days' + interval '1 second' * g "
            "FROM generate_series(1, %s) g", (OLD,))
        conn.execute("INSERT INTO pgqueue.job_results (job_id, value) "
                     "SELECT id, '1' FROM pgqueue.jobs WHERE id % 10 = 0")
        kept = conn.execute("SELECT min(id) + 7 FROM pgqueue.jobs").fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO pgqueue.job_keep (job_id, keep_until) "
                     "VALUES (%s, now() + interval '1 day')", (kept,))
        recent, queued = (conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, kwargs, state, finished_at) "
            "VALUES ('default', 't', '[]', '{}', %s, %s) RETURNING id",
            (state, at)).fetchone()[0] for state, at in  # type: ignore[index]
            (("failed", dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
             ("queued", None)))
    return kept, recent, queued


def _prune(dsn: str, **kwargs: object) -> tuple[dict[str, int], Pruner]:
    async def go() -> tuple[dict[str, int], Pruner]:
        pruner = Pruner(Link(dsn, "pruner"), "pgqueue", dt.timedelta(days=7), **kwargs)  # type: ignore[arg-type]
        try:
            return await pruner.run_once(), pruner
        finally:
            await pruner.link.close()
    return asyncio.run(go())


def test_prunes_in_batches_from_a_cursor_and_logs_progress(dsn, caplog):
    kept, recent, queued = _prefill(dsn)
    with caplog.at_level(logging.INFO, "pgqueue.maintenance"):
        pruned, pruner = _prune(dsn, batch=500, report_every=0.0)
    assert pruned["jobs"] == OLD - 1
    # 5 batches of finished jobs (the last one short), then one of each other kind
    assert len(pruner.batches) == 5 + 3
    assert count(dsn, "SELECT count(*) FROM pgqueue.job_results") == 0
    left = {r for (r,) in psycopg.connect(dsn).execute("SELECT id FROM pgqueue.jobs")}
    assert left == {kept, recent, queued}
    progress = [r.getMessage() for r in caplog.records if "so far" in r.getMessage()]
    assert progress[0].startswith("pruning finished jobs: 500 so far")
    assert any(f"pruned {OLD - 1} finished jobs in" in r.getMessage() for r in caplog.records)


def test_a_row_someone_holds_is_skipped_not_waited_for(dsn):
    _prefill(dsn)
    with psycopg.connect(dsn) as holder:  # a transaction holding one old job's row
        held = holder.execute(  # (FOR UPDATE under an OFFSET would lock all it passes)
            "SELECT id FROM pgqueue.jobs WHERE id = (SELECT min(id) + 700 FROM pgqueue.jobs) "
            "FOR UPDATE").fetchone()[0]  # type: ignore[index]
        pruned, _ = _prune(dsn, batch=500)
        assert pruned["jobs"] == OLD - 2
        holder.rollback()
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", held) == 1
    assert _prune(dsn, batch=500)[0]["jobs"] == 1  # the next run takes it


@pytest.mark.parametrize("batch", [0, -1])
def test_batch_must_be_positive(dsn, batch):
    with pytest.raises(ValueError, match="batch"):
        Pruner(Link(dsn, "pruner"), "pgqueue", dt.timedelta(days=7), batch=batch)
