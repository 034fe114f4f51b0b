"""The runtime half of pgqueue.celery with real workers: Celery tasks, requests,
retries, handlers, signals, states and results, as a Celery project uses them."""

from __future__ import annotations

import datetime as dt
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from pgqueue.celery import Celery, states
from pgqueue.celery import signals as celery_signals
from pgqueue.celery.canvas import chord, group, signature
from pgqueue.celery.exceptions import Ignore, MaxRetriesExceededError, Reject, TaskRevokedError
from pgqueue.celery.result import AsyncResult, EagerResult, GroupResult
from pgqueue.celery.task import Task
from pgqueue.errors import TaskError
from tests.conftest import running_worker, until


class PaymentDeclined(Exception):
    """Module level: a producer can import it by the name the worker recorded."""


def url(dsn: str) -> str:
    """The test DSN (key=value) as the postgresql:// URL a Celery config holds."""
    params = conninfo_to_dict(dsn)
    dbname = params.pop("dbname")
    return f"postgresql:///{dbname}?{urllib.parse.urlencode(params)}"


@pytest.fixture
def capp(dsn: str) -> Iterator[Celery]:
    app = Celery("proj", broker=url(dsn))
    app.configure(heartbeat_interval=0.5, lease_seconds=5)
    yield app
    app.close()


def worker(app: Celery, **settings: Any) -> Any:
    return running_worker(app, queues=("celery",), concurrency=settings.pop("concurrency", 4),
                          **settings)


def test_results_read_in_celery_states_and_ids_are_strings(capp):
    @capp.task
    def add(x, y):
        return x + y

    r = add.delay(2, 3)
    assert isinstance(r, AsyncResult) and isinstance(r.id, str)
    assert r.state == states.PENDING and not r.ready()
    with worker(capp):
        assert r.get(timeout=10) == 5
    assert r.state == r.status == "SUCCESS" and r.successful() and r.ready()
    assert r.result == r.info == 5
    for kept in (r.id, int(r.id)):  # the id as a web session keeps it
        again = capp.AsyncResult(kept)
        assert again.state == "SUCCESS" and again.get(timeout=1) == 5 and again.id == r.id
    for unknown in ("not-a-job", "99999999", "", str(uuid.uuid4())):
        assert AsyncResult(unknown, app=capp).state == "PENDING"
        assert AsyncResult(unknown, app=capp).result is None


def test_get_raises_the_tasks_own_exception(capp):
    class LocalOnly(Exception):  # not importable: the fallback keeps what was recorded
        pass

    @capp.task
    def divide(x, y):
        return x / y

    @capp.task
    def charge(card):
        raise PaymentDeclined("card declined", card)

    @capp.task
    def local():
        raise LocalOnly("nowhere to import me from")

    with worker(capp):
        r1, r2, r3 = divide.delay(1, 0), charge.delay(42), local.delay()
        with pytest.raises(ZeroDivisionError, match="division by zero"):
            r1.get(timeout=10)
        with pytest.raises(PaymentDeclined) as declined:
            r2.get(timeout=10)
        assert declined.value.args == ("card declined", 42)
        with pytest.raises(TaskError) as fallback:
            r3.get(timeout=10)
    assert fallback.value.type.endswith("LocalOnly")
    assert fallback.value.message == "nowhere to import me from"
    assert "LocalOnly" in fallback.value.traceback
    assert r1.state == "FAILURE" and r1.failed() and not r1.successful()
    assert isinstance(r1.result, ZeroDivisionError) and isinstance(r1.info, ZeroDivisionError)
    assert isinstance(r1.get(propagate=False), ZeroDivisionError)
    assert "ZeroDivisionError" in (r1.traceback or "")


def test_bound_task_retries_without_raise_and_sees_its_request(capp):
    seen: list[tuple[Any, ...]] = []

    @capp.task(bind=True, default_retry_delay=0)
    def flaky(self, n):
        r = self.request
        seen.append((r.id, r.retries, r.args, r.kwargs, r.delivery_info.get("routing_key"),
                     r.called_directly, r.is_eager))
        if r.retries < 2:
            self.retry(exc=ConnectionError("try again"), countdown=0)  # raises by itself
            raise AssertionError("retry() returned")
        return n * 10

    with pytest.raises(ConnectionError):  # called directly, retry() raises exc
        flaky(1)
    assert seen == [(None, 0, (1,), {}, None, True, False)]
    seen.clear()
    with worker(capp):
        r = flaky.delay(4)
        assert r.get(timeout=20) == 40
    assert [s[1] for s in seen] == [0, 1, 2]
    assert {s[0] for s in seen} == {r.id}
    assert seen[0][2:] == ((4,), {}, "celery", False, False)


def test_retries_spent_raise_the_exception_or_max_retries_exceeded(capp):
    @capp.task(bind=True, max_retries=1)
    def with_exc(self):
        self.retry(exc=KeyError("gone"), countdown=0)

    @capp.task(bind=True, max_retries=1)
    def without_exc(self):
        self.retry(countdown=0)

    assert with_exc.max_retries == 1
    with worker(capp):
        a, b = with_exc.delay(), without_exc.delay()
        with pytest.raises(KeyError):
            a.get(timeout=20)
        with pytest.raises(MaxRetriesExceededError):
            b.get(timeout=20)
    assert a.retries == 1 and b.retries == 1


def test_autoretry_for_uses_celerys_defaults_and_budget(capp):
    calls: list[int] = []

    @capp.task(bind=True, autoretry_for=(ConnectionError,), retry_backoff=False,
               default_retry_delay=0)
    def fetch(self):
        calls.append(self.request.retries)
        raise ConnectionError("down")

    @capp.task(bind=True, autoretry_for=(ConnectionError,), retry_kwargs={"max_retries": 1},
               retry_backoff=True, retry_jitter=False, retry_backoff_max=0.01)
    def fetch_once(self):
        calls.append(100 + self.request.retries)
        raise ConnectionError("down")

    @capp.task
    def not_listed():
        raise ValueError("no autoretry for this")

    assert fetch.max_retries == 3 and fetch.default_retry_delay == 0
    with worker(capp):
        with pytest.raises(ConnectionError):
            fetch.delay().get(timeout=20)
        with pytest.raises(ConnectionError):
            fetch_once.delay().get(timeout=20)
        r = not_listed.delay()
        with pytest.raises(ValueError):
            r.get(timeout=10)
    assert sorted(c for c in calls if c < 100) == [0, 1, 2, 3]  # max_retries=3 by default
    assert sorted(c for c in calls if c >= 100) == [100, 101]
    assert r.retries == 0


class Recording(Task):
    events: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self) -> None:  # Celery instantiates a task class with no arguments
        super().__init__()
        self.made_by_init = True

    def on_success(self, retval, task_id, args, kwargs):
        self.events.append(("success", retval, task_id, tuple(args)))

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        self.events.append(("failure", type(exc).__name__, task_id, einfo.type.__name__))

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        self.events.append(("retry", type(exc).__name__, task_id))

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        self.events.append(("after", status, task_id))


def test_a_base_class_handlers_run_in_the_worker(capp):
    Recording.events = []

    @capp.task(base=Recording)
    def ok(x):
        return x + 1

    @capp.task(base=Recording, bind=True, max_retries=1)
    def bad(self):
        if self.request.retries == 0:
            raise self.retry(exc=OSError("once"), countdown=0)
        raise ValueError("twice")

    assert isinstance(ok, Recording) and ok.made_by_init and ok.name.endswith(".ok")
    with worker(capp):
        r1, r2 = ok.delay(1), bad.delay()
        assert r1.get(timeout=10) == 2
        with pytest.raises(ValueError):
            r2.get(timeout=20)
    ev = Recording.events
    assert ("success", 2, r1.id, (1,)) in ev and ("after", "SUCCESS", r1.id) in ev
    assert ("retry", "OSError", r2.id) in ev and ("after", "RETRY", r2.id) in ev
    assert ("failure", "ValueError", r2.id, "ValueError") in ev
    assert ("after", "FAILURE", r2.id) in ev


def test_signals_are_sent_with_celerys_arguments(capp):
    got: list[tuple[Any, ...]] = []

    @capp.task
    def mul(x, y):
        return x * y

    @capp.task
    def fails():
        raise RuntimeError("no")

    def prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **kw):
        got.append(("prerun", sender.name, task_id, tuple(args)))

    def postrun(sender=None, task_id=None, retval=None, state=None, **kw):
        got.append(("postrun", task_id, retval if state == "SUCCESS" else None, state))

    def success(sender=None, result=None, **kw):
        got.append(("success", sender.name, result))

    def failure(sender=None, task_id=None, exception=None, einfo=None, **kw):
        got.append(("failure", task_id, type(exception).__name__, einfo is not None))

    def only_mul(sender=None, **kw):
        got.append(("only", sender.name))

    def ready(sender=None, **kw):
        got.append(("ready",))

    def shutdown(sender=None, **kw):
        got.append(("shutdown",))

    pairs = [(celery_signals.task_prerun, prerun), (celery_signals.task_postrun, postrun),
             (celery_signals.task_success, success), (celery_signals.task_failure, failure),
             (celery_signals.worker_ready, ready), (celery_signals.worker_shutdown, shutdown)]
    for sig, fn in pairs:
        sig.connect(fn)
    celery_signals.task_prerun.connect(sender=mul)(only_mul)
    try:
        with worker(capp):
            r1, r2 = mul.delay(6, 7), fails.delay()
            assert r1.get(timeout=10) == 42
            with pytest.raises(RuntimeError):
                r2.get(timeout=10)
    finally:
        for sig, fn in pairs:
            sig.disconnect(fn)
        celery_signals.task_prerun.disconnect(only_mul, sender=mul)
    assert ("prerun", mul.name, r1.id, (6, 7)) in got
    assert ("success", mul.name, 42) in got and ("postrun", r1.id, 42, "SUCCESS") in got
    assert ("failure", r2.id, "RuntimeError", True) in got
    assert ("postrun", r2.id, None, "FAILURE") in got
    assert got.count(("only", mul.name)) == 1  # the sender filter
    assert got[0] == ("ready",) and got[-1] == ("shutdown",)


def test_update_state_and_track_started_are_visible_while_the_task_runs(capp):
    release = threading.Event()

    @capp.task(bind=True)
    def report(self):
        self.update_state(state="PROGRESS", meta={"current": 3, "total": 10})
        release.wait(20)
        return "done"

    @capp.task(track_started=True)
    def tracked():
        release.wait(20)

    @capp.task
    def untracked():
        release.wait(20)

    with worker(capp):
        r1, r2, r3 = report.delay(), tracked.delay(), untracked.delay()
        until(lambda: AsyncResult(r1.id, app=capp).state == "PROGRESS")
        assert r1.info == {"current": 3, "total": 10}
        until(lambda: r2.state == "STARTED")
        assert r3.state == "PENDING"
        release.set()
        assert r1.get(timeout=10) == "done"
        r2.get(timeout=10)
        r3.get(timeout=10)
    assert r1.state == "SUCCESS" and r1.info == "done"


def test_a_chosen_task_id_names_the_job_and_joins_the_transaction(capp, dsn):
    seen: list[str] = []

    @capp.task(bind=True)
    def add(self, x, y):
        seen.append(self.request.id)
        return x + y

    chosen = str(uuid.uuid4())
    r = add.apply_async((1, 2), task_id=chosen)
    assert r.id == chosen
    rolled_back = str(uuid.uuid4())
    with psycopg.connect(dsn) as conn:
        add.apply_async((5, 5), task_id=rolled_back, connection=conn)
        conn.rollback()
    with worker(capp):
        assert AsyncResult(chosen, app=capp).get(timeout=10) == 3
    assert seen == [chosen]
    assert AsyncResult(rolled_back, app=capp).state == "PENDING"
    with pytest.raises(TimeoutError):
        AsyncResult(rolled_back, app=capp).get(timeout=0.6)


def test_eta_naive_is_utc_and_other_celery_options_are_accepted(capp):
    @capp.task
    def ping():
        return "pong"

    eta = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=1)
    r1 = ping.apply_async(eta=eta, routing_key="x", exchange="y", serializer="json",
                          retry=True, headers={"n": 1, "s": "t"})
    r2 = ping.apply_async(countdown=0.5, expires=60, priority=5, queue="celery")
    with pytest.raises(ValueError, match="JSON only"):
        ping.apply_async(serializer="pickle")
    started = time.monotonic()
    with worker(capp):
        assert r1.get(timeout=10) == "pong" and r2.get(timeout=10) == "pong"
    assert time.monotonic() - started >= 0.4


def test_revoke_forget_and_pickle_refused(capp):
    @capp.task
    def later():
        return 1

    r = later.apply_async(countdown=60)
    r.revoke(terminate=True)
    assert r.state == "REVOKED" and r.ready()
    with pytest.raises(TaskRevokedError):
        r.get(timeout=1)
    r.forget()
    assert r.state == "PENDING"
    with pytest.raises(ValueError, match="JSON"):
        @capp.task(serializer="pickle")
        def pickled():
            pass


def test_apply_runs_eagerly_and_returns_an_eager_result(capp):
    @capp.task(bind=True, default_retry_delay=0)
    def once_more(self, x):
        if self.request.retries == 0:
            self.retry()
        return (x, self.request.is_eager)

    @capp.task
    def divide(x, y):
        return x / y

    r = once_more.apply((7,))
    assert isinstance(r, EagerResult) and r.state == "SUCCESS" and r.get() == [7, True]
    failed = divide.apply((1, 0))
    assert failed.state == "FAILURE" and isinstance(failed.result, ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        failed.get()
    with pytest.raises(ZeroDivisionError):
        divide.apply((1, 0), throw=True)
    assert divide(6, 3) == 2  # calling the task runs it here


def test_arguments_are_checked_at_the_call_as_celery_does(capp):
    @capp.task
    def add(x, y):
        return x + y

    @capp.task(bind=True)
    def bound(self, x):
        return x

    @capp.task(typing=False)
    def unchecked(x):
        return x

    with pytest.raises(TypeError, match="add"):
        add.delay(1)
    with pytest.raises(TypeError):
        add.apply_async((1, 2), {"z": 3})
    with pytest.raises(TypeError):
        bound.delay(1, 2)
    with pytest.raises(TypeError, match="list or tuple"):
        add.apply_async("12")
    bound.delay(1)
    unchecked.delay(1, 2, 3)  # typing=False: the worker finds out
    assert GroupResult.restore("123456", app=capp) is None
    assert GroupResult.restore("not-a-group", app=capp) is None


def test_signatures_and_canvases_give_celery_results(capp):
    @capp.task
    def add(x, y):
        return x + y

    @capp.task
    def tsum(values):
        return sum(values)

    @capp.task
    def divide(x, y):
        return x / y

    with worker(capp):
        one = add.s(2, 2).delay()
        assert isinstance(one, AsyncResult) and one.get(timeout=10) == 4
        chained = (add.s(2, 2) | add.s(4) | add.si(1, 1)).apply_async(countdown=0,
                                                                       routing_key="ignored")
        assert isinstance(chained, AsyncResult) and chained.get(timeout=10) == 2
        assert isinstance(chained.parent, AsyncResult) and chained.parent.get(timeout=1) == 8
        g = group(add.s(i, i) for i in range(4)).apply_async()
        assert isinstance(g, GroupResult) and g.get(timeout=10) == [0, 2, 4, 6]
        assert all(isinstance(r, AsyncResult) for r in g.results) and g.successful()
        assert GroupResult.restore(g.id, app=capp).get(timeout=1) == [0, 2, 4, 6]
        c = chord([add.s(1, 1), add.s(2, 2)])(tsum.s())
        assert isinstance(c, AsyncResult) and c.get(timeout=10) == 6
        c2 = (group(add.s(1, 1), add.s(3, 3)) | tsum.s()).delay()
        assert c2.get(timeout=10) == 8
        bad = group(add.s(1, 1), divide.s(1, 0)).apply_async()
        with pytest.raises(ZeroDivisionError):
            bad.get(timeout=10)
        failed_chain = (divide.s(1, 0) | add.s(1)).apply_async()
        with pytest.raises(ZeroDivisionError):
            failed_chain.get(timeout=10)
        assert failed_chain.state == "FAILURE"
        by_name = signature(add.name, args=(5, 5), countdown=0).apply_async()
        assert by_name.get(timeout=10) == 10


def test_retry_state_ignore_reject_and_async_tasks(capp):
    @capp.task(bind=True)
    def later(self):
        raise self.retry(exc=ConnectionError("broker down"), countdown=60)

    @capp.task
    def ignored():
        raise Ignore()

    @capp.task(bind=True)
    def rejected_once(self):
        if self.request.retries == 0:
            raise Reject("not yet", requeue=True)
        return "second time"

    @capp.task(bind=True)
    async def async_add(self, x, y):
        return [x + y, self.request.id]

    with worker(capp):
        r = later.delay()
        until(lambda: r.state == "RETRY")
        assert isinstance(r.info, ConnectionError) and "broker down" in (r.traceback or "")
        assert not r.ready()
        assert ignored.delay().get(timeout=10) is None
        assert rejected_once.delay().get(timeout=10) == "second time"
        a = async_add.delay(1, 2)
        assert a.get(timeout=10) == [3, a.id]
        r.revoke()
    assert r.state == "REVOKED"


def test_task_always_eager_runs_inline_with_celery_results(capp):
    @capp.task(bind=True)
    def add(self, x, y):
        return [x + y, self.request.is_eager]

    capp.conf.update(task_always_eager=True)
    r = add.delay(1, 2)
    assert isinstance(r, EagerResult) and r.get() == [3, True] and r.state == "SUCCESS"
    chosen = str(uuid.uuid4())
    r2 = add.apply_async((2, 2), task_id=chosen)
    assert r2.id == chosen and AsyncResult(chosen, app=capp).get() == [4, True]


def test_in_a_processes_pool_the_child_runs_the_celery_machinery(capp, tmp_path):
    from tests.celery.runtime_app import APP_PATH, Declined, register

    register(capp)
    notes, gate = str(tmp_path / "notes"), tmp_path / "gate"
    retry_then_report = capp.tasks["tests.celery.runtime_app.retry_then_report"]
    declined = capp.tasks["tests.celery.runtime_app.declined"]
    chosen = str(uuid.uuid4())
    with worker(capp, app_path=APP_PATH, pool="processes", concurrency=2):
        r = retry_then_report.apply_async((notes, str(gate)), task_id=chosen)
        until(lambda: r.state == "PROGRESS", timeout=30)
        assert r.info["pid"] != __import__("os").getpid()
        gate.touch()
        assert r.get(timeout=30) == [chosen, 1]
        d = declined.delay(notes)
        with pytest.raises(Declined) as raised:
            d.get(timeout=30)
    assert raised.value.args == ("card declined", 7)
    lines = (tmp_path / "notes").read_text().splitlines()
    assert f"retry {chosen} ConnectionError" in lines
    assert any(line.startswith(f"success {chosen} ") for line in lines)
    assert f"failure {d.id} Declined" in lines


def test_link_and_link_error_callbacks_get_what_celery_gives_them(capp):
    got: list[Any] = []

    @capp.task
    def add(x, y):
        return x + y

    @capp.task
    def divide(x, y):
        return x / y

    @capp.task
    def record(value, label):
        got.append((label, value))

    @capp.task
    def error_handler(request, exc, traceback):  # Celery's documented errback
        got.append(("errback", request.id, type(exc).__name__, "ZeroDivisionError" in traceback))

    @capp.task
    def old_style(task_id):
        got.append(("old", task_id))

    with worker(capp):
        r = add.apply_async((2, 2), link=record.s("sum"))
        assert r.get(timeout=10) == 4
        assert [type(c) for c in r.children] == [AsyncResult]
        r.children[0].get(timeout=10)
        bad = divide.apply_async((1, 0), link_error=[error_handler.s(), old_style.s()])
        with pytest.raises(ZeroDivisionError):
            bad.get(timeout=10)
        until(lambda: len(got) == 3)
    assert ("sum", 4) in got
    assert ("errback", bad.id, "ZeroDivisionError", True) in got
    assert ("old", bad.id) in got


class Multiply(Task):
    """A class-based task, as Celery's app.register_task(Multiply()) takes."""

    name = "proj.tasks.multiply"

    def run(self, x, y):
        return [x * y, self.request.retries]


def test_canvas_calls_map_starmap_chunks_and_class_based_tasks(capp):
    from pgqueue.celery.canvas import chain
    from pgqueue.celery.task import bind_task

    @capp.task
    def add(x, y):
        return x + y

    @capp.task
    def double(x):
        return 2 * x

    @capp.task
    def tsum(values):
        return sum(values)

    multiply = bind_task(capp, Multiply())
    assert capp.tasks["proj.tasks.multiply"] is multiply and multiply(3, 4) == [12, 0]
    with worker(capp):
        assert chain(add.s(2, 2), add.s(4), add.s(8))().get(timeout=10) == 16
        assert group(add.s(i, i) for i in range(4))().get(timeout=10) == [0, 2, 4, 6]
        assert (group(add.s(i, i) for i in range(4)) | tsum.s())().get(timeout=10) == 12
        assert ~add.s(1, 1) == 2
        assert ~double.map([1, 2, 3]) == [2, 4, 6]
        assert ~add.starmap(zip(range(3), range(3), strict=True)) == [0, 2, 4]
        pairs = [(i, i) for i in range(5)]
        assert add.chunks(pairs, 2)().get(timeout=10) == [[0, 2], [4, 6], [8]]
        assert multiply.delay(6, 7).get(timeout=10) == [42, 0]


def test_task_settings_default_from_the_apps_configuration(capp):
    capp.conf.update(task_track_started=True, task_soft_time_limit=30, task_time_limit=60)

    @capp.task
    def configured():
        return 1

    @capp.task(track_started=False, time_limit=90)
    def own():
        return 1

    assert configured.track_started is True and own.track_started is False
    assert (configured.soft_time_limit, configured.time_limit) == (30, 60)
    assert (own.soft_time_limit, own.time_limit) == (30, 90)
    capp.conf.update(task_ignore_result=True)
    configured.from_config()  # what the app's finalize does for every task
    assert configured.options.ignore_result and configured.ignore_result


class Starting(Task):
    started: ClassVar[list[str]] = []

    def before_start(self, task_id, args, kwargs):
        self.started.append(task_id)


def test_more_of_celerys_documented_calls(capp):
    from pgqueue.celery.canvas import chain
    from pgqueue.celery.exceptions import ChordError

    release = threading.Event()
    errors: list[Any] = []

    @capp.task
    def add(x, y):
        return x + y

    @capp.task
    def mul(x, y):
        return x * y

    @capp.task
    def tsum(values):
        return sum(values)

    @capp.task
    def raising():
        raise ValueError("something something")

    @capp.task
    def log_error(request, exc, traceback):
        errors.append((request.id, type(exc).__name__))

    @capp.task(bind=True)
    def progress(self):
        self.update_state(state="PROGRESS", meta={"progress": 50})
        release.wait(20)
        return "ok"

    @capp.task(bind=True)
    def get_tweets(self):
        self.update_state(state=states.SUCCESS, meta=["tweet"])
        raise Ignore()

    @capp.task(base=Starting)
    def starts():
        return 1

    @capp.task
    def sleeper():
        release.wait(20)

    Starting.started = []
    with worker(capp):
        bad = add.s(2, "2").on_error(log_error.s()).delay()
        with pytest.raises(TypeError):
            bad.get(timeout=10)
        until(lambda: errors == [(bad.id, "TypeError")])
        assert chain(group(add.s(1, 1)), add.s(2))().get(timeout=10) == 4
        assert add.apply_async((1, 2), ignore_result=True).get() is None
        linked = add.apply_async((2, 2), link=mul.s(16))
        assert [(r.id, v) for r, v in linked.collect(timeout=10)] == [
            (linked.id, 4), (linked.children[0].id, 64)]
        with pytest.raises(ChordError):
            chord([add.s(4, 4), raising.s(), add.s(8, 8)], tsum.s())().get(timeout=10)
        messages: list[dict[str, Any]] = []
        p = progress.delay()
        until(lambda: p.state == "PROGRESS")
        threading.Timer(0.3, release.set).start()
        assert p.get(on_message=messages.append, propagate=False, timeout=10) == "ok"
        assert [m["status"] for m in messages] == ["PROGRESS", "SUCCESS"]
        assert messages[0]["result"] == {"progress": 50} and messages[1]["result"] == "ok"
        assert get_tweets.delay().get(timeout=10) == ["tweet"]
        s = starts.delay()
        s.get(timeout=10)
        assert Starting.started == [s.id]
        release.clear()
        running = sleeper.delay()
        until(lambda: running.job_id is not None and running._info().state.value == "running")
        running.revoke(terminate=True)
        assert running.state == "REVOKED" and running.ready()
        with pytest.raises(TaskRevokedError):
            running.get(timeout=1)
        release.set()


def test_current_task_and_the_task_logger_know_the_running_task(capp):
    import logging

    from pgqueue.celery.task import current_task
    from pgqueue.celery.utils.log import get_task_logger

    logger = get_task_logger("proj.tasks_log")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    release = threading.Event()

    @capp.task
    def unbound():
        logger.info("working")
        current_task.update_state(state="PROGRESS", meta={"via": "current_task"})
        release.wait(20)
        return current_task.request.id

    assert not current_task
    try:
        with worker(capp):
            r = unbound.delay()
            until(lambda: r.state == "PROGRESS")
            assert r.info == {"via": "current_task"}
            release.set()
            assert r.get(timeout=10) == r.id
    finally:
        logger.removeHandler(handler)
    record = next(rec for rec in records if rec.getMessage() == "working")
    assert (record.task_id, record.task_name) == (r.id, unbound.name)
    records.clear()
    logger.addHandler(handler)
    logger.info("outside")
    logger.removeHandler(handler)
    assert logging.Formatter("%(task_name)s[%(task_id)s]: %(message)s").format(
        records[0]) == "???[???]: outside"


def test_terminate_interrupts_a_thread_and_members_know_their_group(capp, tmp_path):
    revoked: list[Any] = []

    @capp.task
    def slow_then_note(seconds, path):
        time.sleep(seconds)  # interrupted when it returns: the note is never written
        with open(path, "w") as f:
            f.write("ran to its end")

    @capp.task(bind=True)
    def group_of(self):
        return self.request.group

    @capp.task
    def add(x, y):
        return x + y

    def on_revoked(sender=None, request=None, terminated=None, **kw):
        revoked.append((request.id, terminated))

    note = tmp_path / "note"
    celery_signals.task_revoked.connect(on_revoked)
    try:
        with worker(capp):
            r = slow_then_note.delay(1, str(note))
            until(lambda: r._info() is not None and r._info().state.value == "running")
            r.revoke(terminate=True)
            assert r.state == "REVOKED"
            until(lambda: r._info().state.value == "cancelled", timeout=10)
            g = group(group_of.s(), group_of.s())()
            assert g.get(timeout=10) == [g.id, g.id]
            assert group_of.delay().get(timeout=10) is None
            skewed = add.chunks([(i, i) for i in range(4)], 2).group().skew(start=0.5, stop=1.5)
            started = time.monotonic()
            assert skewed().get(timeout=10) == [[0, 2], [4, 6]]
            assert time.monotonic() - started >= 1.4
    finally:
        celery_signals.task_revoked.disconnect(on_revoked)
    time.sleep(0.2)
    assert not note.exists()
    assert revoked == [(r.id, True)]
    assert slow_then_note.OperationalError.__name__ == "DatabaseUnavailable"


def test_retry_with_throw_false_retries_once_the_task_returns(capp):
    ran: list[int] = []

    @capp.task(bind=True)
    def polite(self):
        ran.append(self.request.retries)
        if self.request.retries == 0:
            returned = self.retry(countdown=0, throw=False)
            assert returned is not None  # it returned: the task goes on to its end
        return "done"

    with worker(capp):
        assert polite.delay().get(timeout=10) == "done"
    assert ran == [0, 1]


def test_a_task_may_not_wait_for_another_unless_allowed_and_publish_signals(capp):
    from pgqueue.celery.result import allow_join_result

    published: list[tuple[str, Any]] = []

    @capp.task
    def fetch(url):
        return f"<{url}>"

    @capp.task
    def waits(url):
        return fetch.delay(url).get(timeout=10)

    @capp.task
    def waits_anyway(url):
        with allow_join_result():
            return fetch.delay(url).get(timeout=10)

    def before(sender=None, headers=None, **kw):
        published.append(("before", sender))

    def after(sender=None, headers=None, **kw):
        published.append(("after", headers["id"]))

    celery_signals.before_task_publish.connect(before)
    celery_signals.after_task_publish.connect(after, sender=fetch.name)
    try:
        with worker(capp):
            with pytest.raises(RuntimeError, match=r"Never call result\.get"):
                waits.delay("a").get(timeout=10)
            assert waits_anyway.delay("b").get(timeout=10) == "<b>"
            r = fetch.delay("c")
            assert r.get(timeout=10) == "<c>"
    finally:
        celery_signals.before_task_publish.disconnect(before)
        celery_signals.after_task_publish.disconnect(after, sender=fetch.name)
    assert ("before", waits.name) in published and ("after", r.id) in published
    assert all(p[1] != waits.name for p in published if p[0] == "after")


def test_a_hard_time_limit_fails_the_task_as_in_celery(capp):
    from pgqueue.celery.exceptions import TimeLimitExceeded

    @capp.task(time_limit=0.5)
    def too_slow():
        for _ in range(30):
            time.sleep(0.1)

    with worker(capp):
        r = too_slow.delay()
        with pytest.raises(TimeLimitExceeded):
            r.get(timeout=10)
    assert r.state == "FAILURE" and r.retries == 0


def test_a_celery_task_that_misbehaves_ends_recorded_and_the_worker_serves_on(capp):
    """Whatever a Celery task does (SystemExit, KeyboardInterrupt, a value Postgres can't
    store, a handler that raises), its job ends FAILURE and the next job still runs."""

    class Fragile(Task):
        def on_failure(self, exc, task_id, args, kwargs, einfo):
            raise RuntimeError("a broken handler")

    @capp.task
    def leaves():
        raise SystemExit(3)

    @capp.task
    def interrupted():
        raise KeyboardInterrupt

    @capp.task
    def unstorable():
        return "nul \x00 inside"

    @capp.task(base=Fragile)
    def handled_badly():
        raise ValueError("first")

    @capp.task
    def fine(x):
        return x

    with worker(capp):
        bad = [leaves.delay(), interrupted.delay(), unstorable.delay(), handled_badly.delay()]
        for r in bad:
            until(r.ready, timeout=20)
        after = fine.delay(7)
        assert after.get(timeout=20) == 7
    assert [r.state for r in bad] == ["FAILURE"] * 4
    types = [r._info().error.type for r in bad]
    assert types[:2] == ["SystemExit", "KeyboardInterrupt"]
    assert types[2] == "UnstorableValue" and types[3] == "ValueError"
