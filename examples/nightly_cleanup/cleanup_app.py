"""Nightly clean-up: a cron schedule that deletes stale rows, run by the leader-elected
scheduler.

``delete_stale_sessions`` runs at 03:00 Paris time every night
(``@app.periodic(cron="0 3 * * *", tz="Europe/Paris")``). Start the scheduler in its
own process (``pgq beat``) or inside the workers (``pgq worker --beat``), as many as
you like: they elect one leader with a Postgres advisory lock, and each night's tick
is enqueued once, whichever of them leads.

    python cleanup_app.py seed --stale 25000 --fresh 1000
    pgq worker --app cleanup_app:app --beat
    pgq schedules trigger delete_stale_sessions        # don't wait for 03:00

``CLEANUP_CRON`` replaces the rule, for trying it out: ``CLEANUP_CRON='* * * * *'``
runs it every minute. It is read when the module is imported, since that is when
the schedule is declared; the scheduler stores the new rule when it starts.
"""

from __future__ import annotations

import argparse
import logging
import os

import psycopg

from pgqueue import App

app = App()  # PGQ_DSN says which Postgres

log = logging.getLogger("cleanup_app")

MAX_AGE_DAYS = 30  # a session unseen for this long is stale
BATCH = 5_000
TABLES = """
CREATE TABLE IF NOT EXISTS cleanup_sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_email   text NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cleanup_sessions_last_seen_idx ON cleanup_sessions (last_seen_at);
"""


def create_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLES)


# Not atomic=True, on purpose: one transaction for the whole delete would hold its
# locks until the end. Batches commit one by one instead, and that is safe because
# the task is idempotent: a second run (a retry, or a manual trigger) finds less, or
# nothing, left to delete.
@app.periodic(cron=os.environ.get("CLEANUP_CRON", "0 3 * * *"), tz="Europe/Paris",
              catch_up="latest")  # scheduler down at 03:00? run once when it is back
@app.task(queue="default", max_retries=3, retry_backoff=True,
          autoretry_for=(psycopg.OperationalError,))
def delete_stale_sessions(max_age_days: int = MAX_AGE_DAYS, batch: int = BATCH) -> int:
    """Delete sessions unseen for ``max_age_days``, ``batch`` rows per transaction."""
    deleted = 0
    with psycopg.connect(app.dsn(), autocommit=True) as conn:
        while True:
            # SKIP LOCKED: rows a live request is updating right now are left for tomorrow.
            n = conn.execute(
                "DELETE FROM cleanup_sessions WHERE id IN (SELECT id FROM cleanup_sessions "
                "WHERE last_seen_at < now() - make_interval(days => %s) "
                "LIMIT %s FOR UPDATE SKIP LOCKED)", (max_age_days, batch)).rowcount
            deleted += n
            if n < batch:
                break
    log.info("deleted %d stale sessions", deleted)
    return deleted


def seed(dsn: str, stale: int, fresh: int) -> None:
    """Insert sessions: ``stale`` last seen 31-400 days ago, ``fresh`` within 29 days."""
    create_tables(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO cleanup_sessions (user_email, last_seen_at) "
            "SELECT 'user' || i || '@example.com', now() - make_interval(days => %s + i %% %s) "
            "FROM generate_series(1, %s) i", (MAX_AGE_DAYS + 1, 370, stale))
        conn.execute(
            "INSERT INTO cleanup_sessions (user_email, last_seen_at) "
            "SELECT 'user' || i || '@example.com', now() - make_interval(days => i %% %s) "
            "FROM generate_series(1, %s) i", (MAX_AGE_DAYS - 1, fresh))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seed_cmd = sub.add_parser("seed", help="insert stale and fresh sample sessions")
    seed_cmd.add_argument("--stale", type=int, default=25_000)
    seed_cmd.add_argument("--fresh", type=int, default=1_000)
    sub.add_parser("count", help="count stale and fresh sessions")
    args = parser.parse_args(argv)
    dsn = app.dsn()
    if args.command == "seed":
        seed(dsn, args.stale, args.fresh)
    create_tables(dsn)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE last_seen_at < now() - make_interval(days => %s)), "
            "count(*) FROM cleanup_sessions", (MAX_AGE_DAYS,)).fetchone()
    stale, total = row or (0, 0)
    print(f"{stale} stale and {total - stale} fresh sessions")


if __name__ == "__main__":
    main()
