"""PGQ_MAX_ARGS_BYTES: a job whose arguments are over the cap is refused at enqueue,
by every way of enqueueing, before any SQL: nothing is written and the caller's
transaction stays usable."""

import asyncio

import psycopg
import pytest

from pgqueue import App
from pgqueue.errors import ArgumentsTooLarge
from tests.conftest import count

CAP = 1000
BIG = "x" * 2000  # over the cap as a single argument
FITS = "y" * 100


@pytest.fixture
def capped(dsn):
    application = App(dsn, max_args_bytes=CAP)

    @application.task
    def echo(value: object, other: object = None) -> object:
        return value

    yield application
    application.close()


def _jobs(dsn):
    return count(dsn, "SELECT count(*) FROM pgqueue.jobs")


def _refused(exc: pytest.ExceptionInfo[ArgumentsTooLarge]) -> None:
    assert isinstance(exc.value, ValueError)
    message = str(exc.value)
    assert "PGQ_MAX_ARGS_BYTES" in message and f"{CAP:,}" in message
    assert f"{exc.value.size:,}" in message and exc.value.size > CAP
    assert exc.value.limit == CAP and exc.value.task == "echo"


def _with_errback(sig, errback):
    sig.link_error(errback)
    return sig


def test_every_sync_path_refuses_and_writes_nothing(capped, dsn):
    echo = capped.tasks["echo"]
    calls = [
        lambda: echo.delay(BIG),
        lambda: echo.delay(FITS, other=BIG),  # keyword arguments count too
        lambda: echo.apply_async(args=(BIG,)),
        lambda: echo.map([(FITS,), (BIG,), (FITS,)]),
        lambda: capped.enqueue_many([echo.s(FITS), echo.s(BIG)]),
        lambda: (echo.s(FITS) | echo.s(BIG)).apply_async(),  # a workflow
        lambda: _with_errback(echo.s(FITS), echo.s(BIG)).apply_async(),
    ]
    for call in calls:
        with pytest.raises(ArgumentsTooLarge) as exc:
            call()
        _refused(exc)
    assert _jobs(dsn) == 0
    echo.delay(FITS)  # under the cap: written
    echo.map([(FITS,), (FITS,)])
    assert _jobs(dsn) == 3


def test_the_callers_transaction_stays_usable(capped, dsn):
    echo = capped.tasks["echo"]
    with psycopg.connect(dsn) as conn:
        with pytest.raises(ArgumentsTooLarge):
            echo.apply_async(args=(BIG,), connection=conn)
        with pytest.raises(ArgumentsTooLarge):
            echo.map([(BIG,)], connection=conn)
        echo.apply_async(args=(FITS,), connection=conn)  # same transaction, still fine
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _jobs(dsn) == 1


def test_async_paths_refuse(capped, dsn):
    echo = capped.tasks["echo"]

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            with pytest.raises(ArgumentsTooLarge):
                await echo.apply_async_async(args=(BIG,), connection=conn)
            with pytest.raises(ArgumentsTooLarge):
                await echo.map_async([(BIG,)], connection=conn)
            with pytest.raises(ArgumentsTooLarge):
                await capped.enqueue_many_async([echo.s(BIG)], connection=conn)
            await echo.apply_async_async(args=(FITS,), connection=conn)

    asyncio.run(main())
    assert _jobs(dsn) == 1


def test_eager_mode_refuses_too(dsn):
    application = App(dsn, max_args_bytes=CAP, eager=True)
    ran: list[object] = []

    @application.task
    def echo(value: object) -> object:
        ran.append(value)
        return value

    with pytest.raises(ArgumentsTooLarge):
        echo.delay(BIG)
    with pytest.raises(ArgumentsTooLarge):
        echo.map([(BIG,)])
    assert ran == [] and echo.delay(FITS).get() == FITS
    application.close()


def test_the_cap_comes_from_the_environment(monkeypatch, dsn):
    monkeypatch.setenv("PGQ_MAX_ARGS_BYTES", str(CAP))
    application = App(dsn)
    application.task(lambda value: value, name="echo")
    with pytest.raises(ArgumentsTooLarge):
        application.tasks["echo"].delay(BIG)
    application.close()
    monkeypatch.delenv("PGQ_MAX_ARGS_BYTES")
    assert App(dsn).settings.max_args_bytes == 16 * 1024 * 1024  # the default
