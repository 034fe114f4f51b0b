"""The locked-down dashboard: the Host check against DNS rebinding, sessions that end on
logout, tokens long enough, and failed logins limited per client."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from pgqueue.cli_context import Ctx
from pgqueue.dashboard import create_app
from pgqueue.dashboard.auth import Auth
from pgqueue.dashboard.command import dashboard
from pgqueue.dashboard.hosts import AllowedHosts, check_pattern, hostname
from pgqueue.dashboard.sessions import Sessions
from pgqueue.dashboard.throttle import FailedLogins, client_key
from tests.dashboard.conftest import serving

TOKEN = "s3cret-token-for-tests-only"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
LOCAL = "http://localhost"

LOOPBACK_HOSTS = ["localhost", "localhost:5555", "LOCALHOST.", "dash.localhost:80",
                  "127.0.0.1", "127.0.0.1:5555", "127.8.9.1:1", "[::1]", "[::1]:5555",
                  "[::ffff:127.0.0.1]:5555"]
FOREIGN_HOSTS = ["evil.example", "evil.example:5555", "127.0.0.1.evil.example",
                 "localhost.evil.example", "10.0.0.1", "[::2]:5555", "[::1]x", "",
                 "localhost:http", "[::1"]


# -- Host ------------------------------------------------------------------------------
@pytest.mark.parametrize("header, name", [("LocalHost:5555", "localhost"),
                                          ("[::1]:80", "::1"), ("a.example.", "a.example"),
                                          ("[::1]junk", None), (":80", None),
                                          ("x:y", None)])
def test_hostname(header, name):
    assert hostname(header) == name


def test_without_auth_only_loopback_hosts_are_served(client):
    for host in LOOPBACK_HOSTS:
        assert client.get("/api/workers", headers={"Host": host}).status_code == 200, host
    for host in FOREIGN_HOSTS:
        api = client.get("/api/workers", headers={"Host": host})
        assert api.status_code == 403, host
        assert "DNS rebinding" in api.json()["error"] and "--allowed-host" in api.json()["error"]
    page = client.get("/", headers={"Host": "evil.example"})
    assert page.status_code == 403 and "loopback" in page.text and "token" in page.text
    # Refused before anything else: even the login page and the static files.
    assert client.get("/static/dashboard.css", headers={"Host": "evil.example"}
                      ).status_code == 403


def test_allowed_hosts_need_auth(world):
    with pytest.raises(ValueError, match="needs authentication"):
        create_app(world.app, allowed_hosts=["dash.example.com"])
    result = CliRunner().invoke(dashboard, ["--app", "tasks_app:app", "--allowed-host", "x.io"],
                                obj=Ctx(world.dsn, None))
    assert result.exit_code == 1 and "needs --token or --basic-auth" in result.output


def test_with_auth_the_allow_list_and_the_bound_address(world):
    app = create_app(world.app, token=TOKEN, allowed_hosts=["dash.example.com", ".corp.example"],
                     bound_host="10.1.2.3")
    with TestClient(app, base_url=LOCAL) as c:
        for host in [*LOOPBACK_HOSTS, "dash.example.com", "DASH.example.com:443", "corp.example",
                     "a.b.corp.example", "10.1.2.3:5555"]:
            assert c.get("/api/workers", headers={**BEARER, "Host": host}).status_code == 200, host
        for host in ["evil.example", "notcorp.example", "dash.example.com.evil", "10.1.2.4"]:
            refused = c.get("/api/workers", headers={**BEARER, "Host": host})
            assert refused.status_code == 403, host
            assert f"--allowed-host {host}" in refused.json()["error"]
    # Bound to every address, the bound address allows nothing more than loopback.
    with TestClient(create_app(world.app, token=TOKEN, bound_host="0.0.0.0"), base_url=LOCAL) as c:
        assert c.get("/api/workers", headers={**BEARER, "Host": "0.0.0.0"}).status_code == 403
        assert c.get("/api/workers", headers={**BEARER, "Host": "localhost:5555"}
                     ).status_code == 200
    anything = AllowedHosts.build(["*"])
    assert anything.allows("whatever.example")
    # Addresses are compared written one way; IPv6 comes with or without brackets.
    v6 = AllowedHosts.build(["fd00::5", "[FD00:0::6]:8080"], bound="fd00::7")
    for host in ("[fd00::5]:5555", "[fd00:0:0::6]", "[FD00::7]"):
        assert v6.allows(hostname(host)), host
    assert AllowedHosts.build([], bound="::").patterns == ()


@pytest.mark.parametrize("pattern", ["http://x.example", "x.example/path", "a b", "", "[::1"])
def test_bad_allowed_host_patterns(pattern):
    with pytest.raises(ValueError, match="is not a host name"):
        check_pattern(pattern)


def test_allowed_hosts_from_the_environment(monkeypatch):
    monkeypatch.setenv("PGQ_DASHBOARD_ALLOWED_HOSTS", "a.example, .b.example,c.example")
    ctx = dashboard.make_context("dashboard", ["--app", "x:y"])
    assert ctx.params["allowed_hosts"] == ("a.example", ".b.example", "c.example")
    ctx = dashboard.make_context("dashboard", ["--app", "x:y", "--allowed-host", "d.example"])
    assert ctx.params["allowed_hosts"] == ("d.example",)  # the option wins, as for every one


def test_the_real_server_checks_the_host(world):
    with serving(world.app) as base:
        ok = urllib.request.urlopen(urllib.request.Request(f"{base}/api/workers"), timeout=10)
        assert ok.status == 200
        forged = urllib.request.Request(f"{base}/api/workers", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=10)
        assert refused.value.code == 403


# -- tokens ----------------------------------------------------------------------------
def test_short_tokens_are_refused_at_start_up(world):
    with pytest.raises(ValueError, match="at least 16"):
        Auth(token="fifteen-chars!!")
    Auth(token="sixteen-chars!!!")
    result = CliRunner().invoke(dashboard, ["--app", "tasks_app:app", "--token", "hunter2"],
                                obj=Ctx(world.dsn, None))
    assert result.exit_code == 1
    assert "too short" in result.output and "secrets.token_urlsafe(32)" in result.output


# -- sessions --------------------------------------------------------------------------
def _log_in(browser: TestClient) -> tuple[str, str]:
    """(the CSRF token, the session cookie) after a right token at the login form."""
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text)[1]
    good = browser.post("/login", data={"csrf_token": csrf, "token": TOKEN, "next": "/jobs"},
                        follow_redirects=False)
    assert good.status_code == 303
    return csrf, browser.cookies["pgq_session"]


def test_logout_ends_the_session_on_the_server(world):
    app = create_app(world.app, token=TOKEN)
    with TestClient(app, base_url=LOCAL) as browser, TestClient(app, base_url=LOCAL) as thief:
        csrf, session = _log_in(browser)
        assert TOKEN not in session
        thief.cookies.set("pgq_session", session)  # a copy of the cookie, taken before
        assert thief.get("/jobs", follow_redirects=False).status_code == 200
        out = browser.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert out.status_code == 303
        # The copy is worth nothing now: the server forgot the session, not just the browser.
        assert thief.get("/jobs", follow_redirects=False).status_code == 303
        assert thief.get("/api/workers").status_code == 401
        # Logging in again gives a new session; the old one stays dead.
        _, again = _log_in(browser)
        assert again != session
        assert thief.get("/jobs", follow_redirects=False).status_code == 303


def test_sessions_are_capped():
    sessions = Sessions(seconds=60, most=3)
    first, *rest = [sessions.new(now=0.0) for _ in range(4)]
    assert len(sessions) == 3 and not sessions.valid(first, now=1.0)
    assert all(sessions.valid(s, now=1.0) for s in rest)


# -- failed logins -----------------------------------------------------------------------
def test_failed_logins_are_limited_per_client(world):
    app = create_app(world.app, token=TOKEN)
    with TestClient(app, base_url=LOCAL, client=("192.0.2.7", 40000)) as guesser, \
            TestClient(app, base_url=LOCAL, client=("192.0.2.8", 40000)) as colleague:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', guesser.get("/login").text)[1]
        for i in range(5):
            wrong = guesser.post("/login", data={"csrf_token": csrf, "token": f"guess-{i}"})
            assert wrong.status_code == 401, i
        blocked = guesser.post("/login", data={"csrf_token": csrf, "token": TOKEN})
        assert blocked.status_code == 429  # even the right token: it is not looked at
        assert 55 <= int(blocked.headers["retry-after"]) <= 60
        assert "try again in" in blocked.text
        api = guesser.get("/api/workers", headers=BEARER)
        assert api.status_code == 429 and "too many failed logins" in api.json()["error"]
        assert api.headers["retry-after"]
        # Another client is not held back by this one.
        assert colleague.get("/api/workers", headers=BEARER).status_code == 200


def test_wrong_bearer_and_basic_credentials_count_too(world):
    with TestClient(create_app(world.app, token=TOKEN, basic_auth=("ops", "long-password")),
                    base_url=LOCAL) as c:
        for _ in range(3):
            assert c.get("/api/workers", headers={"Authorization": "Bearer nope"}
                         ).status_code == 401
        for _ in range(2):
            assert c.get("/api/workers", headers={"Authorization": "Basic b3BzOm5vcGU="}
                         ).status_code == 401
        assert c.get("/api/workers", headers=BEARER).status_code == 429
        assert c.get("/api/workers").status_code == 401  # no credentials: not an attempt


def test_the_limit_slides_and_counts_ipv6_per_64():
    failures = FailedLogins(most=5, window=60)
    for t in range(5):
        failures.failed("2001:db8::1", now=float(t))
    assert failures.wait_seconds("2001:db8::ffff:1", now=5.0) == 55  # same /64
    assert failures.wait_seconds("2001:db8:0:1::1", now=5.0) == 0  # another /64
    assert failures.wait_seconds("2001:db8::1", now=59.5) == 1
    assert failures.wait_seconds("2001:db8::1", now=60.5) == 0  # the first one has gone
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
