"""The database seam: the one interface every executor of statements implements.

A :class:`pgqueue.statements.Statement` is a query, its parameters and its
decoder; an executor runs it and returns the decoded value, nothing more. Four
implement this: the producer's sync :class:`~pgqueue.client.Client` (and the
Django integration's subclass, on Django's connection), the async
:class:`~pgqueue.client_async.AsyncClient`, and the worker's and scheduler's
:class:`~pgqueue.link.Link`. ``tests/integration/test_conformance.py`` runs
the same cases through the Client, the AsyncClient and the Link, so they can't
drift apart.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from pgqueue.statements import Statement

T = TypeVar("T")


class SyncExecutor(Protocol):
    def execute(self, stmt: Statement[T]) -> T: ...


class AsyncExecutor(Protocol):
    async def execute(self, stmt: Statement[T]) -> T: ...
