"""``celery.Task`` for pgqueue: Celery's task class over pgqueue's native :class:`Task`.

``@app.task`` / ``@shared_task`` on a :class:`pgqueue.celery.Celery` app call
:func:`make_task`, which makes a subclass of ``base`` (this class by default)
whose class attributes are the decorator's options, as Celery does.

What each Celery attribute means here:

- ``max_retries`` (3), ``default_retry_delay`` (180 s): ``self.retry()`` and
  ``autoretry_for`` schedule the job again within them; ``None`` retries forever.
- ``autoretry_for``, ``dont_autoretry_for``, ``retry_kwargs``, ``retry_backoff``
  (True: a factor of 1; or a number), ``retry_backoff_max`` (600),
  ``retry_jitter`` (True): Celery's rules, applied in the worker around the
  task's function; the countdown each retry gets is Celery's
  ``factor * 2**retries`` capped at ``retry_backoff_max``, jittered over
  ``[0, countdown]``.
- ``time_limit``, ``soft_time_limit``: pgqueue's own (a soft limit raises
  ``SoftTimeLimitExceeded`` in the task). A job stopped at a limit fails, as in
  Celery (it is not retried unless ``autoretry_for`` names the exception).
- ``rate_limit`` (``"10/m"``): global, across every worker (Celery: per worker).
- ``ignore_result``: no result row is stored.
- ``acks_late``, ``reject_on_worker_lost``: accepted; pgqueue always behaves
  as ``acks_late=True``: a job whose worker dies runs again (lease expiry).
- ``serializer``: ``"json"`` only; anything else raises at declaration.
- ``track_started``: a running job reads ``STARTED`` (else ``PENDING``).
- ``typing``, ``send_events``, ``store_errors_even_if_ignored``, ``trail``,
  ``throws``: accepted, no effect.

In the worker, each attempt runs as :mod:`pgqueue.celery.attempt` says (request,
signals, handlers, ``autoretry_for``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pgqueue import eager, errors, progress, statements
from pgqueue.celery import attempt, calling, signals, states
from pgqueue.celery import request as requests
from pgqueue.celery.attempt import RETRY_FOREVER, backoff
from pgqueue.celery.canvas import Group, Signature
from pgqueue.celery.exceptions import MaxRetriesExceededError, Retry
from pgqueue.celery.request import ExceptionInfo, Request
from pgqueue.celery.result import AsyncResult, EagerResult
from pgqueue.celery.sending import send
from pgqueue.options import TaskOptions
from pgqueue.retry import RetryPolicy
from pgqueue.task import Task as NativeTask

if TYPE_CHECKING:
    import psycopg

    from pgqueue.app import App

log = logging.getLogger("pgqueue.celery")

CUSTOM_STATE, CUSTOM_META = calling.CUSTOM_STATE, calling.CUSTOM_META
# Task attributes a Celery app's settings give a default for (Celery's from_config).
_FROM_CONFIG = (("serializer", "task_serializer"), ("rate_limit", "task_default_rate_limit"),
                ("track_started", "task_track_started"), ("acks_late", "task_acks_late"),
                ("reject_on_worker_lost", "task_reject_on_worker_lost"),
                ("ignore_result", "task_ignore_result"), ("time_limit", "task_time_limit"),
                ("soft_time_limit", "task_soft_time_limit"))
_NATIVE_EXTRAS = ("concurrency_limit", "unique", "unique_for", "redact", "result_expires")


class Task(NativeTask[Any, Any]):
    """Celery's task base class. Subclass it for ``base=`` with your own handlers."""

    max_retries: int | None = 3
    default_retry_delay: float = 180
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: Mapping[str, Any] = {}
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    ignore_result: bool = False
    rate_limit: str | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    acks_late: bool = False
    reject_on_worker_lost: bool | None = None
    serializer: str = "json"
    track_started: bool = False
    typing: bool = True
    expires: Any = None
    abstract = True
    name: str
    # revoke(terminate=True) of a job in a thread: the thread gets JobCancelled raised
    # at its next Python instruction (a blocking call in C returns first), as near as
    # threads come to Celery terminating the process.
    interrupt_on_cancel = True
    OperationalError = errors.DatabaseUnavailable  # Celery's: the broker can't be reached

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The task's body: a class-based task defines it (a decorated function is it)."""
        raise NotImplementedError

    def __init__(self, app: App | None = None, fn: Callable[..., Any] | None = None,
                 options: Mapping[str, Any] | None = None, bind: bool = False) -> None:
        if app is None or fn is None:  # a class-based task: bound by bind_task(app, task)
            return
        options = options or {"name": f"{fn.__module__}.{fn.__name__}"}
        calling.check_serializer(self.serializer, f"task {options.get('name')!r}: serializer")
        # What the task itself declared, in Celery's terms (apply_async merges them).
        # (``queue``/``priority`` are class attributes only when declared.)
        self.celery_queue: str | None = getattr(self, "queue", None)
        self.celery_priority: int | None = getattr(self, "priority", None)
        self.celery_bind = bind
        default_queue = getattr(getattr(app, "conf", None), "get", lambda k, d: d)(
            "task_default_queue", "celery")
        mapper = getattr(app, "celery_priority", None)
        priority = mapper(self.celery_priority) if mapper and \
            self.celery_priority is not None else self.celery_priority
        max_retries = self.max_retries
        native = TaskOptions(
            name=options["name"], queue=self.celery_queue or default_queue or "celery",
            priority=priority or 0,
            # Retries are asked for by the function's wrapper (self.retry(), autoretry)
            # with Celery's countdowns; the policy holds the budget. A timed-out attempt
            # fails the job, as in Celery.
            policy=RetryPolicy(max_retries=max_retries, autoretry_for=(),
                               default_retry_delay=float(self.default_retry_delay),
                               retry_jitter=False, retry_timeouts=False),
            bind=True,  # the worker passes its context; the wrapper passes self or not
            time_limit=self.time_limit, soft_time_limit=self.soft_time_limit,
            ignore_result=bool(self.ignore_result), rate_limit=self.rate_limit,
            **{k: options[k] for k in _NATIVE_EXTRAS if options.get(k) is not None})
        super().__init__(app, fn, native)
        self.run = fn  # type: ignore[method-assign]
        self.fn = functools.partial(attempt.run_async if self.is_async else attempt.run_sync,
                                    self)
        self.from_config()

    def _explicit(self, attr: str) -> bool:
        """Whether the task (its decorator's options, or a base class) set ``attr``."""
        for klass in type(self).__mro__:
            if klass is Task:
                return False
            if attr in klass.__dict__:
                return True
        return False

    def from_config(self) -> None:
        """Take the app's ``task_*`` settings for what the task didn't set itself, as
        Celery binds a task to its app's config (``task_track_started``,
        ``task_time_limit``, ``task_ignore_result``...). Called when the task is made and
        again when the app is finalized (its configuration complete)."""
        conf = getattr(self.app, "conf", None)
        if conf is None:
            return
        for attr, key in _FROM_CONFIG:
            if not self._explicit(attr) and conf.get(key) is not None:
                setattr(self, attr, conf.get(key))
        calling.check_serializer(self.serializer, f"task {self.name!r}: serializer")
        native = dataclasses.replace(self.options, time_limit=self.time_limit,
                                     soft_time_limit=self.soft_time_limit,
                                     ignore_result=bool(self.ignore_result),
                                     rate_limit=self.rate_limit)
        self.options = native

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {getattr(self.app, 'main', None) or 'pgqueue'}>"

    # -- the request ----------------------------------------------------------------
    @property
    def request(self) -> Request:
        """The running attempt's request (``called_directly`` outside a worker)."""
        current = requests.current()
        if current is not None and current.task == self.name:
            return current
        return Request(task=self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here and now, as Celery does (``request.called_directly``)."""
        token = requests.push(Request(task=self.name, args=args, kwargs=kwargs,
                                      task_object=self))
        try:
            return self.run(self, *args, **kwargs) if self.celery_bind else \
                self.run(*args, **kwargs)
        finally:
            requests.pop(token)

    # -- what tasks call -------------------------------------------------------------
    def retry(self, args: Sequence[Any] | None = None, kwargs: Mapping[str, Any] | None = None,
              exc: BaseException | None = None, throw: bool = True, eta: Any = None,
              countdown: float | None = None, max_retries: int | None = None,
              **options: Any) -> Retry:
        """Run this job again later; raises :class:`Retry` (Celery's semantics: no
        ``raise`` needed). With its retries spent it raises ``exc`` if given, else
        :class:`MaxRetriesExceededError`. ``throw=False`` returns instead, and the
        retry happens when the task returns. ``args``/``kwargs`` other than the
        request's can't be changed for the retry here (TypeError)."""
        req = self.request
        if (args is not None and tuple(args) != tuple(req.args)) or (
                kwargs is not None and dict(kwargs) != dict(req.kwargs)):
            raise TypeError("retry(args=..., kwargs=...): pgqueue runs a retry with the "
                            "job's own arguments; enqueue a new job to change them")
        if req.called_directly:
            raise exc if exc is not None else Retry("task called directly: can't retry")
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and req.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{req.id}] args:{req.args} kwargs:{req.kwargs}",
                task_args=req.args, task_kwargs=req.kwargs)
        if eta is not None:
            when: Any = calling.utc(eta, "eta")
        else:
            when = self.default_retry_delay if countdown is None else countdown
        retry = Retry(exc=exc, when=when,
                      max_retries=RETRY_FOREVER if limit is None else limit)
        if throw:
            raise retry
        req.pending_retry = retry
        return retry

    def update_state(self, task_id: str | None = None, state: str | None = None,
                     meta: Any = None, **kwargs: Any) -> None:
        """Set a state (``"PROGRESS"``) and its meta that ``AsyncResult(id).state`` /
        ``.info`` read while the job runs. Stored as the job's progress, written at
        once (one lease-checked statement, as Celery writes to its backend) and by the
        worker's progress writer; the attempt's outcome then replaces it. Only the
        running task's own state can be set."""
        req = self.request
        if task_id is not None and task_id != req.id:
            raise NotImplementedError("update_state() sets the running task's own state "
                                      "only (pgqueue has no separate result backend)")
        if req.context is None:  # called directly: there is no job to report on
            return
        if not isinstance(state, str) or not state:
            raise ValueError(f"update_state() needs a state name, not {state!r}")
        done: float = 0
        total: float | None = None
        if isinstance(meta, Mapping):  # Celery's {"current": n, "total": m}, for monitoring
            cur, tot = meta.get("current", meta.get("done")), meta.get("total")
            if isinstance(cur, (int, float)) and not isinstance(cur, bool) and cur >= 0:
                done = cur
                if isinstance(tot, (int, float)) and not isinstance(tot, bool) and tot > 0:
                    total = tot
        ctx = req.context
        report = progress.check(done, total, {CUSTOM_STATE: state, CUSTOM_META: meta})
        written = False
        if ctx.lease is not None:
            # Written now, as Celery's backend write is: a state may last less than the
            # worker's half-second progress flush. Lease-checked; a row locked this
            # instant (or a write that fails) leaves it to the worker's writer.
            with contextlib.suppress(Exception):
                written = bool(self.app.client.execute(statements.update_progress(
                    self.app.settings.schema, {(ctx.job_id, ctx.lease): report}
                )).get(ctx.job_id))
        if not written and ctx.progress_sink is not None:
            ctx.progress_sink(*report)
        # Celery's "store the result, then raise Ignore": a SUCCESS set here is the value
        # the job ends with if the task then raises Ignore.
        req.stored_result = meta if state == states.SUCCESS else None

    # -- handlers (override in a base class) --------------------------------------------
    def before_start(self, task_id: str | None, args: Any, kwargs: Any) -> None:
        """The attempt is about to run (in the worker)."""

    def on_success(self, retval: Any, task_id: str | None, args: Any, kwargs: Any) -> None:
        """The task returned ``retval`` (in the worker)."""

    def on_failure(self, exc: BaseException, task_id: str | None, args: Any, kwargs: Any,
                   einfo: ExceptionInfo) -> None:
        """The task raised ``exc`` and will not run again."""

    def on_retry(self, exc: BaseException, task_id: str | None, args: Any, kwargs: Any,
                 einfo: ExceptionInfo) -> None:
        """The task will run again (``self.retry()``, ``autoretry_for``)."""

    def after_return(self, status: str, retval: Any, task_id: str | None, args: Any,
                     kwargs: Any, einfo: ExceptionInfo | None) -> None:
        """After each attempt: ``status`` is SUCCESS, FAILURE or RETRY."""

    # -- calling ---------------------------------------------------------------------
    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature (Celery's: its results are AsyncResults)."""
        return Signature(self.name, args, kwargs, task_object=self)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: in a chain it ignores the previous result."""
        return Signature(self.name, args, kwargs, immutable=True, task_object=self)

    def signature(self, args: Sequence[Any] | None = None,
                  kwargs: Mapping[str, Any] | None = None, *, immutable: bool = False,
                  **options: Any) -> Signature:
        """``task.signature((2, 2), countdown=10)``: with Celery's options."""
        return Signature(self.name, tuple(args or ()), kwargs, options, immutable=immutable,
                         task_object=self)

    subtask = signature

    # Celery's map/starmap/chunks: one job runs the function over many arguments.
    def map(self, it: Any, **options: Any) -> Signature:  # type: ignore[override]
        """A signature of one job that returns ``[task(x) for x in it]``."""
        return Signature(MAP, (self.name, list(it)), app=self.app, **options)

    def starmap(self, it: Any, **options: Any) -> Signature:
        """A signature of one job that returns ``[task(*args) for args in it]``."""
        return Signature(STARMAP, (self.name, [list(a) for a in it]), app=self.app,
                         **options)

    def chunks(self, it: Any, n: int) -> Group:
        """A group of jobs, each running ``n`` argument tuples (``starmap``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"chunks(): n must be a positive int, not {n!r}")
        items = [list(a) for a in it]
        return Group(*[self.starmap(items[i:i + n]) for i in range(0, len(items), n)])

    def replace(self, sig: Any) -> None:
        raise NotImplementedError("Task.replace(): pgqueue can't swap a running job for a "
                                  "signature; return sig.delay().id, or chain the work")

    def signature_of_run(self) -> inspect.Signature | None:
        """The function's signature, read once (None: it has none Python can read)."""
        if not hasattr(self, "_run_signature"):
            try:
                self._run_signature: inspect.Signature | None = inspect.signature(self.run)
            except (TypeError, ValueError):
                self._run_signature = None
        return self._run_signature

    def _check_arguments(self, args: Sequence[Any] | None,
                         kwargs: Mapping[str, Any] | None) -> None:
        """With ``typing`` (Celery's default), arguments that don't fit the function's
        signature raise TypeError at the call, not in the worker."""
        if not self.typing or isinstance(args, (str, bytes)) or (
                args is not None and not isinstance(args, Sequence)) or (
                kwargs is not None and not isinstance(kwargs, Mapping)):
            return  # left to the send path's own checks
        sig = self.signature_of_run()
        if sig is None:
            return
        bound = (None,) if self.celery_bind else ()
        try:
            sig.bind(*bound, *(args or ()), **(kwargs or {}))
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None

    def _call_defaults(self) -> dict[str, Any]:
        """The task's own options, under a call's (Celery's merge)."""
        own = {"queue": self.celery_queue, "priority": self.celery_priority,
               "expires": self.expires}
        return {k: v for k, v in own.items() if v is not None}

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:  # type: ignore[override]
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Sequence[Any] | None = None,  # type: ignore[override]
                    kwargs: Mapping[str, Any] | None = None, task_id: str | None = None,
                    producer: Any = None, link: Any = None, link_error: Any = None,
                    shadow: str | None = None, *,
                    connection: psycopg.Connection[Any] | None = None,
                    **options: Any) -> AsyncResult:
        """Celery's ``apply_async`` (options: :mod:`pgqueue.celery.calling`). With
        ``connection=`` the job (and its task id) joins that transaction."""
        self._check_arguments(args, kwargs)
        merged = {**self._call_defaults(), **options}
        if task_id is not None:
            merged["task_id"] = task_id
        if link is not None:
            merged["link"] = link
        if link_error is not None:
            merged["link_error"] = link_error
        return send(self.app, self.name, args, kwargs, merged, connection=connection)

    def apply(self, args: Sequence[Any] | None = None, kwargs: Mapping[str, Any] | None = None,
              link: Any = None, link_error: Any = None, task_id: str | None = None,
              retries: int | None = None, throw: bool | None = None,
              headers: Mapping[str, Any] | None = None, **options: Any) -> EagerResult:
        """Run the task here and now, as a worker would (retries at once), and return an
        :class:`EagerResult`. ``throw=True`` (or ``task_eager_propagates``) raises
        the task's exception instead."""
        if link is not None or link_error is not None:
            raise TypeError("apply() runs no link callbacks here; use "
                            "task_always_eager=True with apply_async() for those")
        self._check_arguments(args, kwargs)
        native = calling.enqueue_options(self.app, {"headers": headers}, task_id)
        request = self._request(tuple(args or ()), dict(kwargs or {}), native)
        ran = eager.run(self.app, [request])[0]
        assert isinstance(ran, eager.EagerResult)
        result = EagerResult(self.app, ran, task_id)
        conf = getattr(self.app, "conf", None)
        propagate = throw if throw is not None else bool(
            conf.get("task_eager_propagates", False) if conf is not None else False)
        if propagate:
            result.maybe_throw()
        return result

    def AsyncResult(self, task_id: Any, **kwargs: Any) -> AsyncResult:
        return AsyncResult(task_id, app=self.app, task_name=self.name)


def make_task(app: App, fn: Callable[..., Any], options: Mapping[str, Any]) -> Task:
    """What ``@app.task(**options)`` makes of ``fn`` (``options["name"]`` is its full
    name): an instance of a subclass of ``base`` with the options as class
    attributes, registered in ``app.tasks``."""
    options = dict(options)
    base = options.pop("base", None) or Task
    if not (isinstance(base, type) and issubclass(base, Task)):
        raise TypeError(f"base={base!r}: a task's base must be a subclass of "
                        "pgqueue.celery.Task")
    bind = bool(options.pop("bind", False))
    name = options.get("name") or f"{fn.__module__}.{fn.__name__}"
    options["name"] = name
    for key in ("autoretry_for", "dont_autoretry_for"):
        if key in options and options[key] is not None:
            options[key] = tuple(options[key])
    attrs = {k: v for k, v in options.items() if not k.startswith("__")}
    cls = type(fn.__name__, (base,), {"__module__": fn.__module__,
                                      "__qualname__": getattr(fn, "__qualname__", fn.__name__),
                                      "__doc__": fn.__doc__, "abstract": False, **attrs})
    made: type[Task] = cls
    task = object.__new__(made)
    Task.__init__(task, app, fn, options, bind)
    own_init = made.__dict__.get("__init__") or next(
        (k.__dict__["__init__"] for k in made.__mro__[1:]
         if k is not Task and "__init__" in k.__dict__ and issubclass(k, Task)), None)
    if own_init is not None:  # a base class's own __init__(self): Celery calls it so
        own_init(task)
    existing = app.tasks.get(name)
    if existing is not None and getattr(existing, "run", existing.fn) is not fn and (
            existing.__wrapped__.__module__, existing.__wrapped__.__qualname__
    ) != (fn.__module__, getattr(fn, "__qualname__", None)):
        raise ValueError(f"a task named {name!r} is already registered "
                         f"({existing.__wrapped__.__module__}."
                         f"{existing.__wrapped__.__qualname__}); give one of them another "
                         "name with @app.task(name=...)")
    app.tasks[name] = task
    signals.install(app)
    _install_builtins(app)
    return task


MAP, STARMAP = "celery.map", "celery.starmap"


class _CurrentTask:
    """``current_task``: the task running in this thread or coroutine (None-like outside
    one): ``current_task.request.id``, ``current_task.update_state(...)``."""

    def _get(self) -> Task | None:
        req = requests.current()
        return req.task_object if req is not None else None

    def __getattr__(self, attr: str) -> Any:
        task = self._get()
        if task is None:
            raise AttributeError(f"current_task.{attr}: no task is running here")
        return getattr(task, attr)

    def __bool__(self) -> bool:
        return self._get() is not None

    def __repr__(self) -> str:
        return f"<current_task: {self._get()!r}>"


current_task = _CurrentTask()


def _install_builtins(app: App) -> None:
    """The tasks Celery's ``task.map``/``starmap``/``chunks`` send (once per app, so a
    worker with any Celery task runs them)."""
    if getattr(app, "_celery_builtins", False):
        return
    app._celery_builtins = True  # type: ignore[attr-defined]

    def xmap(task: str, it: list[Any]) -> list[Any]:
        run = app.tasks[task]
        return [run(item) for item in it]

    def xstarmap(task: str, it: list[list[Any]]) -> list[Any]:
        run = app.tasks[task]
        return [run(*args) for args in it]

    make_task(app, xmap, {"name": MAP, "typing": False})
    make_task(app, xstarmap, {"name": STARMAP, "typing": False})


def bind_task(app: App, task: Task) -> Task:
    """A class-based task (``class Add(Task): def run(self, x, y): ...``; Celery's
    ``app.register_task(Add())``): made a task of ``app`` and registered."""
    cls = type(task)
    run = cls.__dict__.get("run") or getattr(cls, "run", None)
    if not callable(run) or run is Task.run:
        raise TypeError(f"{cls.__qualname__} needs a run(self, ...) method to be a task")
    name = getattr(cls, "name", None) or f"{cls.__module__}.{cls.__name__}"
    Task.__init__(task, app, run, {"name": name}, bind=True)
    app.tasks[name] = task
    signals.install(app)
    _install_builtins(app)
    return task


__all__ = ["Task", "backoff", "bind_task", "current_task", "make_task", "send"]
