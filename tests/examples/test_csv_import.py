"""examples/csv_import for real: 100,000 generated rows, split into chunk jobs by a
fan-out job, imported by a `pgq worker` subprocess while the example's own CLI shows
the progress."""

from __future__ import annotations

import time

import pytest

from tests.conftest import count
from tests.examples.conftest import example_pgq, example_run, stop

ROWS = 100_000


@pytest.mark.timeout(30)
def test_100k_rows_import_in_chunks_exactly_once_with_progress(dsn, load_example, tmp_path):
    csv_import_app = load_example("csv_import", "csv_import_app")
    path = tmp_path / "people.csv"
    csv_import_app.generate(path, ROWS)
    worker = example_pgq(dsn, "csv_import", "worker", "--app", "csv_import_app:app",
                         "--queues", "io", "--concurrency", "4")
    started = time.monotonic()
    try:
        # The CLI as the README runs it: enqueue, then poll until every chunk is done.
        run = example_run(dsn, "csv_import", "csv_import_app.py", "import", str(path),
                          "--chunk-rows", "10000", timeout=25)
    finally:
        code = stop(worker)
    elapsed = time.monotonic() - started
    print(f"imported {ROWS} rows in 10 chunks in {elapsed:.1f} s (worker start included)")

    assert run.returncode == 0, run.stderr
    assert code == 0
    assert f"import 1: {ROWS} of {ROWS} rows, 10 of 10 chunks (100%)" in run.stdout
    done = csv_import_app.progress(1)
    assert (done.percent, done.chunks_done, done.failed, done.finished) == (100.0, 10, [], True)
    assert count(dsn, "SELECT count(*) FROM csv_people") == ROWS
    assert count(dsn, "SELECT count(DISTINCT line) FROM csv_people") == ROWS
    assert count(dsn, "SELECT min(line) FROM csv_people") == 2  # line 1 is the header
    assert count(dsn, "SELECT max(line) FROM csv_people") == ROWS + 1
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE task = 'import_chunk' "
                      "AND state = 'succeeded' AND attempts = 1") == 10
    status = example_run(dsn, "csv_import", "csv_import_app.py", "status", "1")
    assert "(100%)" in status.stdout, status.stderr


def test_progress_before_a_worker_runs_and_a_bad_file_fails_clearly(dsn, load_example,
                                                                   tmp_path):
    csv_import_app = load_example("csv_import", "csv_import_app")
    csv_import_app.create_tables(dsn)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,title\n1,x\n")
    import_id = csv_import_app.start_import(bad)
    waiting = csv_import_app.progress(import_id)
    assert (waiting.total_rows, waiting.chunks, waiting.percent, waiting.finished) == \
        (None, None, 0.0, False)
    worker = example_pgq(dsn, "csv_import", "worker", "--app", "csv_import_app:app",
                         "--queues", "io")
    try:
        csv_import_app.app.AsyncResult(count(
            dsn, "SELECT split_job FROM csv_imports WHERE id = %s", import_id
        )).get(timeout=10, propagate=False)
    finally:
        stop(worker)
    failed = csv_import_app.progress(import_id)
    assert failed.failed == ["split"] and failed.finished
