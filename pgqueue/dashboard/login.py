"""The login form for token authentication, and logging out.

A browser can't send a bearer header by itself, so the token is typed once into a
form; a correct one earns a session cookie (:mod:`pgqueue.dashboard.sessions`;
HttpOnly, so page scripts can't read it; SameSite=Strict, so other sites'
requests don't carry it). The form is CSRF-checked like every POST, so another
site can't log a browser in under its own token either. Wrong tokens count against
the client (:mod:`pgqueue.dashboard.throttle`); logging out ends the session on the
server, not only in the browser.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pgqueue.dashboard import state
from pgqueue.dashboard.auth import SESSION_COOKIE, SESSION_SECONDS, Auth, client_address
from pgqueue.dashboard.paths import local
from pgqueue.dashboard.responses import form, with_notice


def _auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def _page(request: Request, next_page: str, error: str | None = None,
          status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return state.templates(request).TemplateResponse(
        request, "login.html", {"next_page": next_page, "error": error,
                                "token_login": _auth(request).token is not None},
        status_code=status, headers=headers)


async def login_form(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    return _page(request, local(request.query_params.get("next"), root))


async def login(request: Request) -> Response:
    auth = _auth(request)
    root = request.scope.get("root_path", "")
    fields = await form(request)
    next_page = local(fields.get("next"), root)
    if auth.token is None:
        return _page(request, next_page, "This dashboard uses basic authentication: your "
                                         "browser asks for the user name and password.", 400)
    client = client_address(request)
    wait = auth.failures.wait_seconds(client)
    if wait:  # not even looked at: see pgqueue.dashboard.throttle
        return _page(request, next_page, f"Too many wrong tokens from your address: try "
                                         f"again in {wait} s.", 429,
                     headers={"Retry-After": str(wait)})
    if not auth.token_ok(fields.get("token", "")):
        auth.failures.failed(client)
        return _page(request, next_page, "That token is not right.", 401)
    response = RedirectResponse(next_page, status_code=303)
    response.set_cookie(SESSION_COOKIE, auth.sessions.new(), max_age=SESSION_SECONDS,
                        path=root or "/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


async def logout(request: Request) -> Response:
    session = request.cookies.get(SESSION_COOKIE)
    if session is not None:
        _auth(request).sessions.end(session)  # the cookie is now worth nothing, anywhere
    root = request.scope.get("root_path", "")
    response = RedirectResponse(with_notice(f"{root}/login", "logged-out"), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=root or "/", httponly=True,
                           samesite="strict")
    return response
