"""``manage.py test`` of a tiny project whose tests enqueue jobs and use pgqueue's pools:
the test runner creates its test database, runs them, and drops it again."""

from __future__ import annotations

import subprocess

import pytest

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[django]')")

from tests.conftest import count
from tests.contrib.django.conftest import manage
from tests.contrib.django.djproject.config import tasks_api

if tasks_api() is None:
    pytest.skip("needs Django 6 (django.tasks) or the django-tasks backport",
                allow_module_level=True)


@pytest.mark.timeout(120)
def test_manage_py_test_drops_its_test_database_with_pgqueue_in_use(dsn: str) -> None:
    run = manage(dsn, "test", "tests.contrib.django.testrunner", "--noinput", "-v", "2",
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = run.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        run.kill()
        _, err = run.communicate()
        raise AssertionError(f"manage.py test hung:\n{err[-3000:]}") from None
    assert run.returncode == 0, err[-3000:]
    assert "Ran 3 tests" in err and "OK" in err, err[-3000:]
    assert "Destroying test database" in err
    name = dsn.split("dbname=")[1].split()[0]
    assert count(dsn, "SELECT count(*) FROM pg_database WHERE datname = %s",
                 f"test_{name}") == 0
