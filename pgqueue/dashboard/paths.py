"""Paths inside the dashboard, independent of where it is mounted (``root_path``).

Redirect targets that come from a request (``next=``) pass through :func:`local`
so a link can't send a user, after logging in or acting, to another site.
"""

from __future__ import annotations

from starlette.types import Scope


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
