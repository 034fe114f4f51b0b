"""CSV import: one large file, imported in parallel chunks by fan-out jobs, with progress.

``start_import(path)`` records the import and enqueues ``split_csv``. That job scans
the file once for the byte offsets of every ``chunk_rows`` lines and enqueues one
``import_chunk`` per range with ``enqueue_many`` (one statement). Each chunk job
COPYs its rows into ``csv_people``. Both tasks are ``atomic=True``: the split's chunk
jobs, and each chunk's rows plus its line in ``csv_import_chunks``, commit in the
same transaction as the job's completion, so every chunk lands exactly once even if
a worker dies mid-chunk and the job runs again. ``progress(import_id)`` reads how
far it got from those rows and from the chunk jobs' states.

    python csv_import_app.py generate people.csv --rows 100000
    pgq worker --app csv_import_app:app --queues io --concurrency 4
    python csv_import_app.py import people.csv        # a progress bar until done

Chunks are cut at line ends, so a record must not span lines (no newline inside
a quoted field); files that have them need a smarter splitter.
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import sql

from pgqueue import App, JobContext

app = App()  # PGQ_DSN says which Postgres

HEADER = ["name", "email", "city", "born"]
TABLES = """
CREATE TABLE IF NOT EXISTS csv_imports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path        text NOT NULL,
    split_job   bigint,
    chunk_jobs  bigint[],  -- written by split_csv, in the transaction that enqueues them
    total_rows  bigint,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS csv_import_chunks (
    import_id   bigint NOT NULL REFERENCES csv_imports ON DELETE CASCADE,
    chunk       int NOT NULL,
    rows        int NOT NULL,
    done_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (import_id, chunk)
);
CREATE TABLE IF NOT EXISTS csv_people (
    import_id   bigint NOT NULL,
    line        bigint NOT NULL,  -- line number in the file: the key makes a double visible
    name        text NOT NULL,
    email       text NOT NULL,
    city        text NOT NULL,
    born        date NOT NULL,
    PRIMARY KEY (import_id, line)
);
"""


def create_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLES)


def _conn(ctx: JobContext) -> psycopg.Connection[Any]:
    assert ctx.connection is not None, "an atomic task runs inside its transaction"
    return ctx.connection


def _ranges(path: Path, chunk_rows: int) -> Iterator[tuple[int, int, int, int]]:
    """(first line number, byte offset, byte length, rows) for each chunk of the file."""
    with path.open("rb") as f:
        header = next(csv.reader([f.readline().decode("utf-8")]), [])
        if header != HEADER:
            raise ValueError(f"{path}: header is {header}, expected {HEADER}")
        line, start, rows = 2, f.tell(), 0
        while f.readline():
            rows += 1
            if rows == chunk_rows:
                yield line, start, f.tell() - start, rows
                line, start, rows = line + rows, f.tell(), 0
        if rows:
            yield line, start, f.tell() - start, rows


@app.task(queue="io", bind=True, atomic=True)
def split_csv(self: JobContext, import_id: int, path: str, chunk_rows: int) -> dict[str, int]:
    """Scan the file once for chunk boundaries and fan out one job per chunk."""
    ranges = list(_ranges(Path(path), chunk_rows))
    conn = _conn(self)
    jobs = app.enqueue_many(
        [import_chunk.s(import_id, n, path, first, offset, length)
         for n, (first, offset, length, _rows) in enumerate(ranges)],
        connection=conn)  # committed with this job's completion, so fanned out once
    total = sum(r[3] for r in ranges)
    conn.execute("UPDATE csv_imports SET chunk_jobs = %s, total_rows = %s WHERE id = %s",
                 ([j.id for j in jobs], total, import_id))
    return {"chunks": len(ranges), "rows": total}


@app.task(queue="io", bind=True, atomic=True, max_retries=2, retry_backoff=True)
def import_chunk(self: JobContext, import_id: int, chunk: int, path: str, first_line: int,
                 offset: int, length: int) -> int:
    """COPY one byte range of the file into csv_people, and mark the chunk done."""
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read(length).decode("utf-8")
    conn = _conn(self)
    rows = 0
    with conn.cursor() as cur, cur.copy(
            "COPY csv_people (import_id, line, name, email, city, born) FROM STDIN") as copy:
        for rows, record in enumerate(csv.reader(io.StringIO(text)), start=1):
            copy.write_row((import_id, first_line + rows - 1, *record))
    conn.execute("INSERT INTO csv_import_chunks (import_id, chunk, rows) VALUES (%s, %s, %s)",
                 (import_id, chunk, rows))
    return rows


def start_import(path: str | Path, chunk_rows: int = 10_000) -> int:
    """Record the import and enqueue its split, in one transaction; returns the import id."""
    path = Path(path).resolve()  # the workers may run from another directory
    with psycopg.connect(app.dsn()) as conn:
        row = conn.execute("INSERT INTO csv_imports (path) VALUES (%s) RETURNING id",
                           (str(path),)).fetchone()
        assert row is not None
        job = split_csv.apply_async(args=(row[0], str(path), chunk_rows), connection=conn)
        conn.execute("UPDATE csv_imports SET split_job = %s WHERE id = %s", (job.id, row[0]))
    return int(row[0])


@dataclass(frozen=True)
class Progress:
    """How far an import got. ``total_rows`` and ``chunks`` are None until it is split."""

    total_rows: int | None
    rows_done: int
    chunks: int | None
    chunks_done: int
    failed: list[str]  # "split" or "chunk <n>" jobs that failed for good

    @property
    def percent(self) -> float:
        if not self.total_rows:
            return 100.0 if self.total_rows == 0 else 0.0
        return 100.0 * self.rows_done / self.total_rows

    @property
    def finished(self) -> bool:
        return bool(self.failed) or (self.chunks is not None and self.chunks_done == self.chunks)


def progress(import_id: int) -> Progress:
    """Read an import's progress: done chunks from csv_import_chunks, failures from jobs."""
    jobs = sql.Identifier(app.settings.schema, "jobs")
    with psycopg.connect(app.dsn()) as conn:
        row = conn.execute(
            "SELECT i.total_rows, cardinality(i.chunk_jobs), coalesce(sum(c.rows), 0), "
            "count(c.chunk), i.split_job, i.chunk_jobs FROM csv_imports i "
            "LEFT JOIN csv_import_chunks c ON c.import_id = i.id WHERE i.id = %s "
            "GROUP BY i.id", (import_id,)).fetchone()
        if row is None:
            raise LookupError(f"no import {import_id}")
        total, chunks, done, chunks_done, split_job, chunk_jobs = row
        failed_ids = [r[0] for r in conn.execute(sql.SQL(
            "SELECT id FROM {} WHERE id = ANY(%s::bigint[]) "
            "AND state IN ('failed', 'cancelled') ORDER BY id").format(jobs),
            ([split_job, *(chunk_jobs or [])],))]
    failed = ["split" if i == split_job else f"chunk {chunk_jobs.index(i)}" for i in failed_ids]
    return Progress(total, int(done), chunks, int(chunks_done), failed)


def generate(path: str | Path, rows: int, seed: int = 7) -> None:
    """Write a CSV of ``rows`` made-up people (reproducible for a given seed)."""
    rng = random.Random(seed)
    cities = ["Paris", "Lyon", "Berlin", "Lisbon", "Oslo", "Quito", "Osaka", "Accra"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            out.writerow([f"Person {i}", f"person{i}@example.com", rng.choice(cities),
                          f"{rng.randint(1940, 2010)}-{rng.randint(1, 12):02d}-"
                          f"{rng.randint(1, 28):02d}"])


@click.group()
def cli() -> None:
    """Generate a CSV, import it in parallel chunks, and watch the progress."""


@cli.command("generate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--rows", type=click.IntRange(min=0), default=100_000, show_default=True)
def generate_command(path: str, rows: int) -> None:
    """Write a CSV of made-up people to PATH."""
    generate(path, rows)
    click.echo(f"wrote {rows} rows to {path}")


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--chunk-rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--wait/--no-wait", default=True, help="Show a progress bar until it is done.")
def import_command(path: str, chunk_rows: int, wait: bool) -> None:
    """Import PATH: enqueue the split, then show its progress (a worker does the work)."""
    create_tables(app.dsn())
    import_id = start_import(path, chunk_rows)
    click.echo(f"import {import_id} enqueued; `python csv_import_app.py status {import_id}` "
               "shows its progress")
    if wait:
        _watch(import_id)


@cli.command("status")
@click.argument("import_id", type=int)
def status_command(import_id: int) -> None:
    """Show how far import IMPORT_ID got."""
    _report(progress(import_id), import_id)


def _watch(import_id: int, interval: float = 0.2) -> None:
    now = progress(import_id)
    while now.chunks is None and not now.finished:  # not split yet: is a worker running?
        time.sleep(interval)
        now = progress(import_id)
    if now.failed:
        _report(now, import_id)
    with click.progressbar(length=now.total_rows or 0, label="importing",
                           show_pos=True) as bar:
        shown = 0
        while True:
            bar.update(now.rows_done - shown)
            shown = now.rows_done
            if now.finished:
                break
            time.sleep(interval)
            now = progress(import_id)
    _report(now, import_id)


def _report(now: Progress, import_id: int) -> None:
    click.echo(f"import {import_id}: {now.rows_done} of "
               f"{'?' if now.total_rows is None else now.total_rows} rows, "
               f"{now.chunks_done} of {'?' if now.chunks is None else now.chunks} chunks "
               f"({now.percent:.0f}%)")
    if now.failed:
        raise click.ClickException(f"import {import_id}: failed: {', '.join(now.failed)}; "
                                   "see pgq jobs list --state failed")


if __name__ == "__main__":
    cli()
