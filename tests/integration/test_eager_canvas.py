"""Eager mode against the database: the same canvases, run by a real worker and then
inline, end alike: values, errors (type, message, the job that failed), each step's
state, and the link_error callbacks that ran."""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg

from pgqueue import App
from pgqueue.canvas import Canvas, chain, chord, group
from pgqueue.errors import TaskError
from pgqueue.group_result import GroupResult
from tests.conftest import count, running_worker


def cases(app: App) -> list[tuple[Canvas, tuple[Any, ...], dict[str, Any]]]:
    add, mul, div, tsum, on_error = (app.tasks[n] for n in ("add", "mul", "div", "tsum",
                                                            "on_error"))
    failing_chord = chord([div.s(1, 0) | mul.s(2), add.s(1, 1)], tsum.s())
    failing_chord.link_error(on_error.s(label="chord"))
    linked_group = group(add.s(1, 1), add.s(2, 2))
    linked_group.link(tsum.s())
    return [
        (add.s(2, 3) | mul.s(4), (), {}),
        (chain(add.s(1, 1), div.s(0), mul.s(3), mul.s(5)), (),
         {"link_error": on_error.s(label="chain")}),
        (chord([add.s(1, 1) | mul.s(10), add.s(2, 2) | mul.s(10)], tsum.s()) | mul.s(2), (), {}),
        (chord([add.s(1, 1), div.s(1, 0), add.s(2, 2)], tsum.s()) | mul.s(2), (), {}),
        (failing_chord, (), {}),
        (add.s(1, 2) | group(mul.s(2), mul.s(3)) | tsum.s(), (), {}),
        (add.s(1, 1) | group(mul.s(2), mul.s(5)), (), {}),
        (group(add.s(1, 1), div.s(1, 0) | mul.s(2)), (), {}),
        (add.s(1, 1) | add.si(5, 5), (), {}),
        (div.s(2), (6,), {"link": mul.s(10)}),
        (div.s(1, 0), (), {"link": mul.s(10), "link_error": on_error.s(label="x")}),
        (linked_group, (), {}),
        (chord([], tsum.s()), (), {}),
    ]


def _ids_out(text: str) -> str:
    return re.sub(r"(group|job) \d+", r"\1 N", text)


def outcome(app: App, handle: Any) -> Any:
    try:
        return ("ok", handle.get(timeout=20))
    except TaskError as e:
        return (type(e).__name__, e.type, _ids_out(e.message),
                app.AsyncResult(e.job_id).info().task)


def summary(app: App, handle: Any) -> dict[str, Any]:
    """How a result and everything linked to it ended, with no ids in it."""
    handle.get(timeout=20, propagate=False)  # until it has ended
    out: dict[str, Any] = {"outcome": outcome(app, handle)}
    if isinstance(handle, GroupResult):
        out["members"] = [summary(app, m) for m in handle.results]
    else:
        info = handle.info()
        out["job"] = (info.task, info.state, info.error.type if info.error else None)
    if handle.parent is not None:
        out["parent"] = summary(app, handle.parent)
    out["children"] = [summary(app, c) for c in handle.children]
    return out


def errbacks_ran(app: App, dsn: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("DELETE FROM public.errbacks RETURNING *").fetchall()
    return sorted((app.AsyncResult(job_id).info().task, type_, _ids_out(message), label)
                  for job_id, type_, message, label in rows)


def _settled(dsn: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while count(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE finished_at IS NULL"):
        assert time.monotonic() < deadline, "jobs left unfinished"
        time.sleep(0.05)


def test_eager_workflows_end_as_the_database_ends_them(app: App, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.errbacks (job_id bigint, type text, message text, "
                     "label text)")
    with running_worker(app, concurrency=4):
        handles = [c.apply_async(args, **options) for c, args, options in cases(app)]
        in_database = [summary(app, h) for h in handles]
        _settled(dsn)  # errbacks run after the job they are for
    errbacks_in_database = errbacks_ran(app, dsn)
    assert len(errbacks_in_database) == 3

    app.configure(eager=True)
    jobs = count(dsn, "SELECT count(*) FROM pgqueue.jobs")
    eager = [summary(app, c.apply_async(args, **options)) for c, args, options in cases(app)]
    assert count(dsn, "SELECT count(*) FROM pgqueue.jobs") == jobs  # nothing written
    for case, (db, inline) in enumerate(zip(in_database, eager, strict=True)):
        assert inline == db, f"case {case}"
    assert errbacks_ran(app, dsn) == errbacks_in_database
