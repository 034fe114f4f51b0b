"""Enqueues from Django code run on Django's connection: they join transaction.atomic()."""

from __future__ import annotations

import asyncio
from types import ModuleType

import psycopg
import pytest

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[django]')")
from django.db import connection, transaction

from pgqueue import JobState
from pgqueue.contrib.django import get_app
from tests.conftest import count, running_worker, wait_for

pytestmark = pytest.mark.usefixtures("db")


def jobs_seen_elsewhere(dsn: str) -> int:
    """Jobs another connection can see: only committed ones."""
    return count(dsn, "SELECT count(*) FROM pgqueue.jobs")


def xmin(table: str, row_id: int) -> str:
    """The id of the transaction that wrote a row, read on Django's connection."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT xmin::text FROM {table} WHERE id = %s", [row_id])
        return str(cur.fetchone()[0])


def test_a_job_enqueued_in_atomic_commits_with_the_rows(db: str, shop: ModuleType) -> None:
    with transaction.atomic():
        signup = shop.Signup.objects.create(email="ada@example.com")
        job = shop.welcome.delay(signup.pk)
        # Not just the same connection: the same transaction wrote both rows.
        assert xmin("pgqueue.jobs", job.id) == xmin("shop_signup", signup.pk)
        assert jobs_seen_elsewhere(db) == 0  # nobody sees it before COMMIT
    assert jobs_seen_elsewhere(db) == 1
    assert count(db, "SELECT count(*) FROM shop_signup") == 1
    assert job.state is JobState.QUEUED


def test_an_exception_in_atomic_rolls_back_the_row_and_the_job(db: str, shop: ModuleType) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        signup = shop.Signup.objects.create(email="ada@example.com")
        shop.welcome.delay(signup.pk)
        raise RuntimeError("payment provider down")
    assert count(db, "SELECT count(*) FROM shop_signup") == 0
    assert jobs_seen_elsewhere(db) == 0


def test_a_rolled_back_savepoint_takes_only_its_own_job(db: str, shop: ModuleType) -> None:
    with transaction.atomic():
        kept = shop.Signup.objects.create(email="kept@example.com")
        shop.welcome.delay(kept.pk)
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint
            dropped = shop.Signup.objects.create(email="dropped@example.com")
            shop.welcome.delay(dropped.pk)
            raise RuntimeError("this part fails")
    assert list(shop.Signup.objects.values_list("email", flat=True)) == ["kept@example.com"]
    assert count(db, "SELECT count(*) FROM pgqueue.jobs WHERE args = %s::jsonb",
                 f"[{kept.pk}]") == 1
    assert jobs_seen_elsewhere(db) == 1


def test_outside_atomic_the_job_is_committed_at_once(db: str, shop: ModuleType) -> None:
    job = shop.welcome.apply_async(args=(1,), countdown=60)
    assert jobs_seen_elsewhere(db) == 1
    assert job.info().state is JobState.QUEUED


def test_enqueue_many_and_send_task_join_the_transaction_too(db: str, shop: ModuleType) -> None:
    app = get_app()
    with pytest.raises(RuntimeError), transaction.atomic():
        app.enqueue_many([shop.welcome.s(1), shop.welcome.s(2)])
        app.send_task("welcome", args=(3,))
        raise RuntimeError("roll it all back")
    assert jobs_seen_elsewhere(db) == 0


def test_async_code_enqueues_through_pgqueues_own_pools(db: str, shop: ModuleType) -> None:
    """Django's connection can't be used on an event loop; pgqueue's pools are used instead."""

    async def from_async_code() -> tuple[int, int]:
        plain = shop.welcome.delay(1)  # a sync call made from async code
        awaited = await shop.welcome.delay_async(2)
        return plain.id, awaited.id

    ids = asyncio.run(from_async_code())
    assert jobs_seen_elsewhere(db) == 2
    assert all(get_app().AsyncResult(i).state is JobState.QUEUED for i in ids)


def test_a_pgqueue_task_runs_in_the_worker_and_writes_through_the_orm(db: str,
                                                                    shop: ModuleType) -> None:
    with transaction.atomic():
        signup = shop.Signup.objects.create(email="ada@example.com")
        job = shop.welcome.delay(signup.pk)
    before = django_connections(db)
    with running_worker(get_app()):
        assert job.get(timeout=10) == "ada@example.com"
    signup.refresh_from_db()
    assert signup.welcomed
    # The job's thread closed its Django connection afterwards, as a request would
    # (CONN_MAX_AGE is 0): none is left open by the worker.
    assert wait_for(lambda: django_connections(db) <= before, timeout=5)


def django_connections(dsn: str) -> set[int]:
    """Backends of this database that Django opened (pgqueue names its own 'pgqueue')."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND application_name = '' AND pid <> pg_backend_pid()").fetchall()
    return {pid for (pid,) in rows}
