"""CSRF protection for every request that can change state (every non-GET request).

Two independent checks, both always on, with or without authentication:

1. **Same origin.** A POST whose ``Origin`` (or, without one, ``Referer``) names
   another host, or that the browser labels ``Sec-Fetch-Site: cross-site``, is refused.
2. **Double submit.** Each browser gets a random token in an HttpOnly, SameSite=Strict
   cookie; pages carry the same token in forms (``csrf_token``) and in a
   ``<meta>`` tag for scripts (``X-CSRF-Token``). A POST must send both, equal
   (compared in constant time). Another site can make a browser send the cookie,
   but can't read it to put it in the form, nor set our header.

GET, HEAD and OPTIONS never change state here, so they are not checked; they only
hand out the token (a fresh cookie when the browser has none).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from pgqueue.dashboard.asgi import HTTPMiddleware, on_start
from pgqueue.dashboard.paths import route_path

COOKIE = "pgq_csrf"
HEADER = "x-csrf-token"
FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_BYTES = 64 * 1024  # our forms hold a few short fields; refuse to buffer more


def token(scope: Scope) -> str:
    """This request's token, to render into forms (set by the middleware)."""
    state = scope.get("state") or {}
    value: str = state.get("csrf_token", "")
    return value


def _well_formed(value: str | None) -> bool:
    return value is not None and 20 <= len(value) <= 100 and value.isascii()


def _cross_site(headers: Headers) -> str | None:
    """Why this request comes from another site, or None if it does not."""
    host = (headers.get("host") or "").lower()
    origin = headers.get("origin")
    if origin is not None:
        # "null" comes from sandboxed frames and some redirects: not provably ours.
        if origin == "null" or urlsplit(origin).netloc.lower() != host:
            return f"origin {origin} is not this dashboard ({host})"
        return None
    if headers.get("sec-fetch-site") == "cross-site":
        return "the browser reports a cross-site request"
    referer = headers.get("referer")
    if referer and urlsplit(referer).netloc.lower() != host:
        return "the referring page is on another site"
    return None


class CSRFMiddleware(HTTPMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = HTTPConnection(scope)
        cookie = conn.cookies.get(COOKIE)
        fresh = not _well_formed(cookie)
        value = secrets.token_urlsafe(32) if fresh else str(cookie)
        scope.setdefault("state", {})["csrf_token"] = value

        if scope["method"] not in SAFE_METHODS:
            refusal, receive = await self._check(conn, None if fresh else value, receive)
            if refusal is not None:
                await self._refuse(conn, refusal)(scope, receive, send)
                return

        if not fresh:
            await self.app(scope, receive, send)
            return
        # token_urlsafe's alphabet needs no quoting in a cookie.
        cookie_header = (f"{COOKIE}={value}; Path={scope.get('root_path', '') or '/'}; "
                         "HttpOnly; SameSite=Strict"
                         + ("; Secure" if scope.get("scheme") == "https" else ""))
        await self.app(scope, receive,
                       on_start(send, lambda headers: headers.append("set-cookie",
                                                                     cookie_header)))

    async def _check(self, conn: HTTPConnection, expected: str | None, receive: Receive
                     ) -> tuple[str | None, Receive]:
        """(why refused or None, the receive to hand on: the body replayed if we read it)."""
        why = _cross_site(conn.headers)
        if why is not None:
            return why, receive
        given = conn.headers.get(HEADER)
        content_type = conn.headers.get("content-type", "").split(";")[0].strip().lower()
        if given is None and content_type == "application/x-www-form-urlencoded":
            body, receive = await _buffer(receive)
            if body is None:
                return "form too large", receive
            given = dict(parse_qsl(body.decode("latin-1"))).get(FIELD)
        if expected is None:
            return "no CSRF cookie: load the page again, then retry", receive
        if given is None:
            return (f"missing CSRF token: send the {FIELD} form field or the X-CSRF-Token "
                    "header (GET /api/csrf gives one)"), receive
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return "CSRF token does not match: load the page again, then retry", receive
        return None, receive

    @staticmethod
    def _refuse(conn: HTTPConnection, why: str) -> Response:
        if route_path(conn.scope).startswith("/api/"):
            return JSONResponse({"error": f"forbidden: {why}"}, status_code=403)
        return PlainTextResponse(f"403 Forbidden: {why}", status_code=403)


async def _buffer(receive: Receive) -> tuple[bytes | None, Receive]:
    """Read the whole body (up to MAX_FORM_BYTES), and a receive that plays it back."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app will see the same
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
