"""Enqueue and task options: declared once, every bad value a typed error before SQL."""

from __future__ import annotations

import datetime as dt

import pytest

from pgqueue import App
from pgqueue.options import EnqueueOptions, TaskOptions


@pytest.mark.parametrize(("given", "error"), [
    ({"priority": 1.7}, TypeError),
    ({"priority": True}, TypeError),
    ({"priority": 40000}, ValueError),
    ({"queue": "no spaces"}, ValueError),
    ({"queue": 7}, TypeError),
    ({"countdown": "soon"}, TypeError),
    ({"countdown": float("nan")}, ValueError),
    ({"eta": dt.datetime(2030, 1, 1)}, ValueError),  # naive
    ({"eta": dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "countdown": 5}, ValueError),
    ({"headers": {"a": 1}}, TypeError),
    ({"qeue": "typo"}, TypeError),
])
def test_bad_enqueue_options_raise_typed_errors(given: dict[str, object],
                                                error: type[Exception]) -> None:
    with pytest.raises(error):
        EnqueueOptions.from_kwargs(given)


def test_an_unknown_option_names_the_known_ones() -> None:
    with pytest.raises(TypeError,
                       match=r"qeue.*known: concurrency_key, countdown, eta, expires, headers"):
        EnqueueOptions.from_kwargs({"qeue": "emails"})


def test_call_options_win_over_task_defaults_and_eta_replaces_countdown() -> None:
    defaults = EnqueueOptions(queue="emails", priority=5, countdown=60, max_attempts=3)
    eta = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    merged = EnqueueOptions(priority=9, eta=eta).over(defaults)
    assert (merged.queue, merged.priority, merged.eta, merged.countdown,
            merged.max_attempts) == ("emails", 9, eta, None, 3)


def test_task_options_gather_the_flat_retry_keywords() -> None:
    options = TaskOptions.from_kwargs({"queue": "q", "max_retries": 3, "retry_backoff": True})
    assert options.policy.max_retries == 3 and options.policy.retry_backoff is True
    with pytest.raises(TypeError, match="unknown task option rate_limitt"):
        TaskOptions.from_kwargs({"rate_limitt": "1/s"})
    with pytest.raises(ValueError, match="soft_time_limit"):
        TaskOptions(time_limit=1, soft_time_limit=2)


def test_apply_async_checks_before_anything_is_sent() -> None:
    app = App("postgresql://nobody@127.0.0.1:1/none")  # never reached: checks come first

    @app.task(queue="emails")
    def send(to: str) -> None: ...

    for bad in ({"priority": 1.7}, {"queue": "a b"}, {"eta": dt.datetime(2030, 1, 1)}):
        with pytest.raises((TypeError, ValueError)):
            send.apply_async(("a@b.c",), **bad)
    with pytest.raises(TypeError):
        app.send_task("send", ("x",), priority="high")
    app.close()
