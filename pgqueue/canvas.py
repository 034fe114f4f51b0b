"""Canvas: Celery's signatures, chains, groups and chords, as values.

``add.s(2, 3)`` is a :class:`Signature`: a task call not sent yet. ``|`` makes
a :class:`Chain`; :class:`Group` runs members side by side; :class:`Chord` is a
group and a callback that gets the members' results. Nothing here talks to the
database: ``apply_async`` hands the canvas to :mod:`pgqueue.workflow`, which
compiles it (:mod:`pgqueue.plan`) and writes it in one statement.

As in Celery, a signature's ``set()``, ``link()`` and ``link_error()`` change
it in place (and return it, or the callback, for chaining); ``clone()`` makes a
copy. Arguments given when applying a signature go before its own
(``add.s(2).delay(3)`` runs ``add(3, 2)``), unless it is immutable (``si()``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pgqueue import current
from pgqueue.options import NO_OPTIONS, EnqueueOptions
from pgqueue.plan import Call

if TYPE_CHECKING:
    import psycopg

    from pgqueue.app import App
    from pgqueue.plan import Compiler, Dep, Partial, Shape
    from pgqueue.statements import EnqueueRequest
    from pgqueue.task import Task


def _listed(value: Canvas | Sequence[Canvas] | None, what: str) -> list[Canvas]:
    if value is None:
        return []
    items = [value] if isinstance(value, Canvas) else list(value)
    for item in items:
        if not isinstance(item, Canvas):
            raise TypeError(f"{what} takes signatures (task.s(...)), not {item!r}")
    return items


def _call(args: Sequence[Any], kwargs: Mapping[str, Any] | None,
          link: Canvas | Sequence[Canvas] | None, link_error: Canvas | Sequence[Canvas] | None,
          options: Mapping[str, Any]) -> Call:
    """What apply_async was given, checked before anything is compiled or written."""
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
    return Call(tuple(args), dict(kwargs or {}), EnqueueOptions.from_kwargs(options),
                tuple(_listed(link, "link")), tuple(_listed(link_error, "link_error")))


class Canvas:
    """What every signature, chain, group and chord shares: callbacks, ``|``, applying."""

    kind = "task"

    def __init__(self) -> None:
        self.links: list[Canvas] = []
        self.errbacks: list[Canvas] = []
        self.app: App | None = None

    # -- callbacks ------------------------------------------------------------
    def link(self, callback: Canvas) -> Canvas:
        """Run ``callback`` (with this one's result first) once this succeeds."""
        self.links.extend(_listed(callback, "link"))
        return callback

    def link_error(self, errback: Canvas) -> Canvas:
        """Run ``errback`` (with the failed job's id and error first) if a job here fails."""
        self.errbacks.extend(_listed(errback, "link_error"))
        return errback

    def __or__(self, other: Canvas) -> Canvas:
        if not isinstance(other, Canvas):
            return NotImplemented
        if type(self) is Group and not isinstance(other, Group):
            return Chord(self, other)  # group | task: Celery makes that a chord
        return Chain(self, other)

    # -- applying -------------------------------------------------------------
    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Apply with these (partial) arguments and no options."""
        return self.apply_async(args, kwargs)

    async def delay_async(self, *args: Any, **kwargs: Any) -> Any:
        return await self.apply_async_async(args, kwargs)

    def apply_async(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    *, connection: psycopg.Connection[Any] | None = None,
                    link: Canvas | Sequence[Canvas] | None = None,
                    link_error: Canvas | Sequence[Canvas] | None = None,
                    **options: Any) -> Any:
        """Enqueue the whole canvas, in ``connection``'s transaction when given (all of it
        or none). ``options`` (those of :class:`EnqueueOptions`) apply to every job,
        except ``countdown``/``eta``, which delay the first ones. Returns the result
        handle: a ``JobResult`` (a chain's last, with ``.parent`` links) or a
        ``GroupResult``."""
        return self._app().apply_canvas(self, _call(args, kwargs, link, link_error, options),
                                        connection)

    async def apply_async_async(self, args: Sequence[Any] = (),
                                kwargs: Mapping[str, Any] | None = None, *,
                                connection: psycopg.AsyncConnection[Any] | None = None,
                                link: Canvas | Sequence[Canvas] | None = None,
                                link_error: Canvas | Sequence[Canvas] | None = None,
                                **options: Any) -> Any:
        return await self._app().apply_canvas_async(
            self, _call(args, kwargs, link, link_error, options), connection)

    def _app(self) -> App:
        for node in self.walk():
            if node.app is not None:
                return node.app
        return current.current()

    def walk(self) -> Iterator[Canvas]:
        """This node and every node inside it, callbacks included."""
        yield self
        for child in (*self.children(), *self.links, *self.errbacks):
            yield from child.walk()

    def children(self) -> Sequence[Canvas]:
        return ()

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Canvas:
        twin = copy.copy(self)
        twin.links, twin.errbacks = list(self.links), list(self.errbacks)
        return twin


class Signature(Canvas):
    """One task call, not sent yet: its task's name, arguments and options.

    ``sig.delay()``, ``sig.apply_async(**options)``, ``sig.set(queue=...)``,
    ``sig.clone()``, ``sig | other``, ``sig.link(...)``, ``sig.link_error(...)``.
    ``sig.args``, ``sig.kwargs``, ``sig.options`` and ``sig.immutable`` are
    plain attributes, as in Celery.
    """

    def __init__(self, task: str, args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None, *, immutable: bool = False,
                 app: App | None = None, task_object: Task[..., Any] | None = None) -> None:
        super().__init__()
        if not isinstance(task, str) or not task:
            raise TypeError(f"a signature needs a task name (a non-empty str), not {task!r}")
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options: dict[str, Any] = dict(options or {})
        self._checked = EnqueueOptions.from_kwargs(self.options)  # a bad option raises now
        self.immutable = immutable
        self.app = app if app is not None else (task_object.app if task_object else None)
        self._task = task_object
        self._request: EnqueueRequest | None = None
        if task_object is not None:  # encoded now: a bad argument raises at s()
            self._request = task_object._request(self.args, self.kwargs, self.options)

    @property
    def name(self) -> str:
        return self.task

    def compile_with(self, c: Compiler, after: Dep | None, wf: int, partial: Partial,
                     errbacks: tuple[Canvas, ...]) -> tuple[Shape, Dep]:
        return c.signature(self, after, wf, partial, errbacks)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}{'!' if self.immutable else ''}({', '.join(parts)})"

    def set(self, **options: Any) -> Signature:
        """Change this signature's options (in place, as in Celery) and return it."""
        immutable = options.pop("immutable", None)
        merged = {**self.options, **options}
        self._checked = EnqueueOptions.from_kwargs(merged)
        self.options = merged
        if immutable is not None:
            self.immutable = bool(immutable)
        self._request = None
        return self

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Signature:
        """A copy; ``args`` go before this one's own (unless immutable), ``kwargs`` and
        ``options`` over its own."""
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
        if self.immutable:
            args, kwargs = (), None
        twin = Signature(self.task, (*args, *self.args), {**self.kwargs, **(kwargs or {})},
                         {**self.options, **options}, immutable=self.immutable, app=self.app)
        twin._task = self._task
        if not args and not kwargs and not options:
            twin._request = self._request
        twin.links, twin.errbacks = list(self.links), list(self.errbacks)
        return twin

    def request(self, app: App, overrides: EnqueueOptions = NO_OPTIONS) -> EnqueueRequest:
        """The job this signature writes: ``overrides`` over its options over its task's
        defaults (the app's registered task, when it has one by this name)."""
        if self._request is not None and overrides is NO_OPTIONS and (
                self.app is None or self.app is app):
            return self._request
        return app._request_by_name(self.task, self.args, self.kwargs,
                                    overrides.over(self._checked))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here and now (no queue), with partial arguments first."""
        task = self._task or (self._app().tasks.get(self.task))
        if task is None:
            raise LookupError(f"task {self.task!r} is not registered in this process")
        if self.immutable:
            args, kwargs = (), {}
        return task(*args, *self.args, **{**self.kwargs, **kwargs})


def _canvases(tasks: tuple[Any, ...], what: str) -> list[Canvas]:
    """``chain(a, b)`` or ``chain([a, b])`` (any iterable, a generator too)."""
    if len(tasks) == 1 and not isinstance(tasks[0], Canvas):
        if isinstance(tasks[0], (str, bytes)) or not isinstance(tasks[0], Iterable):
            raise TypeError(f"{what} takes signatures (task.s(...)), not {tasks[0]!r}")
        tasks = tuple(tasks[0])
    for t in tasks:
        if not isinstance(t, Canvas):
            raise TypeError(f"{what} takes signatures (task.s(...)), not {t!r}")
    return list(tasks)


class Chain(Canvas):
    """``chain(a, b, c)`` or ``a | b | c``: each result is the next one's first argument."""

    kind = "chain"

    def __init__(self, *tasks: Canvas | Iterable[Canvas]) -> None:
        super().__init__()
        flat: list[Canvas] = []
        self.tasks: list[Canvas]
        for t in _canvases(tasks, "chain"):
            # A chain in a chain is one chain, unless it carries callbacks of its own.
            if type(t) is Chain and not t.links and not t.errbacks:
                flat.extend(t.tasks)
            else:
                flat.append(t)
        self.tasks = flat

    def children(self) -> Sequence[Canvas]:
        return self.tasks

    def compile_with(self, c: Compiler, after: Dep | None, wf: int, partial: Partial,
                     errbacks: tuple[Canvas, ...]) -> tuple[Shape, Dep]:
        return c.chain(self, after, wf, partial, errbacks)

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks)

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Chain:
        twin = Chain(*[t.clone() for t in self.tasks])
        twin.links, twin.errbacks, twin.app = list(self.links), list(self.errbacks), self.app
        return twin


class Group(Canvas):
    """``group(a, b, c)`` or ``group(sig for ...)``: members run side by side; the result,
    a ``GroupResult``, gives their results in member order."""

    kind = "group"

    def __init__(self, *tasks: Canvas | Iterable[Canvas]) -> None:
        super().__init__()
        self.tasks = _canvases(tasks, "group")

    def children(self) -> Sequence[Canvas]:
        return self.tasks

    def compile_with(self, c: Compiler, after: Dep | None, wf: int, partial: Partial,
                     errbacks: tuple[Canvas, ...]) -> tuple[Shape, Dep]:
        return c.group(self, after, wf, partial, errbacks)

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"

    def __len__(self) -> int:
        return len(self.tasks)

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Group:
        twin = Group(*[t.clone() for t in self.tasks])
        twin.links, twin.errbacks, twin.app = list(self.links), list(self.errbacks), self.app
        return twin


class Chord(Canvas):
    """``chord(header, callback)`` or ``chord(header)(callback)``: the callback runs once,
    after every member of the header succeeded, with their results in order."""

    kind = "chord"

    def __init__(self, header: Canvas | Iterable[Canvas], body: Canvas | None = None) -> None:
        super().__init__()
        self.header = header if type(header) is Group else Group(header)
        if body is not None and not isinstance(body, Canvas):
            raise TypeError(f"a chord's callback must be a signature, not {body!r}")
        self.body = body

    def children(self) -> Sequence[Canvas]:
        return (self.header, self.body) if self.body is not None else (self.header,)

    def compile_with(self, c: Compiler, after: Dep | None, wf: int, partial: Partial,
                     errbacks: tuple[Canvas, ...]) -> tuple[Shape, Dep]:
        return c.chord(self, after, wf, partial, errbacks)

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"

    def __call__(self, body: Canvas | None = None, **options: Any) -> Any:
        """``chord(header)(callback)``: apply, with this callback."""
        if body is not None:
            chord = Chord(self.header, body)
            chord.links, chord.errbacks, chord.app = self.links, self.errbacks, self.app
            return chord.apply_async(**options)
        return self.apply_async(**options)

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Chord:
        twin = Chord(self.header.clone(), self.body.clone() if self.body else None)
        twin.links, twin.errbacks, twin.app = list(self.links), list(self.errbacks), self.app
        return twin


def signature(task: str | Mapping[str, Any] | Signature, args: Sequence[Any] = (),
              kwargs: Mapping[str, Any] | None = None, *, app: App | None = None,
              immutable: bool = False, **options: Any) -> Signature:
    """A signature by task name, for producers without the task's code:
    ``signature("add", args=(2, 3), queue="math")``. Also takes a signature (a
    copy is returned) or Celery's dict form (``{"task": ..., "args": ..., "kwargs":
    ..., "options": ...}``). The app is ``app``, else the last App made here."""
    if isinstance(task, Signature):
        return task.clone()
    if isinstance(task, Mapping):
        d = dict(task)
        return Signature(d["task"], d.get("args") or (), d.get("kwargs") or None,
                         {**(d.get("options") or {}), **options},
                         immutable=bool(d.get("immutable", False)) or immutable, app=app)
    return Signature(task, args, kwargs, options, immutable=immutable, app=app)


# Celery's names: ``from pgqueue import chain, group, chord, signature``.
chain = Chain
group = Group
chord = Chord
