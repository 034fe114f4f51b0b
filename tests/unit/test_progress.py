"""Progress without a database: the checks, the stored shape, the worker's store and the
child's throttle, the cost of a report, and eager mode."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import multiprocessing as mp
import threading
import time
import uuid
from decimal import Decimal

import pytest

from pgqueue import App, JobContext, Progress
from pgqueue.encoding import ValueTooLarge
from pgqueue.progress import MAX_META_BYTES, ProgressStore, check, from_json, to_json
from pgqueue.worker.processes import ChildProgress

LEASE = uuid.uuid4()


class Level(enum.IntEnum):
    HALF = 50


def _ctx() -> JobContext:
    return JobContext(1, "t", "q", 1, 0, lease=LEASE)


# -- checks -----------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    ((0,), (0, None, None)),
    ((17, 40), (17, 40, None)),
    ((0.5, 1.0, {"file": "a.csv"}), (0.5, 1.0, '{"file":"a.csv"}')),
    ((Level.HALF, 100), (50, 100, None)),  # an int subclass, stored as the int
    ((3, None, [dt.date(2026, 1, 2)]), (3, None, '[{"$date":"2026-01-02"}]')),
])
def test_check_accepts_numbers_and_encodes_meta(args, expected):
    done, total, meta = check(*args)
    assert (done, total, meta) == expected
    assert type(done) in (int, float) and (total is None or type(total) in (int, float))


@pytest.mark.parametrize("args, error, words", [
    ((True,), TypeError, "done must be an int or a float, not bool"),
    ((1, False), TypeError, "total must be an int or a float, not bool"),
    (("3",), TypeError, "not str"),
    ((Decimal(1),), TypeError, "not Decimal"),
    ((None,), TypeError, "not NoneType"),
    ((float("nan"),), ValueError, "finite"),
    ((1, float("inf")), ValueError, "finite"),
    ((-1,), ValueError, "done must be 0 or more"),
    ((1, 0), ValueError, "total must be above 0"),
    ((1, -2.5), ValueError, "total must be above 0"),
    ((1, 2, object()), TypeError, "not JSON serialisable"),
    ((1, 2, {"s": "a\x00b"}), ValueError, "NUL"),
    ((1, 2, {1, 2}), TypeError, "pass a list"),
])
def test_check_refuses_with_a_clear_error(args, error, words):
    with pytest.raises(error, match=words):
        check(*args)
    with pytest.raises(error, match=words):  # the same from the task's side
        _ctx().update_progress(*args)


def test_meta_is_capped():
    check(1, 2, "x" * (MAX_META_BYTES - 10))
    with pytest.raises(ValueTooLarge, match="update_progress"):
        check(1, 2, "x" * MAX_META_BYTES)


def test_a_context_without_a_sink_checks_and_drops_and_one_with_a_sink_reports():
    ctx = _ctx()
    ctx.update_progress(1, 2)  # made by hand: nowhere to go, no error
    got: list[tuple[object, ...]] = []
    ctx.progress_sink = lambda *report: got.append(report)
    ctx.update_progress(3, 4, meta={"k": (1, 2)})
    assert got == [(3, 4, '{"k":[1,2]}')]


# -- the stored shape ---------------------------------------------------------------
def test_progress_fraction():
    assert Progress(17, 40).fraction == 17 / 40
    assert Progress(17).fraction is None
    assert Progress(50, 40).fraction == 1.25  # an estimate passed: not capped


def test_stored_json_round_trips_with_the_databases_time():
    text = to_json(check(2, 8, {"when": dt.date(2026, 5, 1), "$x": 1}))
    data = json.loads(text)
    assert data["done"] == 2 and data["total"] == 8
    data["updated_at"] = "2026-05-01T10:00:00.12345+02:00"  # as jsonb prints now()
    p = from_json(json.dumps(data))
    assert p == Progress(2, 8, {"when": dt.date(2026, 5, 1), "$x": 1},
                         dt.datetime(2026, 5, 1, 8, 0, 0, 123450, tzinfo=dt.UTC))
    assert json.loads(to_json(check(1e17)))["done"] == 1e17  # big floats written in full


@pytest.mark.parametrize("text, expected", [
    (None, None),
    ("not json", None),
    ("[1, 2]", None),
    ('{"done": "x"}', None),
    ('{"done": true}', None),
    ('{"done": 1, "total": "y"}', None),
    ('{"done": 1}', Progress(1)),  # written by SQL: what can be read is
    ('{"done": 1, "updated_at": "yesterday"}', Progress(1)),
])
def test_rows_written_by_sql_never_fail_a_reader(text, expected):
    assert from_json(text) == expected


# -- the worker's store --------------------------------------------------------------
def test_store_keeps_the_latest_report_per_attempt():
    store = ProgressStore()
    a, b = (1, uuid.uuid4()), (2, uuid.uuid4())
    sink = store.sink(*a)
    for i in range(1000):
        sink(i, 1000, None)
    store.put(*b, (5, None, None))
    assert len(store) == 2
    assert store.take([a, (3, LEASE)]) == {a: (999, 1000, None)}
    assert store.take() == {b: (5, None, None)} and store.take() == {}


def test_a_report_put_back_never_replaces_a_newer_one():
    store = ProgressStore()
    a, b = (1, uuid.uuid4()), (2, uuid.uuid4())
    store.put(*a, (2, None, None))
    store.put_back({a: (1, None, None), b: (7, None, None)})
    assert store.take() == {a: (2, None, None), b: (7, None, None)}


def test_store_under_threads_loses_no_latest_report():
    store = ProgressStore()
    keys = [(i, uuid.uuid4()) for i in range(8)]
    seen: dict[tuple[int, uuid.UUID], float] = {}
    stop = threading.Event()

    def report(key: tuple[int, uuid.UUID]) -> None:
        sink = store.sink(*key)
        for i in range(20_000):
            sink(i, None, None)

    def drain() -> None:
        while not stop.is_set():
            for key, (done, _, _) in store.take().items():
                assert done >= seen.get(key, -1)  # never an older report after a newer
                seen[key] = done

    drainer = threading.Thread(target=drain)
    drainer.start()
    threads = [threading.Thread(target=report, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    drainer.join()
    seen.update({k: r[0] for k, r in store.take().items()})
    assert seen == {k: 19_999 for k in keys}


# -- throttling and cost -------------------------------------------------------------
def test_a_tight_loop_keeps_one_report_and_costs_about_a_microsecond():
    store = ProgressStore()
    ctx = _ctx()
    ctx.progress_sink = store.sink(ctx.job_id, LEASE)
    n = 100_000
    started = time.perf_counter()
    for i in range(1, n + 1):
        ctx.update_progress(i, n)
    micros = (time.perf_counter() - started) / n * 1e6
    print(f"\nupdate_progress into the worker's store: {micros:.2f} us per call")
    assert store.take() == {(1, LEASE): (n, n, None)}
    assert micros < 50  # about 1 us; generous for a loaded machine


def test_a_child_sends_a_handful_of_messages_and_its_last_report_before_closing():
    parent, child = mp.Pipe()
    sink = ChildProgress(child, 7, str(LEASE))
    ctx = _ctx()
    ctx.progress_sink = sink
    n = 100_000
    started = time.perf_counter()
    for i in range(1, n + 1):
        ctx.update_progress(i, n)
    seconds = time.perf_counter() - started
    sink.close()
    ctx.update_progress(n + 1, n)  # a thread the task left behind: sent nowhere
    messages = []
    while parent.poll(0.1):
        messages.append(json.loads(parent.recv_bytes()))
    print(f"\nchild: {n:,} calls, {seconds / n * 1e6:.2f} us each, {len(messages)} messages")
    assert 2 <= len(messages) <= 3 + seconds / 0.2
    assert messages[0] == ["progress", 7, str(LEASE), 1, n, None]  # the first goes at once
    assert messages[-1] == ["progress", 7, str(LEASE), n, n, None]  # the last, at close
    assert all(isinstance(m, list) for m in messages)  # never mistaken for an outcome


def test_a_child_sends_a_report_kept_by_the_throttle_once_the_interval_is_up():
    parent, child = mp.Pipe()
    sink = ChildProgress(child, 7, str(LEASE))
    sink(1, 10, None)
    sink(2, 10, None)  # too soon: kept...
    assert parent.poll(1) and json.loads(parent.recv_bytes())[3] == 1
    assert parent.poll(1)  # ...and sent by the timer, with no further report
    assert json.loads(parent.recv_bytes())[3] == 2
    sink(3, 10, None)  # kept again, its timer cancelled by the close
    sink.close()
    assert json.loads(parent.recv_bytes())[3] == 3
    assert not parent.poll(0.4)


# -- eager mode ------------------------------------------------------------------------
@pytest.fixture
def eager() -> App:
    app = App("postgresql://unused/db", eager=True)

    @app.task(bind=True)
    def counts(self: JobContext, n: int) -> int:
        for i in range(1, n + 1):
            self.update_progress(i, n, meta={"at": i})
        return n

    @app.task(bind=True, max_retries=1)
    def reports_once(self: JobContext) -> int:
        if self.attempt == 1:
            self.update_progress(1, 2)
            raise ConnectionError("again")
        return self.attempt

    @app.task
    def silent() -> None:
        return None

    @app.task(bind=True)
    def bad(self: JobContext) -> None:
        self.update_progress(-1)

    @app.task(bind=True)
    async def async_counts(self: JobContext, n: int) -> int:
        self.update_progress(n, n)
        return n

    return app


def test_eager_mode_keeps_the_last_report_in_memory(eager: App):
    before = dt.datetime.now(dt.UTC)
    r = eager.tasks["counts"].delay(5)
    p = r.progress
    assert p is not None and (p.done, p.total, p.meta, p.fraction) == (5, 5, {"at": 5}, 1.0)
    assert p.updated_at is not None and p.updated_at >= before
    assert r.info().progress == p and asyncio.run(r.progress_async()) == p
    assert eager.AsyncResult(r.id).progress == p
    assert eager.tasks["silent"].delay().progress is None
    assert eager.tasks["reports_once"].delay().progress is None  # the retry reported none
    failed = eager.tasks["bad"].delay()
    assert failed.failed() and "done must be 0 or more" in failed.info().error.message
    done = eager.tasks["async_counts"].delay(3).progress
    assert done is not None and (done.done, done.total, done.meta) == (3, 3, None)


def test_eager_mode_from_asyncio(eager: App):
    async def go() -> Progress | None:
        r = await eager.tasks["async_counts"].delay_async(4)
        return await r.progress_async()

    p = asyncio.run(go())
    assert p is not None and (p.done, p.total) == (4, 4)

