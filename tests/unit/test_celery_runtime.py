"""The Celery layer's pure parts: options, states, exceptions back, backoff, signals."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from pgqueue.celery import calling, states
from pgqueue.celery.exceptions import Retry, SoftTimeLimitExceeded, TaskRevokedError
from pgqueue.celery.reading import exception_of, state_of
from pgqueue.celery.signals import Signal
from pgqueue.celery.task import backoff
from pgqueue.errors import JobCancelled, TaskError
from pgqueue.errors import Retry as NativeRetry
from pgqueue.errors import SoftTimeLimitExceeded as NativeSoft
from pgqueue.job import JobError, JobInfo, JobState
from pgqueue.outcome import error_from
from pgqueue.progress import Progress


class Declined(Exception):
    pass


class NotAnException:
    def __init__(self, *args: object) -> None:
        raise AssertionError("must never be called")


class _App:
    """Just what enqueue_options and state_of read from an app."""

    def __init__(self) -> None:
        self.tasks: dict[str, object] = {}
        self.conf: dict[str, object] = {}

    def celery_priority(self, p: int) -> int:
        return p * 10


def _info(state: JobState, attempts: int = 1, error: JobError | None = None,
          progress: Progress | None = None) -> JobInfo:
    now = dt.datetime.now(dt.UTC)
    return JobInfo(1, "t", "celery", state, attempts, 4, 0, now, now, None, None, None, error,
                   progress)


def test_enqueue_options_are_celerys_mapped_to_pgqueues():
    naive = dt.datetime(2030, 1, 1, 12, 0)
    out = calling.enqueue_options(_App(), {
        "eta": naive, "expires": "2030-01-02T00:00:00", "priority": 3, "queue": "q",
        "routing_key": "ignored", "exchange": "ignored", "retry": True,
        "headers": {"a": "b", "n": 1}, "serializer": "json", "unique_key": "k"},
        task_id="abc")
    assert out["eta"] == naive.replace(tzinfo=dt.UTC)
    assert out["expires"] == dt.datetime(2030, 1, 2, tzinfo=dt.UTC)
    assert out["priority"] == 30 and out["queue"] == "q" and out["unique_key"] == "k"
    assert out["headers"] == {"a": "b", "n": "1", calling.TASK_ID_HEADER: "abc"}
    assert "routing_key" not in out and "exchange" not in out
    with pytest.raises(ValueError, match="JSON only"):
        calling.enqueue_options(_App(), {"serializer": "pickle"})
    with pytest.raises(TypeError):
        calling.enqueue_options(_App(), {}, task_id="")
    with pytest.raises(ValueError):  # pgqueue's own checks, before any SQL
        calling.enqueue_options(_App(), {"eta": naive, "countdown": 3})


def test_states_map_from_pgqueues():
    app = _App()
    err = JobError("OSError", "x", "tb")
    assert state_of(app, None) == states.PENDING
    assert state_of(app, _info(JobState.QUEUED, 0)) == states.PENDING
    assert state_of(app, _info(JobState.QUEUED, 1, err)) == states.RETRY
    assert state_of(app, _info(JobState.RUNNING)) == states.PENDING
    custom = Progress(0, None, {calling.CUSTOM_STATE: "PROGRESS", calling.CUSTOM_META: {}})
    assert state_of(app, _info(JobState.RUNNING, progress=custom)) == "PROGRESS"
    assert state_of(app, _info(JobState.SUCCEEDED)) == states.SUCCESS
    assert state_of(app, _info(JobState.FAILED, error=err)) == states.FAILURE
    assert state_of(app, _info(JobState.CANCELLED)) == states.REVOKED
    skipped = JobError("ValueError", "x", "tb", cause_job=9)
    assert state_of(app, _info(JobState.CANCELLED, 0, skipped)) == states.FAILURE
    conf_app = _App()
    conf_app.conf = {"task_track_started": True}
    assert state_of(conf_app, _info(JobState.RUNNING)) == states.STARTED
    assert {"SUCCESS", "FAILURE", "REVOKED"} == states.READY_STATES
    assert states.state(states.SUCCESS) > states.state(states.PENDING)


def test_exceptions_come_back_as_their_own_type_or_the_fallback():
    for raised in (ZeroDivisionError("division by zero"), KeyError("k"),
                   OSError(2, "No such file"), Declined("card", 42)):
        back = exception_of(error_from(raised), 7)
        assert type(back) is type(raised) and back.args == raised.args
    local = type("Local", (Exception,), {})
    fallback = exception_of(error_from(local("boom")), 7)
    assert isinstance(fallback, TaskError) and fallback.message == "boom"
    # What a row names is only ever an Exception subclass, built with its args.
    for module, name in (("tests.unit.test_celery_runtime", "NotAnException"),
                         ("os", "system"), ("builtins", "SystemExit"),
                         ("builtins", "KeyboardInterrupt"), ("no.such.module", "X")):
        got = exception_of(JobError(name, "m", "tb", module=module, args='["rm -rf /"]'), 7)
        assert isinstance(got, TaskError) and got.type == name
    # Args that JSON can't hold: built from the message, or the fallback.
    unjson = exception_of(error_from(ValueError(object())), 7)
    assert isinstance(unjson, ValueError)
    assert isinstance(exception_of(None, 7), TaskError)


def test_backoff_is_celerys():
    assert [backoff(1, n, 600, False) for n in range(5)] == [1, 2, 4, 8, 16]
    assert backoff(3, 10, 600, False) == 600
    rng = random.Random(1)
    assert all(0 <= backoff(2, 3, 600, True, rng) <= 16 for _ in range(100))


def test_signal_connect_filters_and_survives_a_failing_receiver():
    sig = Signal("s")
    got: list[tuple[str, object]] = []

    @sig.connect
    def everything(sender=None, **kw):
        got.append(("all", sender))

    @sig.connect(sender="wanted")
    def only(sender=None, **kw):
        got.append(("only", sender))

    def broken(**kw):
        raise RuntimeError("ignored")

    sig.connect(broken)
    sig.connect(broken)  # once only
    responses = sig.send(sender="other", x=1)
    sig.send(sender="wanted")
    assert got == [("all", "other"), ("all", "wanted"), ("only", "wanted")]
    assert len(responses) == 2 and isinstance(responses[1][1], RuntimeError)
    assert sig.disconnect(everything) and not sig.disconnect(everything)


def test_exception_classes_are_shared_with_pgqueue():
    assert SoftTimeLimitExceeded is NativeSoft
    assert issubclass(Retry, NativeRetry) and issubclass(TaskRevokedError, JobCancelled)
    r = Retry(exc=ValueError("x"), when=5)
    assert r.countdown == 5 and isinstance(r.exc, ValueError)
    later = Retry(when=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=60))
    assert r.countdown is not None and 50 < (later.countdown or 0) <= 60


def test_recording_an_exceptions_class_and_args_never_fails():
    class BadArgs(Exception):
        @property
        def args(self):  # type: ignore[override]
            raise RuntimeError("no args for you")

    err = error_from(BadArgs("x"))
    assert err.type.endswith("BadArgs") and err.args is None
    assert err.module == __name__
    assert error_from(ValueError(object())).args is None  # not JSON
    assert error_from(ValueError("x" * 100_000)).args is None  # too big to keep
    assert error_from(KeyError("k")).args == '["k"]' and error_from(KeyError()).args == "[]"


def test_a_timed_out_attempt_is_retried_only_if_the_policy_says_so():
    import uuid

    from pgqueue.job import ClaimedJob
    from pgqueue.outcome import TimedOut, decide
    from pgqueue.retry import RetryPolicy

    job = ClaimedJob(1, "t", "q", 1, 4, uuid.uuid4(), "[]", "{}")
    timed_out = TimedOut(JobError("TimeLimitExceeded", "hard", ""))
    assert decide(job, timed_out, RetryPolicy(max_retries=3)).state is JobState.QUEUED
    celery_like = RetryPolicy(max_retries=3, retry_timeouts=False)
    assert decide(job, timed_out, celery_like).state is JobState.FAILED
