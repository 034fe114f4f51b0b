"""Who may use the dashboard: a bearer token, a login cookie, or HTTP basic auth.

With neither a token nor basic-auth credentials configured, everyone who can reach
the port is let in, which is why :func:`pgqueue.dashboard.server.serve` binds only
loopback then. Secrets are compared with :func:`hmac.compare_digest`, so how long a
comparison takes says nothing about how much of a guess was right.

The login cookie is a random session id the server keeps
(:mod:`~pgqueue.dashboard.sessions`), so logging out ends it there and then. Every
failed attempt with credentials (bearer, basic, the login form) counts against its
client (:mod:`~pgqueue.dashboard.throttle`); past the limit the client gets 429.
A token shorter than :data:`MIN_TOKEN_LENGTH` is refused when the dashboard starts.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pgqueue.dashboard.paths import route_path
from pgqueue.dashboard.sessions import SESSION_SECONDS, Sessions
from pgqueue.dashboard.throttle import FailedLogins

SESSION_COOKIE = "pgq_session"
MIN_TOKEN_LENGTH = 16
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
__all__ = ["MIN_TOKEN_LENGTH", "SESSION_COOKIE", "SESSION_SECONDS", "Auth", "AuthMiddleware",
           "Verdict", "challenge", "client_address", "too_many"]


def _public(path: str) -> bool:
    """Reachable without credentials: the login form itself and the files it needs."""
    return path == "/login" or path.startswith("/static/")


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class Verdict(enum.Enum):
    IN = "in"  # valid credentials, or none needed
    NONE = "none"  # no credentials sent
    WRONG = "wrong"  # credentials sent, and not right: counts as a failed login


def client_address(conn: HTTPConnection) -> str | None:
    return conn.client.host if conn.client else None


@dataclass(frozen=True)
class Auth:
    """The configured credentials (both may be set, and either one then lets a request
    in), the live login sessions and the count of failed logins."""

    token: str | None = None
    basic: tuple[str, str] | None = None
    sessions: Sessions = field(default_factory=Sessions, compare=False, repr=False)
    failures: FailedLogins = field(default_factory=FailedLogins, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token.strip()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"the dashboard token is too short ({len(self.token.strip())} characters; "
                f"at least {MIN_TOKEN_LENGTH}): a short one can be guessed. Make one with: "
                f"{MAKE_TOKEN}")
        if self.basic is not None and not (self.basic[0] and self.basic[1]):
            raise ValueError("basic auth needs both a user name and a password (USER:PASS)")

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.basic is not None

    # -- checking a request ---------------------------------------------------
    def check(self, conn: HTTPConnection) -> Verdict:
        if not self.enabled:
            return Verdict.IN
        header = conn.headers.get("authorization")
        if header is not None:
            scheme, _, credentials = header.partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer" and self.token is not None:
                ok = _equal(credentials.strip(), self.token)
            elif scheme == "basic" and self.basic is not None:
                ok = self._basic_ok(credentials.strip())
            else:
                ok = False  # a scheme this dashboard doesn't take is a wrong guess too
            return Verdict.IN if ok else Verdict.WRONG
        cookie = conn.cookies.get(SESSION_COOKIE)
        if cookie is not None and self.token is not None and self.sessions.valid(cookie):
            return Verdict.IN
        return Verdict.NONE

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


def too_many(conn: HTTPConnection, wait: int) -> Response:
    """429 for a client past its failed logins, saying when it may try again."""
    message = (f"too many failed logins from your address: try again in {wait} s "
               "(check the token or credentials you are sending)")
    headers = {"Retry-After": str(wait)}
    if route_path(conn.scope).startswith("/api/") or route_path(conn.scope) == "/metrics":
        return JSONResponse({"error": message}, status_code=429, headers=headers)
    return PlainTextResponse(f"429 Too Many Requests: {message}", status_code=429,
                             headers=headers)


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
    every other one with :func:`challenge`, or 429 past the failed-login limit. It runs
    before the CSRF check, so an anonymous POST gets 401, not 403."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.auth.enabled:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        if _public(route_path(scope)):
            await self.app(scope, receive, send)
            return
        client = client_address(conn)
        if "authorization" in conn.headers:
            # Refused unread while the client is over its limit: answering "wrong" or
            # "right" would keep the guessing going.
            wait = self.auth.failures.wait_seconds(client)
            if wait:
                await too_many(conn, wait)(scope, receive, send)
                return
        verdict = self.auth.check(conn)
        if verdict is Verdict.IN:
            await self.app(scope, receive, send)
            return
        if verdict is Verdict.WRONG:
            self.auth.failures.failed(client)
        await challenge(self.auth, conn)(scope, receive, send)
