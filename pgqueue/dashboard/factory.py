"""``create_app``: the dashboard as a Starlette application, with its security layers.

Layers, outermost first: response headers that forbid framing and off-site
scripts; the path the router sees, one raw segment per segment
(:mod:`~pgqueue.dashboard.paths`); the Host check against DNS rebinding
(:mod:`~pgqueue.dashboard.hosts`); authentication (:mod:`~pgqueue.dashboard.auth`);
CSRF (:mod:`~pgqueue.dashboard.csrf`); then the routes
(:mod:`~pgqueue.dashboard.routes`).
Errors a user can act on (a bad filter, the database down) become 400 and 503
answers that say so, instead of a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import psycopg
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from pgqueue import redact
from pgqueue.app import App
from pgqueue.dashboard.asgi import HTTPMiddleware, on_start
from pgqueue.dashboard.auth import Auth, AuthMiddleware
from pgqueue.dashboard.csrf import CSRFMiddleware
from pgqueue.dashboard.hosts import AllowedHosts, HostCheck
from pgqueue.dashboard.params import BadRequest
from pgqueue.dashboard.paths import SegmentPaths, route_path
from pgqueue.dashboard.responses import error
from pgqueue.dashboard.routes import ROUTES
from pgqueue.dashboard.templating import make_templates
from pgqueue.errors import DatabaseUnavailable
from pgqueue.monitor import Monitor

# Scripts only from our own /static (no inline script, no eval); no framing, so no
# page of another site can overlay our buttons (clickjacking). Inline styles are
# allowed because uPlot positions its cursor and legend with them.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}

log = logging.getLogger("pgqueue.dashboard")


def _secure(headers: MutableHeaders) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)


class SecurityHeaders(HTTPMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, on_start(send, _secure))


def _bad_request(request: Request, exc: Exception) -> Response:
    if route_path(request.scope).startswith("/api/"):
        return error(str(exc), 400)
    return PlainTextResponse(f"400 Bad Request: {exc}", status_code=400)


def _database_down(request: Request, exc: Exception) -> Response:
    # Where the database is (let alone its DSN) is not the browser's business: the
    # reason goes to the dashboard's log, scrubbed of passwords.
    log.warning("database unavailable: %s", redact.scrub(str(exc)))
    message = "the database is unavailable (the dashboard's log says why)"
    if route_path(request.scope).startswith("/api/"):
        return error(message, 503)
    return PlainTextResponse(f"503 Service Unavailable: {message}", status_code=503,
                             headers={"Retry-After": "2"})


def create_app(app: App, *, token: str | None = None,
               basic_auth: tuple[str, str] | None = None, allowed_hosts: Iterable[str] = (),
               bound_host: str | None = None) -> Starlette:
    """The dashboard for ``app``'s database, as an ASGI application.

    With ``token`` and/or ``basic_auth`` every page and API call needs credentials
    (see :mod:`pgqueue.dashboard.auth`); without them, anyone who reaches it may
    act, so only serve it on loopback then (:func:`pgqueue.dashboard.server.serve` enforces
    that). CSRF protection is on either way.

    Requests must name a loopback host (``localhost:5555``, ``127.0.0.1``, ``[::1]``);
    with authentication also ``bound_host`` (the address listened on, unless it is
    0.0.0.0 or ::) or one of ``allowed_hosts`` (see :mod:`pgqueue.dashboard.hosts`).
    """
    auth = Auth(token=token, basic=basic_auth)
    patterns = list(allowed_hosts)
    if patterns and not auth.enabled:
        raise ValueError(
            "--allowed-host needs authentication (--token or --basic-auth): without it "
            "the dashboard answers only to loopback names, since any web page could "
            "otherwise drive it by DNS rebinding. Behind a proxy on this host, have the "
            "proxy send Host: localhost instead")
    allowed = AllowedHosts.build(patterns, bound=bound_host if auth.enabled else None)
    dashboard = Starlette(
        routes=ROUTES,
        middleware=[Middleware(SecurityHeaders), Middleware(SegmentPaths),
                    Middleware(HostCheck, allowed=allowed, authenticated=auth.enabled),
                    Middleware(AuthMiddleware, auth=auth), Middleware(CSRFMiddleware)],
        exception_handlers={
            BadRequest: _bad_request,
            DatabaseUnavailable: _database_down,
            psycopg.OperationalError: _database_down,
        },
    )
    dashboard.state.monitor = Monitor(app)
    dashboard.state.auth = auth
    dashboard.state.templates = make_templates()
    return dashboard
