"""``celery.canvas``: signatures, chains, groups and chords whose results are Celery's.

They are pgqueue's canvas classes (:mod:`pgqueue.canvas`: the same workflow
machinery, one statement per canvas), taking Celery's ``apply_async`` options
(:mod:`pgqueue.celery.calling`) and returning :class:`AsyncResult` /
:class:`GroupResult` from :mod:`pgqueue.celery.result`. ``|`` and
``chord(header)(body)`` keep making these classes, so a canvas built from
``task.s()`` stays Celery's all the way. A plain signature (no callbacks) is
sent like ``task.apply_async`` (``task_id=`` and routing included).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pgqueue import canvas as native
from pgqueue import current
from pgqueue.celery import calling
from pgqueue.celery.result import wrap
from pgqueue.celery.sending import send

if TYPE_CHECKING:
    import psycopg

    from pgqueue.app import App
    from pgqueue.task import Task


def _native_options(app: App | None, options: Mapping[str, Any]) -> dict[str, Any]:
    return calling.enqueue_options(app if app is not None else current.current(), options)


class _Celery(native.Canvas):
    """What the Celery canvas classes share: Celery's options in, Celery's results out."""

    def apply_async(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    *, connection: psycopg.Connection[Any] | None = None,
                    link: Any = None, link_error: Any = None, **options: Any) -> Any:
        app = self._app()
        task_id = options.pop("task_id", None)
        native_options = _native_options(app, options)
        if task_id is None or isinstance(self, native.Group):  # a group's members keep theirs
            made = super().apply_async(args or (), kwargs, connection=connection, link=link,
                                       link_error=link_error, **native_options)
            return wrap(app, made)
        # As in Celery, a chain's (or chord's) task id is its last task's: the one whose
        # result it is. Remembered in the enqueue's transaction.
        with calling._transaction(app, connection) as conn:
            made = super().apply_async(args or (), kwargs, connection=conn, link=link,
                                       link_error=link_error, **native_options)
            calling.remember(app, str(task_id), made.id, conn)
        return wrap(app, made, str(task_id))

    def on_error(self, errback: native.Canvas) -> Any:
        """Celery's ``sig.on_error(errback)``: a ``link_error``, and this canvas back."""
        self.link_error(errback)
        return self

    def __invert__(self) -> Any:
        """``~sig``: apply and wait for the result, as in Celery."""
        return self.apply_async().get()

    def __or__(self, other: native.Canvas) -> native.Canvas:
        if not isinstance(other, native.Canvas):
            return NotImplemented
        if isinstance(self, native.Group) and not isinstance(other, native.Group):
            return Chord(self, other)
        return Chain(self, other)

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Any:
        twin = super().clone(args, kwargs, **options)
        twin.__class__ = type(self)  # same layout: the native clone, as this class
        if isinstance(self, Signature):
            twin.celery_options = {**self.celery_options, **options}  # type: ignore[attr-defined]
        return twin


class Signature(_Celery, native.Signature):
    """``add.s(2, 2)``, ``add.si(...)``, ``add.signature(args, kwargs, **options)``,
    ``signature("proj.tasks.add", args=(2, 2))``."""

    def __init__(self, task: str, args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None, *, immutable: bool = False,
                 app: App | None = None, task_object: Task[..., Any] | None = None,
                 **more: Any) -> None:
        given = {**(options or {}), **more}
        self.celery_options = dict(given)
        owner = app if app is not None else (task_object.app if task_object else None)
        super().__init__(task, args, kwargs, _native_options(owner, given),
                         immutable=immutable, app=app, task_object=task_object)

    def set(self, **options: Any) -> Signature:
        immutable = options.pop("immutable", None)
        self.celery_options.update(options)
        native.Signature.set(self, **_native_options(self.app, options))
        if immutable is not None:
            self.immutable = bool(immutable)
        return self

    def apply_async(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    *, connection: psycopg.Connection[Any] | None = None,
                    link: Any = None, link_error: Any = None, **options: Any) -> Any:
        if self.links or self.errbacks or link is not None or link_error is not None:
            return _Celery.apply_async(self, args, kwargs, connection=connection, link=link,
                                       link_error=link_error, **options)
        if self.immutable:
            args, kwargs = (), None
        return send(self._app(), self.task, (*(args or ()), *self.args),
                    {**self.kwargs, **(kwargs or {})}, {**self.celery_options, **options},
                    connection=connection)

    def apply(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Any:
        """Run here and now (``task.apply``): an EagerResult."""
        task = self._task or self._app().tasks.get(self.task)
        if task is None or not hasattr(task, "apply"):
            raise LookupError(f"task {self.task!r} is not a Celery task registered here")
        if self.immutable:
            args, kwargs = (), None
        return task.apply((*(args or ()), *self.args), {**self.kwargs, **(kwargs or {})},
                          **{**self.celery_options, **options})


class Chain(_Celery, native.Chain):
    """``chain(a, b, c)`` / ``a | b | c``; ``chain(...)()`` applies it. A group of one
    task in a chain is that task, as Celery unrolls it."""

    def __init__(self, *tasks: Any) -> None:
        super().__init__(*tasks)
        self.tasks = [t.tasks[0] if isinstance(t, native.Group) and len(t.tasks) == 1
                      and not t.links and not t.errbacks else t for t in self.tasks]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)


class Group(_Celery, native.Group):
    """``group(a, b)`` / ``group(sig for ...)``: the result is a GroupResult;
    ``group(...)()`` applies it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def group(self) -> Group:
        """This group (``task.chunks(...).group()`` in Celery)."""
        return self

    def skew(self, start: float = 1.0, stop: float | None = None,
             step: float = 1.0) -> Group:
        """Spread the members' starts: countdowns start, start+step... up to ``stop``
        (then ``stop`` again), as Celery's ``group.skew``."""
        countdown = float(start)
        for member in self.tasks:
            if isinstance(member, Signature):
                member.set(countdown=countdown)
            if stop is None or countdown + step <= stop:
                countdown += step
        return self


class Chord(_Celery, native.Chord):
    """``chord(header, body)`` / ``chord(header)(body)``."""

    def __init__(self, header: native.Canvas | Iterable[native.Canvas],
                 body: native.Canvas | None = None, **options: Any) -> None:
        members = list(header.tasks) if isinstance(header, native.Group) else header
        super().__init__(members, body)
        self.header.__class__ = Group

    def __call__(self, body: native.Canvas | None = None, **options: Any) -> Any:
        if body is not None:
            made = Chord(self.header, body)
            made.links, made.errbacks, made.app = self.links, self.errbacks, self.app
            return made.apply_async(**options)
        return self.apply_async(**options)


def signature(varies: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
              *, app: App | None = None, immutable: bool = False, **options: Any) -> Any:
    """``signature("proj.tasks.add", args=(2, 2), countdown=10)``, or a signature (copied)
    or Celery's dict form."""
    if isinstance(varies, native.Canvas):
        return varies.clone()
    if isinstance(varies, Mapping):
        d = dict(varies)
        return Signature(d["task"], d.get("args") or (), d.get("kwargs") or None,
                         {**(d.get("options") or {}), **options},
                         immutable=bool(d.get("immutable", False)) or immutable, app=app)
    return Signature(varies, args, kwargs, options, immutable=immutable, app=app)


chain = Chain
group = Group
chord = Chord
subtask = signature
