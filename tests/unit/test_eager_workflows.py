"""Workflows in eager mode (pgqueue.eager_workflow): chains, groups, chords and callbacks
run inline, by the rules the database's trigger applies, with no database at all.

The app points at a port nothing listens on: any read of a table would fail.
(tests/integration/test_eager_canvas.py runs the same canvases on a real worker and
compares.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from pgqueue import App, JobContext, JobState, eager, encoding
from pgqueue.canvas import chain, chord, group
from pgqueue.eager import EagerResult
from pgqueue.eager_workflow import EagerGroupResult
from pgqueue.errors import ChordError, TaskError
from pgqueue.testing import assert_enqueued


@pytest.fixture
def app() -> Iterator[App]:
    application = App("postgresql://nobody@127.0.0.1:1/none", eager=True, pool_timeout=0.5)
    ran: list[tuple[str, list[Any]]] = []  # (task, args) of every run, in order
    application.ran = ran  # type: ignore[attr-defined]

    @application.task
    def add(x: int, y: int) -> int:
        ran.append(("add", [x, y]))
        return x + y

    @application.task
    def mul(x: int, y: int) -> int:
        ran.append(("mul", [x, y]))
        return x * y

    @application.task
    def div(x: float, y: float) -> float:
        ran.append(("div", [x, y]))
        return x / y

    @application.task
    def tsum(values: list[int]) -> int:
        ran.append(("tsum", [values]))
        return sum(values)

    @application.task
    def pair(a: Any, b: Any) -> list[Any]:
        return [a, b]

    @application.task
    def on_error(job_id: int, error: dict[str, str], label: str = "") -> list[Any]:
        ran.append(("on_error", [job_id, error]))
        return [job_id, error["type"], error["message"], label]

    @application.task(bind=True, max_retries=2)
    def flaky(self: JobContext, x: int) -> int:
        if self.attempt < 3:
            raise self.retry(exc=ConnectionError(f"attempt {self.attempt}"))
        return x + self.attempt

    @application.task
    async def async_double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    yield application
    assert application._dsn is None, "eager mode looked for a database"
    application.close()


def t(app: App, name: str) -> Any:
    return app.tasks[name]


def ran(app: App) -> list[str]:
    return [name for name, _ in app.ran]  # type: ignore[attr-defined]


def errbacks(app: App) -> list[EagerResult]:
    return [r for r in eager.results(app) if r.job.info.task == "on_error"]


# -- shapes ------------------------------------------------------------------------------
def test_chain_passes_each_result_on(app: App) -> None:
    add, mul = t(app, "add"), t(app, "mul")
    r = (add.s(2, 3) | mul.s(4)).delay()
    assert isinstance(r, EagerResult)
    assert r.get() == 20 and r.parent.get() == 5
    assert r.state is JobState.SUCCEEDED and r.parent.parent is None
    assert r.workflow_id is not None and r.parent.workflow_id == r.workflow_id
    assert r.parent.id < r.id  # ids in plan order, as the database gives them
    assert app.AsyncResult(r.id) is r
    r = chain(add.s(1, 1), mul.s(3), mul.s(5)).apply_async()
    assert r.get() == 30 and r.parent.parent.get() == 2
    assert_enqueued(mul, args=[2, 3])  # a step is recorded with the arguments it got


def test_group(app: App) -> None:
    add = t(app, "add")
    g = group(add.s(i, i) for i in range(10)).delay()
    assert isinstance(g, EagerGroupResult)
    assert g.get() == [2 * i for i in range(10)] == g.join()
    assert g.ready() and g.successful() and not g.failed() and not g.waiting()
    assert g.completed_count() == 10 and len(g) == 10
    assert [r.get() for r in g] == g.get()
    again = app.GroupResult(g.id)
    assert isinstance(again, EagerGroupResult) and again == g and again.get() == g.get()
    assert [r.id for r in again.results] == [r.id for r in g.results]
    assert g.cancel() == [None] * 10  # every member has ended
    empty = group().delay()
    assert empty.get() == [] and empty.ready() and empty.successful()


def test_chord(app: App) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = chord(group(add.s(i, i) for i in range(5)), tsum.s()).delay()
    assert c.get() == 20
    assert c.parent.get() == [0, 2, 4, 6, 8]  # the header's GroupResult
    assert chord([add.s(1, 1), add.s(2, 2)])(tsum.s()).get() == 6
    assert (group(add.s(1, 1), add.s(2, 2)) | tsum.s()).delay().get() == 6
    assert chord([], tsum.s()).delay().get() == 0  # an empty header: the callback gets []


def test_nested(app: App) -> None:
    add, mul, tsum = t(app, "add"), t(app, "mul"), t(app, "tsum")
    # a chord whose header holds chains, then a chain after the chord
    c = chord([add.s(1, 1) | mul.s(10), add.s(2, 2) | mul.s(10)], tsum.s()) | mul.s(2)
    assert c.delay().get() == 120
    # a group inside a chain: each member gets the previous result
    assert (add.s(1, 2) | group(mul.s(2), mul.s(3)) | tsum.s()).delay().get() == 15
    # a chain ending with a group gives a GroupResult
    g = (add.s(1, 1) | group(mul.s(2), mul.s(5))).delay()
    assert isinstance(g, EagerGroupResult) and g.get() == [4, 10]
    assert g.parent.get() == 2
    # a group of groups is one group
    assert group(group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)).delay().get() == [2, 4, 6]


def test_immutable_and_partial_arguments(app: App) -> None:
    add, div, pair = t(app, "add"), t(app, "div"), t(app, "pair")
    assert (add.s(1, 1) | add.si(5, 5)).delay().get() == 10
    assert div.s(2).delay(6).get() == 3  # partial arguments go first: div(6, 2)
    assert div.si(8, 2).delay(100).get() == 4  # ...unless immutable
    assert (div.s(2) | div.s(3)).delay(12).get() == 2  # div(div(12, 2), 3)
    assert (div.s(10, 2) | pair.s("b")).delay().get() == [5.0, "b"]
    assert group(div.s(2), div.s(4)).delay(8).get() == [4, 2]


def test_values_go_through_json_between_steps(app: App) -> None:
    pair = t(app, "pair")
    r = (pair.s((1, 2), {"k": (3,)}) | pair.s(None)).delay()
    assert r.get() == [[[1, 2], {"k": [3]}], None]  # tuples arrive as lists, as from a row


def test_retries_and_async_tasks_inside_a_workflow(app: App) -> None:
    add, flaky, double = t(app, "add"), t(app, "flaky"), t(app, "async_double")
    r = (add.s(1, 1) | flaky.s() | double.s()).delay()
    assert r.get() == 10 and r.parent.info().attempts == 3


def test_hooks_run_for_every_step(app: App) -> None:
    seen: list[str] = []
    app.hooks.before_task(lambda ctx: seen.append(ctx.task))
    (t(app, "add").s(1, 1) | group(t(app, "mul").s(2), t(app, "mul").s(3))).delay()
    assert seen == ["add", "mul", "mul"]


# -- failures ----------------------------------------------------------------------------
def test_a_failed_step_stops_the_chain(app: App) -> None:
    add, div, mul = t(app, "add"), t(app, "div"), t(app, "mul")
    r = chain(add.s(1, 1), div.s(0), mul.s(3), mul.s(5)).delay()
    with pytest.raises(TaskError) as caught:
        r.get()
    assert type(caught.value) is TaskError
    assert (caught.value.type, caught.value.message) == ("ZeroDivisionError", "division by zero")
    assert caught.value.job_id == r.parent.parent.id  # the div step
    assert "ZeroDivisionError" in caught.value.traceback
    assert r.state is JobState.CANCELLED and r.parent.state is JobState.CANCELLED
    assert r.parent.parent.state is JobState.FAILED
    assert ran(app) == ["add", "div"]  # nothing ran after the failure
    info = r.info()
    assert info.attempts == 0 and info.started_at is None
    assert info.error is not None and info.error.cause_job == r.parent.parent.id
    assert r.get(propagate=False) is None


def test_a_failed_member_cancels_the_chords_callback(app: App) -> None:
    add, div, tsum, mul = t(app, "add"), t(app, "div"), t(app, "tsum"), t(app, "mul")
    c = (chord([add.s(1, 1), div.s(1, 0), add.s(2, 2)], tsum.s()) | mul.s(2)).delay()
    header = c.parent.parent
    member = header.results[1]
    with pytest.raises(ChordError) as caught:
        c.parent.get()
    assert str(caught.value) == (
        f"ChordError: member 2 of group {header.id} (job {member.id}, div) failed: "
        "ZeroDivisionError: division by zero")
    assert caught.value.job_id == member.id
    with pytest.raises(ChordError):  # ...and the step after the callback carries it on
        c.get()
    assert "tsum" not in ran(app) and "mul" not in ran(app)
    assert c.parent.state is JobState.CANCELLED and c.state is JobState.CANCELLED
    assert header.ready() and header.failed() and not header.successful()
    assert header.completed_count() == 2
    with pytest.raises(TaskError, match="ZeroDivisionError") as member_error:
        header.get()
    assert type(member_error.value) is TaskError
    assert header.get(propagate=False) == [2, None, 4]


def test_a_member_cancelled_down_its_chain_names_the_job_that_failed(app: App) -> None:
    add, div, mul, tsum = t(app, "add"), t(app, "div"), t(app, "mul"), t(app, "tsum")
    c = chord([div.s(1, 0) | mul.s(2), add.s(1, 1)], tsum.s()).delay()
    header = c.parent
    cancelled = header.results[0]
    with pytest.raises(ChordError) as caught:
        c.get()
    assert str(caught.value) == (
        f"ChordError: member 1 of group {header.id} (job {cancelled.id}, mul) failed: "
        "ZeroDivisionError: division by zero")
    assert caught.value.job_id == cancelled.parent.id  # the div that failed first
    g = group(add.s(1, 1), div.s(1, 0) | mul.s(2)).delay()
    with pytest.raises(TaskError) as member_error:
        g.get()
    assert member_error.value.job_id == g.results[1].parent.id


# -- callbacks ---------------------------------------------------------------------------
def test_link(app: App) -> None:
    add, mul, tsum = t(app, "add"), t(app, "mul"), t(app, "tsum")
    r = add.apply_async((2, 2), link=mul.s(10))
    assert r.get() == 4 and r.children[0].get() == 40
    s = add.s(1, 1)
    s.link(mul.s(3))
    s.link(mul.s(4))
    r = s.delay()
    assert [c.get() for c in r.children] == [6, 8]
    g = group(add.s(1, 1), add.s(2, 2))
    g.link(tsum.s())
    assert g.delay().children[0].get() == 6  # a group's link gets the list of results


def test_link_error(app: App) -> None:
    div, mul, on_error = t(app, "div"), t(app, "mul"), t(app, "on_error")
    bad = div.apply_async((1, 0), link=mul.s(10), link_error=on_error.s("x"))
    assert bad.state is JobState.FAILED and bad.children[0].state is JobState.CANCELLED
    (errback,) = errbacks(app)
    assert errback.get() == [bad.id, "ZeroDivisionError", "division by zero", "x"]
    # The failed job's id and {type, message, traceback}, then the errback's own arguments.
    failed_id, error, label = encoding.loads(errback.job.request.args_json)
    assert (failed_id, label) == (bad.id, "x") and set(error) == {"type", "message", "traceback"}
    assert "ZeroDivisionError" in error["traceback"]
    assert errback.workflow_id == bad.workflow_id
    ok = div.apply_async((1, 1), link_error=on_error.s())
    assert ok.get() == 1 and len(errbacks(app)) == 1  # no failure, no errback


def test_link_error_on_a_chain_runs_for_the_step_that_failed_only(app: App) -> None:
    add, div, mul, on_error = (t(app, n) for n in ("add", "div", "mul", "on_error"))
    r = chain(add.s(1, 1), div.s(0), mul.s(3)).apply_async(link_error=on_error.s(label="c"))
    failed = r.parent
    assert [e.get() for e in errbacks(app)] == [
        [failed.id, "ZeroDivisionError", "division by zero", "c"]]


def test_link_error_on_a_chord_runs_when_its_header_failed(app: App) -> None:
    add, div, tsum, on_error = (t(app, n) for n in ("add", "div", "tsum", "on_error"))
    c = chord([add.s(1, 1), div.s(1, 0)], tsum.s())
    c.link_error(on_error.s(label="chord"))
    r = c.delay()
    header = r.parent
    assert [e.get() for e in errbacks(app)] == [[
        r.id, "ChordError",
        f"member 2 of group {header.id} (job {header.results[1].id}, div) failed: "
        "ZeroDivisionError: division by zero", "chord"]]


# -- other entry points ------------------------------------------------------------------
def test_enqueue_many_with_canvases(app: App) -> None:
    add, mul = t(app, "add"), t(app, "mul")
    chained, grouped, plain = app.enqueue_many(
        [add.s(1, 2) | mul.s(2), group(add.s(1, 1), add.s(2, 2)), add.s(5, 5)])
    assert (chained.get(), grouped.get(), plain.get()) == (6, [2, 4], 10)
    assert len({chained.workflow_id, grouped.workflow_id, plain.workflow_id}) == 3


def test_async_twins(app: App) -> None:
    add, mul, double = t(app, "add"), t(app, "mul"), t(app, "async_double")

    async def main() -> list[Any]:
        r = await (add.s(1, 1) | double.s() | mul.s(3)).apply_async_async()
        g = await group(add.s(1, 1), double.s(2)).apply_async_async()
        c = await chord([add.s(1, 1), add.s(2, 2)], t(app, "pair").s(1)).delay_async()
        many = await app.enqueue_many_async([add.s(1, 2) | double.s()])
        counts = [await g.ready_async(), await g.successful_async(), await g.failed_async(),
                  await g.completed_count_async()]
        return [await r.get_async(), await g.get_async(), await g.join_async(),
                await c.get_async(), await many[0].get_async(), counts,
                await app.GroupResult(g.id).get_async()]

    assert asyncio.run(main()) == [12, [2, 4], [2, 4], [[2, 4], 1], 6, [True, True, False, 2],
                                   [2, 4]]
