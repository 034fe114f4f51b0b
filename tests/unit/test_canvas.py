"""Canvas values and their compiled plans: no database."""

from __future__ import annotations

import pytest

from pgqueue import App
from pgqueue.canvas import Chain, Chord, Group, Signature, chain, chord, group, signature
from pgqueue.options import EnqueueOptions
from pgqueue.plan import Call, GroupShape, JobShape, compile_canvas


@pytest.fixture
def app():
    a = App("postgresql://unused/db")

    @a.task(queue="math")
    def add(x, y):
        return x + y

    @a.task
    def mul(x, y):
        return x * y

    @a.task
    def tsum(values):
        return sum(values)

    @a.task
    def on_error(job_id, error):
        return None

    return a


def test_signatures(app):
    add = app.tasks["add"]
    s = add.s(2, 3)
    assert isinstance(s, Signature) and s.args == (2, 3) and not s.immutable
    assert repr(s) == "add(2, 3)" and repr(add.si(1)) == "add!(1)"
    assert s.set(queue="q", countdown=5) is s and s.options == {"queue": "q", "countdown": 5}
    assert s.request(app).options.queue == "q"
    with pytest.raises(TypeError, match="unknown enqueue option"):
        add.s(1, 2).set(queeu="x")
    with pytest.raises(TypeError, match="JSON"):
        add.s(object(), 1)
    assert add.s(2)(1) == 3  # called here and now, partial arguments first


def test_partial_arguments_go_first(app):
    add = app.tasks["add"]
    assert add.s(2).clone((3,)).args == (3, 2)
    assert add.si(2, 2).clone((3,)).args == (2, 2)
    assert add.s(2)(3) == 5


def test_or_builds_chains_and_chords(app):
    add, mul, tsum = app.tasks["add"], app.tasks["mul"], app.tasks["tsum"]
    c = add.s(1, 1) | mul.s(2) | mul.s(3)
    assert isinstance(c, Chain) and len(c.tasks) == 3
    assert isinstance(group(add.s(1, 1)) | tsum.s(), Chord)
    assert isinstance(chain([add.s(1, 1), mul.s(2)]), Chain)
    assert len(group(add.s(i, i) for i in range(5))) == 5
    with pytest.raises(TypeError, match="signatures"):
        group([1, 2])
    assert (chain, group, chord) == (Chain, Group, Chord)


def test_compiled_chain(app):
    add, mul = app.tasks["add"], app.tasks["mul"]
    plan, [shape] = compile_canvas(app, [(add.s(1, 1) | mul.s(2) | mul.s(3), Call())])
    assert plan.kinds == ["chain"] and plan.groups == []
    assert [s.after_job for s in plan.steps] == [None, 1, 2]
    assert [s.waiting for s in plan.steps] == [False, True, True]
    assert isinstance(shape, JobShape) and shape.step == 3
    assert shape.parent.step == 2 and shape.parent.parent.step == 1
    # the task's own queue, unless the call says
    assert plan.steps[0].request.options.queue == "math"
    plan, _ = compile_canvas(app, [(add.s(1, 1) | mul.s(2),
                                    Call(options=EnqueueOptions(queue="q", countdown=9)))])
    assert [s.request.options.queue for s in plan.steps] == ["q", "q"]
    assert [s.request.options.countdown for s in plan.steps] == [9, None]  # first jobs only


def test_compiled_chord_with_chains_in_its_header(app):
    add, mul, tsum = app.tasks["add"], app.tasks["mul"], app.tasks["tsum"]
    c = chord([add.s(1, 1) | mul.s(10), add.s(2, 2)], tsum.s())
    plan, [shape] = compile_canvas(app, [(c, Call())])
    assert plan.groups == [(1, 2)]
    members = [(s.member_of, s.member_index) for s in plan.steps]
    assert members == [(None, None), (1, 0), (1, 1), (None, None)]
    assert plan.steps[3].after_group == 1
    assert isinstance(shape, JobShape) and isinstance(shape.parent, GroupShape)


def test_groups_flatten_and_refuse_members_ending_with_a_group(app):
    add, mul = app.tasks["add"], app.tasks["mul"]
    plan, [shape] = compile_canvas(app, [(group(add.s(1, 1), group(add.s(2, 2), add.s(3, 3))),
                                          Call())])
    assert plan.groups == [(1, 3)] and isinstance(shape, GroupShape)
    with pytest.raises(ValueError, match="must end with one task"):
        compile_canvas(app, [(group(add.s(1, 1) | group(mul.s(2), mul.s(3))), Call())])
    with pytest.raises(ValueError, match="empty chain"):
        compile_canvas(app, [(chain(), Call())])
    with pytest.raises(ValueError, match="needs a callback"):
        compile_canvas(app, [(chord([add.s(1, 1)]), Call())])


def test_empty_group_before_a_callback_gives_it_an_empty_list(app):
    tsum = app.tasks["tsum"]
    plan, _ = compile_canvas(app, [(chord([], tsum.s()), Call())])
    assert plan.groups == [(1, 0)] and not plan.steps[0].waiting
    assert plan.steps[0].request.args_json == "[[]]"


def test_links_and_errbacks(app):
    add, mul, on_error = app.tasks["add"], app.tasks["mul"], app.tasks["on_error"]
    s = add.s(1, 1)
    s.link(mul.s(10))
    s.link_error(on_error.s())
    plan, [shape] = compile_canvas(app, [(s, Call())])
    assert plan.steps[1].after_job == 1 and shape.children[0].step == 2
    assert [e.task for e in plan.steps[0].errbacks] == ["on_error"]
    # link_error on a chain: on each of its jobs
    plan, _ = compile_canvas(app, [(add.s(1, 1) | mul.s(2), Call(errbacks=(on_error.s(),)))])
    assert all(len(st.errbacks) == 1 for st in plan.steps)
    with pytest.raises(TypeError, match="single tasks"):
        compile_canvas(app, [(add.s(1, 1), Call(errbacks=(add.s(1, 1) | mul.s(2),)))])


def test_signature_by_name_and_from_a_dict(app):
    s = signature("mul", args=(2,), queue="q", app=app)
    assert s.task == "mul" and s.options == {"queue": "q"} and s.app is app
    d = signature({"task": "add", "args": [1, 2], "kwargs": {}, "options": {"priority": 3}})
    assert d.args == (1, 2) and d.options == {"priority": 3}
    assert signature(d) is not d and signature(d).args == d.args
    with pytest.raises(TypeError, match="task name"):
        signature("")
