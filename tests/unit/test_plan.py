"""The pure compile of a canvas (pgqueue.plan): the shapes results are built from."""

from __future__ import annotations

from pgqueue import App
from pgqueue.canvas import chord
from pgqueue.plan import Call, GroupShape, JobShape, compile_canvas


def test_a_chain_keeps_the_parents_of_a_chord_inside_it() -> None:
    app = App("postgresql://unused/db")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def tsum(values: list[int]) -> int:
        return sum(values)

    plan, (shape,) = compile_canvas(app, [(chord([add.s(1, 1)], tsum.s()) | add.s(2), Call())])
    assert [s.request.task for s in plan.steps] == ["add", "tsum", "add"]
    assert isinstance(shape, JobShape) and shape.step == 3
    callback = shape.parent
    assert isinstance(callback, JobShape) and callback.step == 2
    assert isinstance(callback.parent, GroupShape) and callback.parent.parent is None
