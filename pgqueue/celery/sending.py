"""The one by-name send path of the Celery layer: ``Task.apply_async``, ``delay``,
``Celery.send_task`` and a plain signature's ``apply_async`` all come here.

Routing (``app.route``: ``task_routes`` and the default queue), then Celery's
options as pgqueue's (:mod:`pgqueue.celery.calling`), then one enqueue; with
``task_id=`` the id is stored in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pgqueue.canvas import Signature
from pgqueue.celery import calling, signals
from pgqueue.celery.result import AsyncResult, wrap
from pgqueue.options import EnqueueOptions

if TYPE_CHECKING:
    import psycopg

    from pgqueue.app import App
    from pgqueue.result import JobResult


def _enqueue(app: App, name: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None,
             native: dict[str, Any], link: Any, link_error: Any,
             connection: psycopg.Connection[Any] | None) -> JobResult:
    if link is not None or link_error is not None:
        result: JobResult = Signature(name, args, kwargs, native, app=app).apply_async(
            connection=connection, link=link, link_error=link_error)
        return result
    request = app._request_by_name(name, args, kwargs, EnqueueOptions.from_kwargs(native))
    return app.enqueue(request, connection=connection)


def send(app: App, name: str, args: Sequence[Any] | None = None,
         kwargs: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None,
         *, connection: psycopg.Connection[Any] | None = None) -> AsyncResult:
    """Enqueue task ``name`` with Celery's ``apply_async`` options; its AsyncResult."""
    if args is not None and (isinstance(args, (str, bytes)) or not isinstance(args, Sequence)):
        raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
    options = dict(options or {})
    args = tuple(args or ())
    kwargs = dict(kwargs or {})
    route = getattr(app, "route", None)
    if route is not None:
        options = dict(route(name, args, kwargs, options))
    task_id = options.pop("task_id", None)
    ignored = bool(options.get("ignore_result"))
    link, link_error = options.pop("link", None), options.pop("link_error", None)
    native = calling.enqueue_options(app, options, task_id)
    publishing = signals.before_task_publish.has_listeners() or \
        signals.after_task_publish.has_listeners()
    if publishing:
        _published(signals.before_task_publish, name, task_id, args, kwargs, native)
    if task_id is None or app.settings.eager:
        made = _enqueue(app, name, args, kwargs, native, link, link_error, connection)
    else:
        with calling._transaction(app, connection) as conn:
            made = _enqueue(app, name, args, kwargs, native, link, link_error, conn)
            calling.remember(app, task_id, made.id, conn)
    result: AsyncResult = wrap(app, made, task_id)
    result.ignored = ignored
    if publishing:
        _published(signals.after_task_publish, name, result.id, args, kwargs, native)
    return result


def _published(signal: signals.Signal, name: str, task_id: str | None,
               args: tuple[Any, ...], kwargs: dict[str, Any], native: dict[str, Any]) -> None:
    """Celery's publish signals, with its protocol-2 ``headers`` and ``body`` (the
    task id is only known after the enqueue unless the producer chose it)."""
    eta = native.get("eta")
    headers = {"lang": "py", "task": name, "id": task_id, "root_id": task_id,
               "parent_id": None, "group": None, "retries": 0,
               "eta": eta.isoformat() if eta is not None else None,
               "expires": None, **(native.get("headers") or {})}
    signal.send(sender=name, body=(args, kwargs, {"callbacks": None, "errbacks": None,
                                                  "chain": None, "chord": None}),
                exchange="", routing_key=native.get("queue"), headers=headers,
                properties={"correlation_id": task_id}, declare=[], retry_policy=None)
