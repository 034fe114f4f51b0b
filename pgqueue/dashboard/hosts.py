"""Which ``Host`` a request may name: the defence against DNS rebinding.

A web page on ``evil.example`` can make its name resolve to 127.0.0.1 a moment
after loading; the browser then lets the page's scripts talk to whatever listens
there, as if it were the same site. Such requests still say ``Host: evil.example``,
so a dashboard that answers only to the names it is reached by can't be driven by
them. Without authentication that means loopback names only (``localhost``,
``*.localhost``, 127.0.0.0/8, ``[::1]``, with any port). With authentication the
allow-list is loopback, plus the address the dashboard was bound to when it is a
specific one, plus every ``--allowed-host``: a name (``dash.example.com``), a
domain with its subdomains (``.example.com``) or ``*`` for any.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pgqueue.dashboard.asgi import HTTPMiddleware
from pgqueue.dashboard.paths import route_path

WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})


def _address(text: str) -> str:
    """An IP address written the one way (``FD00:0::1`` is ``fd00::1``), or the text."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def hostname(host_header: str) -> str | None:
    """The name in a ``Host`` header, lower case, without port or brackets; None if the
    header can't be a host (empty, or junk around an IPv6 literal)."""
    value = host_header.strip().lower()
    if value.startswith("["):
        literal, sep, rest = value[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return _address(literal)
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    name = name.rstrip(".")  # "localhost." is the same name, fully qualified
    return _address(name) if name else None


def is_loopback_name(name: str) -> bool:
    """``localhost``, a name under ``.localhost`` (RFC 6761: never sent to DNS, so no one
    else can own it), or a loopback address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def check_pattern(pattern: str) -> str:
    """An ``--allowed-host`` value, normalised; ValueError saying what is expected."""
    value = pattern.strip().lower()
    if value == "*":
        return value
    domain = value.startswith(".")
    body = value[1:] if domain else value
    try:  # a bare address, IPv6 without brackets as --host takes it
        name: str | None = str(ipaddress.ip_address(body))
    except ValueError:
        name = hostname(body)
    if name is None or any(c in body for c in "/ @?#"):
        raise ValueError(f"--allowed-host {pattern!r} is not a host name: give a name "
                         "(dash.example.com), a domain and its subdomains (.example.com), "
                         "an address (10.0.0.5, [fd00::5]) or * for any")
    return "." + name if domain else name


@dataclass(frozen=True)
class AllowedHosts:
    """The names beyond loopback that requests may carry; loopback is always allowed."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def build(cls, patterns: Iterable[str], *, bound: str | None = None) -> AllowedHosts:
        checked = [check_pattern(p) for p in patterns]
        if bound is not None and bound.strip("[]") not in WILDCARD_BINDS:
            checked.append(check_pattern(bound))
        return cls(tuple(dict.fromkeys(checked)))

    def allows(self, name: str) -> bool:
        if is_loopback_name(name):
            return True
        for pattern in self.patterns:
            if pattern == "*" or pattern == name:
                return True
            if pattern.startswith(".") and (name == pattern[1:] or name.endswith(pattern)):
                return True
        return False


def _refusal(scope: Scope, host: str, authenticated: bool) -> Response:
    if authenticated:
        how = (f"start it with --allowed-host {host or 'NAME'} (repeatable; or "
               "PGQ_DASHBOARD_ALLOWED_HOSTS, comma-separated)")
    else:
        how = ("without authentication it answers only to loopback names (localhost, "
               "127.0.0.1, [::1]); to reach it by another name, give it a token "
               "(PGQ_DASHBOARD_TOKEN) and --allowed-host NAME, or have your proxy send "
               "Host: localhost")
    message = (f"this dashboard does not answer to Host {host!r}, a defence against DNS "
               f"rebinding: {how}")
    if route_path(scope).startswith("/api/"):
        return JSONResponse({"error": f"forbidden: {message}"}, status_code=403)
    return PlainTextResponse(f"403 Forbidden: {message}", status_code=403)


class HostCheck(HTTPMiddleware):
    """Answers 403, before anything else runs, to a request whose Host is not allowed."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts, authenticated: bool) -> None:
        super().__init__(app)
        self.allowed = allowed
        self.authenticated = authenticated

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = Headers(scope=scope).get("host", "")
        name = hostname(header)
        if name is not None and self.allowed.allows(name):
            await self.app(scope, receive, send)
            return
        await _refusal(scope, header, self.authenticated)(scope, receive, send)
