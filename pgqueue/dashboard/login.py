"""The login form for token authentication, and logging out.

A browser can't send a bearer header by itself, so the token is typed once into a
form; a correct one earns the signed session cookie of :mod:`pgqueue.dashboard.auth`
(HttpOnly, so page scripts can't read it; SameSite=Strict, so other sites'
requests don't carry it). The form is CSRF-checked like every POST, so another
site can't log a browser in under its own token either.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pgqueue.dashboard import state
from pgqueue.dashboard.auth import SESSION_COOKIE, SESSION_SECONDS, Auth
from pgqueue.dashboard.paths import local
from pgqueue.dashboard.responses import form, with_notice

FAILED_LOGIN_DELAY = 0.5  # seconds: makes guessing a token by brute force slower still


def _auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def _page(request: Request, next_page: str, error: str | None = None,
          status: int = 200) -> Response:
    return state.templates(request).TemplateResponse(
        request, "login.html", {"next_page": next_page, "error": error,
                                "token_login": _auth(request).token is not None},
        status_code=status)


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
    if not auth.token_ok(fields.get("token", "")):
        await asyncio.sleep(FAILED_LOGIN_DELAY)
        return _page(request, next_page, "That token is not right.", 401)
    response = RedirectResponse(next_page, status_code=303)
    response.set_cookie(SESSION_COOKIE, auth.new_session(), max_age=SESSION_SECONDS,
                        path=root or "/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


async def logout(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    response = RedirectResponse(with_notice(f"{root}/login", "logged-out"), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=root or "/", httponly=True,
                           samesite="strict")
    return response
