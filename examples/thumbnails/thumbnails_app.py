"""Thumbnails: CPU-bound work on process-pool workers, I/O-bound work on thread workers.

A pipeline of three tasks on two queues, so that each kind of work runs where it
runs best (Celery users know this as routing tasks to dedicated workers):

1. ``fetch_original(source, out_dir)`` on ``io``: reads an image from a local path or
   an http(s) URL and stores it in ``thumb_originals``, then enqueues one
   ``make_thumbnail`` per size.
2. ``make_thumbnail(original_id, size, out_dir)`` on ``cpu``: decodes and resizes with
   Pillow. Run by ``pgq worker --pool processes``, so each resize has a CPU core and a
   process of its own, and a runaway one can be killed without harming the others.
3. ``publish(thumbnail_id, out_dir)`` on ``io``: writes the thumbnail to ``out_dir``.

Steps 1 and 2 are ``atomic=True``: their rows and the jobs they enqueue commit
together with their own completion, so even a step that runs twice (its worker died
mid-way) stores its rows and fans out exactly once.

    pgq worker --app thumbnails_app:app --queues cpu --pool processes --concurrency 2
    pgq worker --app thumbnails_app:app --queues io --pool threads --concurrency 16
    python thumbnails_app.py photos/*.jpg --out thumbs/
"""

from __future__ import annotations

import argparse
import io
import os
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image

from pgqueue import App, JobContext

app = App()  # PGQ_DSN says which Postgres

SIZES = (128, 512)  # longest side, in pixels
TABLES = """
CREATE TABLE IF NOT EXISTS thumb_originals (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source     text NOT NULL,
    data       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS thumb_thumbnails (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    original_id bigint NOT NULL REFERENCES thumb_originals ON DELETE CASCADE,
    size        int NOT NULL,
    width       int NOT NULL,
    height      int NOT NULL,
    data        bytea NOT NULL,
    made_by_pid int NOT NULL,  -- which process resized it: a pool child, not the worker
    path        text,          -- set once published
    UNIQUE (original_id, size)
);
"""


def create_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLES)


def _read(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        # A timeout, because a thread blocked in a socket read can't be stopped from outside.
        with urllib.request.urlopen(source, timeout=30) as response:
            return bytes(response.read())
    return Path(source).read_bytes()


def _conn(ctx: JobContext) -> psycopg.Connection[Any]:
    assert ctx.connection is not None, "an atomic task runs inside its transaction"
    return ctx.connection


@app.task(queue="io", bind=True, atomic=True, max_retries=3, retry_backoff=True,
          autoretry_for=(OSError,))
def fetch_original(self: JobContext, source: str, out_dir: str) -> int:
    """Read the image (waiting on disk or network: a thread's work), store it, fan out."""
    data = _read(source)
    conn = _conn(self)
    row = conn.execute("INSERT INTO thumb_originals (source, data) VALUES (%s, %s) "
                       "RETURNING id", (source, data)).fetchone()
    assert row is not None
    # On self.connection: the resize jobs exist only if this attempt's insert commits.
    app.enqueue_many([make_thumbnail.s(row[0], size, out_dir) for size in SIZES],
                     connection=conn)
    return int(row[0])


@app.task(queue="cpu", bind=True, atomic=True, time_limit=120)
def make_thumbnail(self: JobContext, original_id: int, size: int, out_dir: str) -> int:
    """Decode, resize and re-encode: pure CPU, so it runs in a process-pool child."""
    conn = _conn(self)
    row = conn.execute("SELECT data FROM thumb_originals WHERE id = %s",
                       (original_id,)).fetchone()
    if row is None:
        raise LookupError(f"no original {original_id}")
    with Image.open(io.BytesIO(row[0])) as image:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)  # keeps the aspect ratio
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=85)
        width, height = image.size
    thumb = conn.execute(
        "INSERT INTO thumb_thumbnails (original_id, size, width, height, data, made_by_pid) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (original_id, size, width, height, out.getvalue(), os.getpid())).fetchone()
    assert thumb is not None
    publish.apply_async(args=(thumb[0], out_dir), connection=conn)
    return int(thumb[0])


@app.task(queue="io")
def publish(thumbnail_id: int, out_dir: str) -> str:
    """Write the thumbnail where it is served from (a disk here; a bucket or CDN in life).

    Not atomic: the file is outside Postgres. Writing it again is harmless (same name,
    same bytes), so a second run after a lost worker does no damage.
    """
    with psycopg.connect(app.dsn()) as conn:
        row = conn.execute(
            "SELECT o.source, t.size, t.data FROM thumb_thumbnails t "
            "JOIN thumb_originals o ON o.id = t.original_id WHERE t.id = %s",
            (thumbnail_id,)).fetchone()
        if row is None:
            raise LookupError(f"no thumbnail {thumbnail_id}")
        source, size, data = row
        path = Path(out_dir) / f"{Path(source.rsplit('/', 1)[-1]).stem}_{size}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half a file
        conn.execute("UPDATE thumb_thumbnails SET path = %s WHERE id = %s",
                     (str(path), thumbnail_id))
    return str(path)


def submit(sources: list[str], out_dir: str) -> list[int]:
    """Enqueue one pipeline per image, all in one statement; returns the job ids."""
    results = app.enqueue_many([fetch_original.s(s, out_dir) for s in sources])
    return [r.id for r in results]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="image files or http(s) URLs")
    parser.add_argument("--out", default="thumbs",
                        help="directory the io worker writes thumbnails to (default: thumbs)")
    args = parser.parse_args(argv)
    create_tables(app.dsn())
    # Local paths are made absolute: the workers may run from another directory.
    sources = [s if "://" in s else str(Path(s).resolve()) for s in args.sources]
    ids = submit(sources, str(Path(args.out).resolve()))
    print(f"enqueued {len(ids)} images (jobs {', '.join(map(str, ids))}); "
          f"thumbnails of {' and '.join(map(str, SIZES))} px will appear in {args.out}/")


if __name__ == "__main__":
    main()
