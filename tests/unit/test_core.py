"""The pure core: request validation, outcome decisions, and the two API faces."""

import datetime as dt
import inspect
import uuid

import pytest

from pgqueue import App, JobResult, JobState, Task
from pgqueue.canvas import Canvas
from pgqueue.group_result import GroupResult
from pgqueue.job import ClaimedJob, JobError
from pgqueue.outcome import Failed, Succeeded, decide
from pgqueue.statements import make_request


def test_request_encodes_at_once():
    r = make_request("t", (1, dt.date(2020, 1, 1)), {"k": "v"}, queue="q")
    assert r.args_json == '[1,{"$date":"2020-01-01"}]'
    with pytest.raises(TypeError):
        make_request("t", (object(),), queue="q")


@pytest.mark.parametrize("kwargs, error", [
    ({"eta": dt.datetime(2030, 1, 1)}, "timezone-aware"),
    ({"eta": dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "countdown": 3}, "either"),
    ({"priority": 40000}, "smallint"),
])
def test_request_rejects_bad_options(kwargs, error):
    with pytest.raises(ValueError, match=error):
        make_request("t", (), queue="q", **kwargs)


def test_args_must_be_a_sequence():
    with pytest.raises(TypeError, match="list or tuple"):
        make_request("t", "abc", queue="q")


JOB = ClaimedJob(1, "t", "q", 1, 1, uuid.uuid4(), "[]", "{}")


def test_decide_success_and_failure():
    ok = decide(JOB, Succeeded("5"))
    assert ok.state is JobState.SUCCEEDED and ok.value_json == "5" and ok.lease == JOB.lease
    err = JobError("ValueError", "bad", "Traceback...")
    failed = decide(JOB, Failed(err))
    assert failed.state is JobState.FAILED and failed.error == err


def _public(cls):
    return {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)}


@pytest.mark.parametrize("cls", [App, Task, JobResult, GroupResult, Canvas])
def test_every_blocking_call_has_an_async_twin(cls):
    names = _public(cls)
    exempt = {"task", "AsyncResult", "GroupResult", "results", "configure", "dsn", "close",
              "migrate", "ready", "successful", "failed", "info", "result", "state", "s", "si",
              "signature", "periodic", "add_periodic", "waiting", "revoke", "join", "link",
              "link_error", "walk", "children", "clone", "compile_with"}
    for name in names - exempt:
        if name.endswith("_async"):
            continue
        twin = name + "_async"
        assert twin in names, f"{cls.__name__}.{name} has no {twin}"
        sync_params = list(inspect.signature(getattr(cls, name)).parameters)
        async_params = list(inspect.signature(getattr(cls, twin)).parameters)
        assert sync_params == async_params, name
        assert inspect.iscoroutinefunction(getattr(cls, twin))


def test_task_registration_and_direct_call():
    app = App("postgresql://unused/db")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="mail.send", queue="emails", priority=3)
    def send(to: str) -> str:
        return to

    assert add(2, 3) == 5
    assert app.tasks["add"] is add and add.queue == "default"
    assert app.tasks["mail.send"].queue == "emails" and send.priority == 3
    with pytest.raises(ValueError, match="already registered"):
        @app.task(name="add")
        def other() -> None: ...
