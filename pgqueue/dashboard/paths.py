"""Paths inside the dashboard, independent of where it is mounted (``root_path``).

Redirect targets that come from a request (``next=``) pass through :func:`local`
so a link can't send a user, after logging in or acting, to another site.

Names in paths (``/api/queues/<name>/pause``) travel as one segment each:
:func:`segment` percent-encodes everything but unreserved characters, ``/``
included, and the ``{name:segment}`` routes decode exactly that one segment.
Servers hand the application a path already decoded (``%2F`` made ``/``), which
would let a queue named ``a/../../schedules/nightly`` reach another route, so
:class:`SegmentPaths` rebuilds the path the router sees from the raw one, keeping a
``/`` that was inside a segment encoded.
"""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import quote, unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_SEGMENT = 1000  # characters of a name in a path, decoded: longer is no name of ours


def route_path(scope: Scope) -> str:
    """The request's path without the prefix the dashboard is mounted under."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path


def local(target: str | None, root: str, default: str = "/") -> str:
    """``target`` if it is a path on this dashboard, else ``root + default``.

    Rejects absolute URLs, scheme-relative ``//host`` and backslash tricks that
    some browsers read as ``//``.
    """
    if (not target or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 0x20 for c in target)):
        return root + default
    if root and not target.startswith(root + "/") and target != root:
        return root + target
    return target


def segment(name: object) -> str:
    """``name`` as one path segment: ``/`` becomes %2F, so it can't start another one.

    The URL standard reads a segment of ``.`` or ``..`` (encoded or not) as a step up;
    a name that is only dots can't travel in a path, and its button lands on a path
    with no route (404), never on another action.
    """
    return quote(str(name), safe="")


def _routing_segment(raw: str) -> str:
    # Decoded once, then only what would change the path's shape is put back encoded:
    # "/" (a separator) and "%" (so that the convertor's one decoding is exact), and
    # control characters such as NUL, which the convertor refuses (no name has one).
    text = unquote(raw, errors="replace")
    return re.sub(r"[%/\x00-\x1f\x7f]", lambda m: f"%{ord(m.group()):02X}", text)


def routing_path(raw_path: bytes) -> str:
    return "/".join(_routing_segment(s) for s in raw_path.decode("latin-1").split("/"))


class SegmentPaths:
    """Gives the router a path in which each raw segment stays one segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw:
            raw = bytes(raw).split(b"?", 1)[0]
            decoded = unquote(raw.decode("latin-1"), errors="replace")
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            # Rebuild only a path we recognise as the raw one decoded (with or without
            # the mount prefix in front): anything else is left as the server gave it,
            # and names with a "/" in them then simply find no route.
            if path == decoded:
                scope = {**scope, "path": routing_path(raw)}
            elif root and path == root + decoded:
                scope = {**scope, "path": root + routing_path(raw)}
        await self.app(scope, receive, send)


class SegmentConvertor(Convertor[str]):
    """One path segment as :class:`SegmentPaths` leaves it, decoded: any name."""

    regex: ClassVar[str] = r"(?:[^/%\x00-\x1f\x7f]|%25|%2F){1," + str(MAX_SEGMENT) + "}"

    def convert(self, value: str) -> str:
        return unquote(value)

    def to_string(self, value: str) -> str:
        return segment(value)


register_url_convertor("segment", SegmentConvertor())
