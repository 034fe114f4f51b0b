"""``pgq dashboard``: the command that starts the web dashboard.

Kept importable without Starlette or uvicorn installed (they are imported when the
command runs), so registering it in ``pgq`` costs nothing to those who never use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import psycopg

from pgqueue.errors import PgQueueError

if TYPE_CHECKING:
    from pgqueue.cli_context import Ctx


class HostPattern(click.ParamType[str]):
    """An ``--allowed-host`` value; the variable holds several, comma-separated."""

    name = "host"
    envvar_list_splitter = ","

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        return str(value).strip()


def parse_basic_auth(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    user, sep, password = value.partition(":")
    if not (sep and user and password):
        raise click.BadParameter("expected USER:PASS, both non-empty", param_hint="--basic-auth")
    return user, password


@click.command()
@click.option("-A", "--app", "app_path", envvar="PGQ_APP", required=True, metavar="MODULE:APP",
              help="Where your App is, e.g. myproj.tasks:app [env: PGQ_APP]. Its tasks' "
                   "redact= settings decide which arguments are hidden.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --token or "
                   "--basic-auth.")
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--token", envvar="PGQ_DASHBOARD_TOKEN", metavar="SECRET",
              help="Require this token, 16 characters or more: as 'Authorization: Bearer "
                   "SECRET', or typed once "
                   "into the login page [env: PGQ_DASHBOARD_TOKEN; prefer the variable: "
                   "options show in ps].")
@click.option("--basic-auth", envvar="PGQ_DASHBOARD_BASIC_AUTH", metavar="USER:PASS",
              help="Require HTTP basic auth with these credentials "
                   "[env: PGQ_DASHBOARD_BASIC_AUTH].")
@click.option("--allowed-host", "allowed_hosts", multiple=True, type=HostPattern(),
              envvar="PGQ_DASHBOARD_ALLOWED_HOSTS", metavar="NAME",
              help="With --token or --basic-auth: also answer requests for this Host "
                   "(repeatable): a name, .example.com for a domain and its subdomains, "
                   "or * for any. Loopback names and the --host address are always "
                   "allowed; any other Host gets 403 (a defence against DNS rebinding) "
                   "[env: PGQ_DASHBOARD_ALLOWED_HOSTS, comma-separated].")
@click.pass_obj
def dashboard(obj: Ctx, app_path: str, host: str, port: int, token: str | None,
              basic_auth: str | None, allowed_hosts: tuple[str, ...]) -> None:
    """Serve the web dashboard: live queues, workers and task stats, job search, and
    retry / cancel / pause from the browser.

    \b
      pgq dashboard --app myproj.tasks:app               http://127.0.0.1:5555
      PGQ_DASHBOARD_TOKEN=$(openssl rand -hex 32) \\
        pgq dashboard --app myproj.tasks:app --host 0.0.0.0 \\
        --allowed-host dash.example.com

    Without authentication it answers only to loopback names (localhost,
    127.0.0.1, [::1]). A token must have at least 16 characters.
    """
    from pgqueue.dashboard.server import InsecureBind, check_bind, serve

    credentials = parse_basic_auth(basic_auth)
    try:
        check_bind(host, token=token, basic_auth=credentials)
        import jinja2  # noqa: F401  (fail here, with the fix, rather than mid-start)
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except InsecureBind as exc:
        raise click.ClickException(str(exc)) from exc
    except ImportError as exc:
        raise click.ClickException(f"the dashboard needs its extra: pip install -e "
                                   f"'.[dashboard]' in pgqueue's checkout ({exc})") from exc
    hosts = [h for h in allowed_hosts if h]
    try:  # the settings, checked before the database is touched
        from pgqueue.dashboard.auth import Auth
        from pgqueue.dashboard.hosts import AllowedHosts

        Auth(token=token, basic=credentials)
        if hosts and not (token or credentials):
            raise ValueError("--allowed-host needs --token or --basic-auth: without "
                             "authentication the dashboard answers only to loopback names "
                             "(a defence against DNS rebinding)")
        AllowedHosts.build(hosts)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        app = obj.app(app_path)
        app.dsn()  # start (or fail to reach) the database before saying we are up
        auth = ", ".join(n for n, on in (("token", token), ("basic auth", credentials)) if on)
        names = ", ".join(["loopback names", *AllowedHosts.build(hosts, bound=host).patterns]
                          if auth else ["loopback names"])
        click.echo(f"pgqueue dashboard on http://{host}:{port}/ "
                   f"(authentication: {auth or 'none, loopback only'}; answers to Host: "
                   f"{names})", err=True)
        serve(app, host=host, port=port, token=token, basic_auth=credentials,
              allowed_hosts=hosts)
    except (PgQueueError, psycopg.Error, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
