"""Rolling upgrades: the code of the last release (v0.1.0) and the newest share a database.

v0.1.0 is built from git (the tag, else its commit) into a temporary folder and
run by this interpreter with that folder first on PYTHONPATH (its dependencies
are this checkout's), so it reads its own sql/ from the source tree. The newest
schema is in place (migrate first, then roll the workers): a v0.1.0 worker runs
what a new producer enqueues, a new worker what a v0.1.0 producer enqueues, and
each side reads the other's results. A migration marked breaking makes older
code refuse to start (code from now on checks; v0.1.0 predates the check), and
new code refuses a schema that lacks its migrations.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import psycopg
import pytest

from pgqueue import App
from pgqueue.errors import TaskError
from pgqueue.migrate import available, migrate_dsn
from tests.conftest import ROOT, stop_process

RELEASE_TAG = "v0.1.0"
RELEASE_COMMIT = "f826c7f64a6c67ed46fabac3de47255833b0e501"  # what v0.1.0 tags

COMPAT_APP = '''
from pgqueue import App

app = App()


@app.task(queue="compat")
def add(x, y):
    return x + y


@app.task(queue="compat", bind=True, max_retries=2, default_retry_delay=0.05)
def flaky(self, n):
    if self.attempt == 1:
        raise ConnectionError("the first attempt fails")
    return {"n": n, "attempt": self.attempt}


@app.task(queue="compat")
def boom(message):
    raise ValueError(message)
'''

# Enqueues with .delay() (the producer's own task code), then waits for every result.
PRODUCE = '''
import json, sys
import pgqueue
from compat_app import add, flaky, boom

jobs = ([add.delay(i, i) for i in range(20)] + [flaky.delay(i) for i in range(3)]
        + [boom.delay("no") for _ in range(2)])
print(json.dumps({"pgqueue": pgqueue.__file__, "ids": [j.id for j in jobs]}), flush=True)
out = [[j.get(timeout=60, propagate=False), j.failed()] for j in jobs]
print(json.dumps(out), flush=True)
'''


def _release_ref() -> str:
    for ref in (RELEASE_TAG, RELEASE_COMMIT):
        found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "-q", "--verify",
                                f"{ref}^{{commit}}"], capture_output=True, text=True)
        if found.returncode == 0:
            return found.stdout.strip()
    pytest.skip(f"neither the tag {RELEASE_TAG} nor commit {RELEASE_COMMIT[:12]} is in this "
                "repository (a shallow clone?): fetch the history to test upgrades")


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"old": v0.1.0's source tree, "new": this checkout, "apps": the shared task code}."""
    base = tmp_path_factory.mktemp("upgrade")
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", _release_ref(),
                          "pgqueue", "sql"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(base / "old", filter="data")
    apps = base / "apps"
    apps.mkdir()
    (apps / "compat_app.py").write_text(COMPAT_APP)
    (apps / "produce.py").write_text(PRODUCE)
    found = {"old": base / "old", "new": ROOT, "apps": apps}
    # The old code must win over this checkout's install on the path.
    where = subprocess.run([sys.executable, "-c", "import pgqueue.sql as s; print(s.sql_dir())"],
                           env=_env(found, "old", ""), cwd=apps, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert where == str(base / "old" / "sql")
    return found


def _env(code: dict[str, Path], which: str, dsn: str) -> dict[str, str]:
    env = {**os.environ, "PGQ_DSN": dsn,
           "PYTHONPATH": f"{code[which]}{os.pathsep}{code['apps']}"}
    env.pop("PGQ_SCHEMA", None)
    return env


def worker(code: dict[str, Path], which: str, dsn: str, *args: str,
           **kwargs: object) -> subprocess.Popen[str]:
    # cwd is the apps folder, not the checkout: python -m puts the cwd first on the path.
    return subprocess.Popen([sys.executable, "-m", "pgqueue.cli", "worker", "--app",
                             "compat_app:app", "--queues", "compat", "-c", "4", *args],
                            env=_env(code, which, dsn), cwd=code["apps"], text=True,
                            **kwargs)  # type: ignore[call-overload]


def produce(code: dict[str, Path], which: str, dsn: str) -> tuple[dict, list]:
    done = subprocess.run([sys.executable, "produce.py"], env=_env(code, which, dsn),
                          cwd=code["apps"], text=True, capture_output=True, timeout=90)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()[:2]
    return json.loads(first), json.loads(second)


def check_outcomes(dsn: str, started: dict, outcomes: list, code_root: Path) -> None:
    assert started["pgqueue"].startswith(str(code_root)), started["pgqueue"]
    assert outcomes[:20] == [[2 * i, False] for i in range(20)]
    assert outcomes[20:23] == [[{"n": i, "attempt": 2}, False] for i in range(3)]
    assert [failed for _, failed in outcomes[23:]] == [True, True]
    reader = App(dsn)  # the newest code reads what the other side wrote
    try:
        results = [reader.AsyncResult(i) for i in started["ids"]]
        assert [r.result for r in results[:20]] == [2 * i for i in range(20)]
        assert all(r.failed() for r in results[23:])
        with pytest.raises(TaskError, match="ValueError: no"):
            results[23].get(timeout=5)
    finally:
        reader.close()
    with psycopg.connect(dsn) as conn:
        retried = conn.execute("SELECT count(*) FROM pgqueue.job_errors e "
                               "JOIN pgqueue.jobs j ON j.id = e.job_id "
                               "WHERE j.task = 'flaky'").fetchone()
    assert retried == (3,)  # each flaky job's first attempt, recorded


@pytest.mark.parametrize(("worker_side", "producer_side"), [("old", "new"), ("new", "old")],
                         ids=["v010-worker-new-producer", "new-worker-v010-producer"])
def test_each_side_runs_what_the_other_enqueues(code, dsn, worker_side, producer_side):
    """A v0.1.0 worker drains a new producer's jobs, and a new worker a v0.1.0 one's."""
    serving = worker(code, worker_side, dsn, stderr=subprocess.PIPE)
    try:
        started, outcomes = produce(code, producer_side, dsn)
    finally:
        assert stop_process(serving) == 0
    check_outcomes(dsn, started, outcomes, ROOT if producer_side == "new" else code["old"])


def _extra_migration(tmp_path: Path, text: str) -> list:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for m in available():
        (folder / m.filename).write_text(m.text)
    (folder / "9999_future.sql").write_text(text)
    return available(folder)


def _refused(code: dict[str, Path], dsn: str, command: str) -> str:
    args = ["worker", "--app", "compat_app:app"] if command == "worker" else \
        ["beat", "--app", "compat_app:app"]
    done = subprocess.run([sys.executable, "-m", "pgqueue.cli", *args],
                          env=_env(code, "new", dsn), cwd=code["apps"], text=True,
                          capture_output=True, timeout=60)
    assert done.returncode != 0, done.stderr
    return done.stderr


def test_code_older_than_a_breaking_migration_refuses_to_start(code, dsn, tmp_path):
    migrate_dsn(dsn, "pgqueue", _extra_migration(
        tmp_path, "-- pgqueue: breaking\nALTER TABLE jobs RENAME COLUMN kwargs TO named;\n"))
    for command in ("worker", "beat"):
        message = _refused(code, dsn, command)
        assert "9999_future" in message and "breaking" in message, message
        assert "upgrade pgqueue on this host" in message, message


def test_code_older_than_an_additive_migration_runs(code, dsn, tmp_path):
    migrate_dsn(dsn, "pgqueue", _extra_migration(
        tmp_path, "ALTER TABLE jobs ADD COLUMN future_note text;\n"))
    new = worker(code, "new", dsn, stderr=subprocess.PIPE)
    try:
        job = App(dsn).send_task("add", (20, 22), queue="compat")
        assert job.get(timeout=30) == 42
    finally:
        assert stop_process(new) == 0



@pytest.mark.parametrize("applied", ["none", "all but the newest"])
def test_new_code_on_an_older_schema_says_to_migrate(code, empty_db, applied):
    if applied != "none":
        migrate_dsn(empty_db, "pgqueue", available()[:-1])
    for command in ("worker", "beat"):
        message = _refused(code, empty_db, command)
        assert "run `pgq migrate` first" in message, message
        assert available()[-1].filename in message or applied == "none", message
