"""``celery.signals``: the task and worker signals Celery projects connect to.

    @task_prerun.connect
    def started(sender=None, task_id=None, task=None, args=None, kwargs=None, **kw): ...

    @task_failure.connect(sender=send_email)     # only for this task
    def failed(sender=None, exception=None, **kw): ...

The task signals are sent in the thread (or child process) that runs the task,
by the compat :class:`pgqueue.celery.task.Task` around each attempt, with the
keyword arguments Celery sends: ``task_prerun`` (task_id, task, args, kwargs),
``task_postrun`` (... retval, state), ``task_success`` (result),
``task_failure`` (task_id, exception, args, kwargs, traceback, einfo),
``task_retry`` (request, reason, einfo). ``worker_ready`` and
``worker_shutdown`` come from the worker's start and stop hooks
(``app.hooks.worker_started`` / ``worker_stopping``), with the worker as sender.
A receiver that raises is logged and the others still run: observing a task
never fails it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgqueue.app import App

log = logging.getLogger("pgqueue.celery.signals")
Receiver = Callable[..., Any]
_ANY = object()


class Signal:
    """A named signal: ``connect`` receivers (optionally for one sender), ``send``."""

    def __init__(self, name: str, providing_args: object = None) -> None:
        self.name = name
        self._receivers: list[tuple[object, Receiver, object]] = []  # (uid, fn, sender)

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    def connect(self, receiver: Receiver | None = None, *, sender: object = None,
                weak: bool = False, dispatch_uid: object = None) -> Any:
        """``sig.connect(fn)``, ``@sig.connect`` or ``@sig.connect(sender=task)``.

        ``sender`` filters: a task object, or a task's name. ``dispatch_uid``
        connects a receiver once however often it is connected. Receivers are
        held strongly (``weak`` is accepted and ignored)."""
        def register(fn: Receiver) -> Receiver:
            uid = dispatch_uid if dispatch_uid is not None else (id(fn), id(sender))
            if not any(u == uid for u, _, _ in self._receivers):
                self._receivers.append((uid, fn, _ANY if sender is None else sender))
            return fn

        return register(receiver) if receiver is not None else register

    def disconnect(self, receiver: Receiver | None = None, *, sender: object = None,
                   dispatch_uid: object = None) -> bool:
        before = len(self._receivers)
        self._receivers = [
            (u, fn, s) for u, fn, s in self._receivers
            if not ((dispatch_uid is not None and u == dispatch_uid)
                    or (receiver is not None and fn is receiver
                        and (sender is None or s is sender or s == sender)))]
        return len(self._receivers) != before

    @property
    def receivers(self) -> list[Receiver]:
        return [fn for _, fn, _ in self._receivers]

    def has_listeners(self) -> bool:
        return bool(self._receivers)

    def send(self, sender: object = None, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver whose sender filter matches; [(receiver, response)]."""
        responses: list[tuple[Receiver, Any]] = []
        for _, fn, wanted in list(self._receivers):
            if not _matches(wanted, sender):
                continue
            try:
                responses.append((fn, fn(signal=self, sender=sender, **named)))
            except Exception as exc:
                log.exception("signal %s: receiver %s failed (ignored)", self.name,
                              getattr(fn, "__qualname__", fn))
                responses.append((fn, exc))
        return responses

    send_robust = send


def _matches(wanted: object, sender: object) -> bool:
    if wanted is _ANY or wanted is sender:
        return True
    if isinstance(wanted, str):
        return wanted == getattr(sender, "name", sender)
    try:
        return bool(wanted == sender)
    except Exception:
        return False


task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_failure = Signal("task_failure")
task_retry = Signal("task_retry")
task_revoked = Signal("task_revoked")
task_internal_error = Signal("task_internal_error")
before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
worker_shutting_down = Signal("worker_shutting_down")
setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger")
celeryd_init = Signal("celeryd_init")
beat_init = Signal("beat_init")
import_modules = Signal("import_modules")


def install(app: App) -> None:
    """Send ``worker_ready`` / ``worker_shutdown`` from this app's workers (once per app).

    Called by :func:`pgqueue.celery.task.make_task`, so any app with a Celery task
    has them."""
    if getattr(app, "_celery_signals", False):
        return
    app._celery_signals = True  # type: ignore[attr-defined]

    def ready(worker: object) -> None:
        worker_ready.send(sender=worker)

    def stopping(worker: object) -> None:
        worker_shutting_down.send(sender=getattr(worker, "name", None), sig="SIGTERM",
                                  how="Warm", exitcode=0)
        worker_shutdown.send(sender=worker)

    app.hooks.worker_started(ready)
    app.hooks.worker_stopping(stopping)
