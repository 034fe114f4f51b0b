"""Who may use the dashboard: a bearer token, a login cookie, or HTTP basic auth.

With neither a token nor basic-auth credentials configured, everyone who can reach
the port is let in, which is why :func:`pgqueue.dashboard.server.serve` binds only
loopback then. Secrets are compared with :func:`hmac.compare_digest`, so how long a
comparison takes says nothing about how much of a guess was right.

The login cookie holds no secret: it is an expiry time signed with a key derived
from the token, so sessions survive a restart of the dashboard and end, all of
them, when the token is changed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pgqueue.dashboard.paths import route_path

SESSION_COOKIE = "pgq_session"
SESSION_SECONDS = 12 * 3600


def _public(path: str) -> bool:
    """Reachable without credentials: the login form itself and the files it needs."""
    return path == "/login" or path.startswith("/static/")


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Auth:
    """The configured credentials; both may be set, and either one then lets a request in."""

    token: str | None = None
    basic: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise ValueError("the dashboard token is empty; give a long random string "
                             "(for example: python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))')")
        if self.basic is not None and not (self.basic[0] and self.basic[1]):
            raise ValueError("basic auth needs both a user name and a password (USER:PASS)")

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.basic is not None

    # -- checking a request ---------------------------------------------------
    def allows(self, conn: HTTPConnection) -> bool:
        if not self.enabled:
            return True
        scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token is not None:
            return _equal(credentials.strip(), self.token)
        if scheme == "basic" and self.basic is not None:
            return self._basic_ok(credentials.strip())
        cookie = conn.cookies.get(SESSION_COOKIE)
        return cookie is not None and self.session_ok(cookie)

    def _basic_ok(self, credentials: str) -> bool:
        assert self.basic is not None
        try:
            user, sep, password = base64.b64decode(credentials, validate=True).decode(
                "utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared every time (no short-circuit): timing must not reveal a right user.
        user_ok = _equal(user, self.basic[0])
        password_ok = _equal(password, self.basic[1])
        return bool(sep) and user_ok and password_ok

    def token_ok(self, given: str) -> bool:
        return self.token is not None and _equal(given, self.token)

    # -- the login cookie -------------------------------------------------------
    def _session_key(self) -> bytes:
        assert self.token is not None
        return hashlib.sha256(b"pgqueue dashboard session\0" + self.token.encode()).digest()

    def _sign(self, payload: str) -> str:
        return hmac.new(self._session_key(), payload.encode(), hashlib.sha256).hexdigest()

    def new_session(self, now: float | None = None) -> str:
        payload = f"v1.{int((now or time.time()) + SESSION_SECONDS)}"
        return f"{payload}.{self._sign(payload)}"

    def session_ok(self, value: str, now: float | None = None) -> bool:
        if self.token is None:
            return False
        payload, _, signature = value.rpartition(".")
        version, _, expires = payload.partition(".")
        if version != "v1" or not expires.isdigit():
            return False
        return _equal(signature, self._sign(payload)) and int(expires) > (now or time.time())


def challenge(auth: Auth, conn: HTTPConnection) -> Response:
    """The answer to a request without valid credentials, shaped for who is asking."""
    path = route_path(conn.scope)
    root = conn.scope.get("root_path", "")
    login = f"{root}/login?next={quote(root + path + _query(conn), safe='/')}"
    if path.startswith("/api/") or path == "/metrics":
        schemes = (["Bearer"] if auth.token else []) + (
            ['Basic realm="pgqueue dashboard"'] if auth.basic else [])
        return JSONResponse({"error": "authentication required: send Authorization: Bearer "
                                      "<token> or basic auth"},
                            status_code=401, headers={"WWW-Authenticate": ", ".join(schemes)})
    if conn.headers.get("hx-request"):  # htmx follows HX-Redirect; a 303 it would swap in
        return PlainTextResponse("authentication required", status_code=401,
                                 headers={"HX-Redirect": login} if auth.token else {})
    if auth.token is not None:
        return RedirectResponse(login, status_code=303)
    return PlainTextResponse("authentication required", status_code=401,
                             headers={"WWW-Authenticate": 'Basic realm="pgqueue dashboard"'})


def _query(conn: HTTPConnection) -> str:
    query = conn.scope.get("query_string", b"").decode("latin-1")
    return f"?{query}" if query else ""


class AuthMiddleware:
    """Lets through requests with valid credentials (or to the public paths); answers
    every other one with :func:`challenge`. It runs before the CSRF check, so an
    anonymous POST gets 401, not 403."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.auth.enabled:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        if _public(route_path(scope)) or self.auth.allows(conn):
            await self.app(scope, receive, send)
            return
        await challenge(self.auth, conn)(scope, receive, send)
