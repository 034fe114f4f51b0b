"""``serve``: run the dashboard with uvicorn, and refuse to expose it unprotected.

Without authentication anyone who reaches the port can retry and cancel jobs and
read their arguments, so only a loopback address may be bound then. A host name
other than ``localhost`` counts as non-loopback: what it resolves to can change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from pgqueue.app import App


class InsecureBind(ValueError):
    """A non-loopback address was asked for without any authentication configured."""


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: we can't know where it points, so assume far away
        return False


def check_bind(host: str, *, token: str | None, basic_auth: tuple[str, str] | None) -> None:
    """Raise :class:`InsecureBind` for a non-loopback ``host`` without authentication."""
    if token is None and basic_auth is None and not is_loopback(host):
        raise InsecureBind(
            f"refusing to serve the dashboard on {host} without authentication: anyone who "
            "can reach it could read job arguments and retry or cancel jobs. Set a token "
            "(--token or PGQ_DASHBOARD_TOKEN) or basic auth (--basic-auth USER:PASS or "
            "PGQ_DASHBOARD_BASIC_AUTH), or bind a loopback address such as 127.0.0.1 "
            "(then reach it through an SSH tunnel or an authenticating proxy)")


def serve(app: App, host: str = "127.0.0.1", port: int = 5555, token: str | None = None,
          basic_auth: tuple[str, str] | None = None,
          allowed_hosts: Sequence[str] = ()) -> None:
    """Serve the dashboard until interrupted (Ctrl-C or SIGTERM).

    Requests must name a loopback host; with authentication also ``host`` itself (when
    it is a specific address or name) or one of ``allowed_hosts``.
    """
    check_bind(host, token=token, basic_auth=basic_auth)
    import uvicorn

    from pgqueue.dashboard.factory import create_app

    dashboard = create_app(app, token=token, basic_auth=basic_auth,
                           allowed_hosts=allowed_hosts, bound_host=host)
    # proxy_headers: behind a local TLS proxy, X-Forwarded-Proto makes cookies Secure.
    uvicorn.run(dashboard, host=host, port=port, log_level="info", proxy_headers=True,
                server_header=False)
