"""Who may look and who may act: loopback-only without auth, token and basic auth, CSRF."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from pgqueue.cli_context import Ctx
from pgqueue.dashboard import create_app, serve
from pgqueue.dashboard.auth import SESSION_SECONDS, Auth
from pgqueue.dashboard.command import dashboard
from pgqueue.dashboard.server import InsecureBind, check_bind
from tests.dashboard.conftest import csrf_token

TOKEN = "s3cret-token-for-tests-only"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def secured(world) -> Iterator[TestClient]:
    with TestClient(create_app(world.app, token=TOKEN), base_url="http://localhost") as c:
        yield c


@pytest.fixture(scope="module")
def basic(world) -> Iterator[TestClient]:
    with TestClient(create_app(world.app, basic_auth=("ops", "pa:ss")),
                    base_url="http://localhost") as c:
        yield c


# -- binding ---------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "dashboard.example.com"])
def test_non_loopback_without_auth_is_refused(host):
    with pytest.raises(InsecureBind, match="without authentication"):
        check_bind(host, token=None, basic_auth=None)
    check_bind(host, token=TOKEN, basic_auth=None)
    check_bind(host, token=None, basic_auth=("u", "p"))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_auth(host):
    check_bind(host, token=None, basic_auth=None)


def test_serve_refuses_before_listening(world):
    with pytest.raises(InsecureBind, match="--token"):
        serve(world.app, host="0.0.0.0", port=1)


def test_command_refuses_with_a_clear_error(world):
    result = CliRunner().invoke(dashboard, ["--app", "tasks_app:app", "--host", "0.0.0.0"],
                                obj=Ctx(world.dsn, None))
    assert result.exit_code == 1
    assert "refusing to serve the dashboard on 0.0.0.0 without authentication" in result.output
    bad = CliRunner().invoke(dashboard, ["--app", "x:y", "--basic-auth", "nopassword"],
                             obj=Ctx(world.dsn, None))
    assert bad.exit_code == 2 and "USER:PASS" in bad.output


def test_empty_credentials_are_rejected():
    with pytest.raises(ValueError, match="token is too short"):
        Auth(token="  ")
    with pytest.raises(ValueError, match="user name and a password"):
        Auth(basic=("ops", ""))


# -- token -------------------------------------------------------------------------
def test_without_token_pages_redirect_to_login_and_api_is_401(secured):
    page = secured.get("/jobs?state=failed", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/jobs%3Fstate%3Dfailed"
    api = secured.get("/api/workers")
    assert api.status_code == 401 and api.headers["www-authenticate"] == "Bearer"
    fragment = secured.get("/fragments/workers", headers={"HX-Request": "true"})
    assert fragment.status_code == 401 and fragment.headers["hx-redirect"].startswith("/login")
    assert secured.get("/metrics").status_code == 401
    assert secured.get("/api/workers", headers={"Authorization": "Bearer wrong"}
                       ).status_code == 401
    # The login page and its assets stay reachable.
    assert secured.get("/login").status_code == 200
    assert secured.get("/static/dashboard.css").status_code == 200


def test_with_token_everything_is_reachable(secured, world):
    for url in ("/", "/jobs", f"/jobs/{world.ids['failed']}", "/schedules", "/api/overview",
                "/api/jobs", "/fragments/queues"):
        assert secured.get(url, headers=BEARER).status_code == 200, url


def test_post_needs_auth_then_csrf(secured, world):
    url = f"/api/jobs/{world.ids['succeeded']}/retry"  # 409 if it got through: changes nothing
    assert secured.post(url).status_code == 401  # anonymous: 401 before any CSRF talk
    no_csrf = secured.post(url, headers=BEARER)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]
    token = secured.get("/api/csrf", headers=BEARER).json()["csrf_token"]
    wrong = secured.post(url, headers={**BEARER, "X-CSRF-Token": token[::-1]})
    assert wrong.status_code == 403
    ok = secured.post(url, headers={**BEARER, "X-CSRF-Token": token})
    assert ok.status_code == 409  # through both checks; a succeeded job can't be retried


def test_login_form_sets_a_session_cookie(world):
    with TestClient(create_app(world.app, token=TOKEN), base_url="http://localhost") as browser:
        login = browser.get("/login?next=/schedules").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)[1]
        assert 'name="next" value="/schedules"' in login
        bad = browser.post("/login", data={"csrf_token": csrf, "token": "guess",
                                           "next": "/schedules"})
        assert bad.status_code == 401 and "not right" in bad.text
        assert browser.post("/login", data={"token": TOKEN}).status_code == 403  # no CSRF
        good = browser.post("/login", data={"csrf_token": csrf, "token": TOKEN,
                                            "next": "/schedules"}, follow_redirects=False)
        assert good.status_code == 303 and good.headers["location"] == "/schedules"
        cookie = good.headers["set-cookie"]
        assert "pgq_session=" in cookie and "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower() and TOKEN not in cookie
        assert browser.get("/schedules").status_code == 200
        # The session cookie authenticates; forms still need the CSRF token.
        assert browser.post("/api/queues/x/pause").status_code == 403
        out = browser.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert out.status_code == 303 and 'pgq_session=""' in out.headers["set-cookie"]
        assert out.headers["location"] == "/login?notice=logged-out"
        assert browser.get("/schedules", follow_redirects=False).status_code == 303


def test_sessions_expire_and_end():
    auth = Auth(token=TOKEN)
    session = auth.sessions.new(now=1000.0)
    assert auth.sessions.valid(session, now=1000.0 + SESSION_SECONDS - 1)
    assert not auth.sessions.valid(session, now=1000.0 + SESSION_SECONDS + 1)
    other = auth.sessions.new(now=1000.0)
    assert not auth.sessions.valid(other + "x", now=1000.0)
    assert not Auth(token=TOKEN).sessions.valid(other, now=1000.0)  # another dashboard's
    auth.sessions.end(other)
    assert not auth.sessions.valid(other, now=1000.0)


def test_login_cannot_redirect_off_site(secured):
    page = secured.get("/login?next=//evil.example/x").text
    assert 'name="next" value="/"' in page


# -- basic auth ---------------------------------------------------------------------
def test_basic_auth(basic):
    challenge = basic.get("/")
    assert challenge.status_code == 401
    assert challenge.headers["www-authenticate"] == 'Basic realm="pgqueue dashboard"'
    assert basic.get("/", headers=_basic("ops", "pa:ss")).status_code == 200
    assert basic.get("/api/queues", headers=_basic("ops", "wrong")).status_code == 401
    assert basic.get("/api/queues", headers=_basic("root", "pa:ss")).status_code == 401
    assert basic.get("/api/queues", headers={"Authorization": "Basic %%%"}).status_code == 401
    # Basic credentials are sent by browsers on their own: CSRF still applies.
    assert basic.post("/api/queues/x/pause", headers=_basic("ops", "pa:ss")).status_code == 403


# -- CSRF, with and without auth --------------------------------------------------------
def test_cross_site_posts_are_rejected_even_with_a_valid_token(client, world):
    url = f"/api/jobs/{world.ids['succeeded']}/cancel"  # 409 if it got through
    token = csrf_token(client)
    same = {"X-CSRF-Token": token}
    assert client.post(url, headers=same).status_code == 409
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"},
                    {"Referer": "http://evil.example/page"}):
        response = client.post(url, headers={**same, **headers})
        assert response.status_code == 403, headers
    assert client.post(url, headers={**same, "Origin": "http://localhost",
                                     "Sec-Fetch-Site": "same-origin"}).status_code == 409


def test_csrf_without_auth_configured(client, world):
    url = f"/api/jobs/{world.ids['succeeded']}/cancel"
    assert client.post(url).status_code == 403
    csrf_token(client)
    assert client.post(url, data={"csrf_token": "x" * 43}).status_code == 403
    # A token without its cookie (what another site would have to do) fails too.
    token = client.cookies.get("pgq_csrf")
    with TestClient(create_app(world.app), base_url="http://localhost") as stranger:
        assert stranger.post(url, headers={"X-CSRF-Token": token}).status_code == 403
