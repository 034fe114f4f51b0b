"""examples/thumbnails for real: a `--pool processes` worker on the cpu queue and a
`--pool threads` worker on the io queue, resizing generated images."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import count, wait_for
from tests.examples.conftest import example_pgq, stop

Image = pytest.importorskip("PIL.Image", reason="the thumbnails example needs Pillow")

# (name, width, height): landscape, portrait, and one smaller than the large thumbnail.
IMAGES = [("landscape", 1600, 1200), ("portrait", 900, 1800), ("small", 300, 200)]
EXPECTED = {  # Image.thumbnail keeps the aspect ratio and never enlarges
    ("landscape", 128): (128, 96), ("landscape", 512): (512, 384),
    ("portrait", 128): (64, 128), ("portrait", 512): (256, 512),
    ("small", 128): (128, 85), ("small", 512): (300, 200),
}


@pytest.mark.timeout(30)
def test_cpu_jobs_run_in_pool_children_and_io_jobs_publish_the_files(dsn, load_example,
                                                                    tmp_path):
    thumbnails_app = load_example("thumbnails", "thumbnails_app")
    thumbnails_app.create_tables(dsn)
    sources = []
    for name, width, height in IMAGES:
        path = tmp_path / "in" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        Image.linear_gradient("L").resize((width, height)).convert("RGB").save(path)
        sources.append(str(path))
    out = tmp_path / "thumbs"

    cpu = example_pgq(dsn, "thumbnails", "worker", "--app", "thumbnails_app:app",
                      "--queues", "cpu", "--pool", "processes", "--concurrency", "2")
    io = example_pgq(dsn, "thumbnails", "worker", "--app", "thumbnails_app:app",
                     "--queues", "io", "--pool", "threads", "--concurrency", "4")
    try:
        thumbnails_app.submit(sources, str(out))
        assert wait_for(lambda: count(dsn, "SELECT count(*) FROM thumb_thumbnails "
                                           "WHERE path IS NOT NULL") == len(EXPECTED),
                        timeout=20, interval=0.1), "thumbnails were not all published"
    finally:
        codes = [stop(cpu), stop(io)]
    assert codes == [0, 0]

    for (name, size), dimensions in EXPECTED.items():
        with Image.open(out / f"{name}_{size}.jpg") as thumb:
            assert thumb.size == dimensions, (name, size)
    with psycopg.connect(dsn) as conn:
        pids = {r[0] for r in conn.execute("SELECT made_by_pid FROM thumb_thumbnails")}
        pools = dict(conn.execute(
            "SELECT j.task, string_agg(DISTINCT w.pool, ',') FROM pgqueue.jobs j "
            "JOIN pgqueue.workers w ON w.id = j.worker_id GROUP BY j.task"))
        states = dict(conn.execute("SELECT state, count(*) FROM pgqueue.jobs GROUP BY 1"))
    # Resized in the cpu worker's children: neither worker process did it itself.
    assert pids and not pids & {cpu.pid, io.pid}
    assert pools == {"fetch_original": "threads", "make_thumbnail": "processes",
                     "publish": "threads"}
    assert states == {"succeeded": len(IMAGES) + 2 * len(EXPECTED)}
