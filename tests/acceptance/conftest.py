"""Fixtures of the acceptance tests (real `pgq` processes)."""

from collections.abc import Iterator

import pytest

from pgqueue import App


@pytest.fixture
def producer(dsn: str) -> Iterator[App]:
    """An app with the test tasks and default settings, for enqueueing from the test."""
    from tests.tasks_app import register

    app = App(dsn)
    register(app)
    yield app
    app.close()
