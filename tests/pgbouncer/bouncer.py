"""A real PgBouncer (Debian's ``pgbouncer`` package, 1.18) in front of the test Postgres.

Transaction mode, as it is run in front of busy databases: each transaction gets
whichever server session is free, so nothing pgqueue keeps on a session (LISTEN,
a session advisory lock, a prepared statement) survives from one transaction to
the next. A wildcard ``*`` database entry makes every database name reach the
database of the same name, so each test's fresh copy of the template is served.

PgBouncer refuses to run as root; as root it is started with ``-u`` as the user
that owns the Postgres socket directory (the private test server's user), who can
reach that socket.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

INSTALL_HINT = "apt-get install pgbouncer (Debian's package; .ci/run installs it as root)"


@dataclass(frozen=True)
class Bouncer:
    port: int
    user: str
    logfile: Path

    def dsn(self, dbname: str) -> str:
        """A DSN for this database through the bouncer."""
        return make_conninfo(host="127.0.0.1", port=self.port, dbname=dbname, user=self.user)

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)),
        None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as(host: str) -> str | None:
    """The user to run as (``-u``) when we are root: the socket directory's owner."""
    if os.geteuid() != 0:
        return None
    if host.startswith("/") and os.path.isdir(host):
        return pwd.getpwuid(os.stat(host).st_uid).pw_name
    return "postgres" if _user_exists("postgres") else "nobody"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _ini(server: dict[str, object], port: int, user: str, folder: Path) -> str:
    target = f"host={server.get('host') or '127.0.0.1'} port={server.get('port') or 5432}"
    if server.get("password"):
        target += f" password={server['password']}"
    return f"""\
[databases]
* = {target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
admin_users = {user}
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
; psycopg sends none of these itself; a driver that does must not be refused.
ignore_startup_parameters = extra_float_digits
; a test database is dropped at the end of its test: forget its pool soon.
autodb_idle_timeout = 30
server_idle_timeout = 30
server_connect_timeout = 5
server_login_retry = 1
"""


@contextlib.contextmanager
def running(server_dsn: str, timeout: float = 15.0) -> Iterator[Bouncer]:
    """A PgBouncer in front of the server of ``server_dsn``, stopped at the end.
    Raises RuntimeError (with the reason) if it can't be started."""
    exe = binary()
    if exe is None:
        raise RuntimeError(f"pgbouncer is not installed: {INSTALL_HINT}")
    server = conninfo_to_dict(server_dsn)
    user = str(server.get("user") or "postgres")
    folder = Path(tempfile.mkdtemp(prefix="pgq-test-pgbouncer-"))
    run_as = _run_as(str(server.get("host") or ""))
    try:
        port = _free_port()
        (folder / "users.txt").write_text(f'"{user}" ""\n')
        ini = folder / "pgbouncer.ini"
        ini.write_text(_ini(server, port, user, folder))
        logfile = folder / "pgbouncer.log"
        if run_as is not None:
            pw = pwd.getpwnam(run_as)
            for path in (folder, folder / "users.txt", ini):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        with logfile.open("w") as log:
            proc = subprocess.Popen([exe, *(["-u", run_as] if run_as else []), str(ini)],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        bouncer = Bouncer(port, user, logfile)
        try:
            _until_ready(proc, bouncer, str(server.get("dbname") or "postgres"), timeout)
            yield bouncer
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _until_ready(proc: subprocess.Popen[bytes], bouncer: Bouncer, dbname: str,
                 timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {proc.returncode}: {bouncer.log()}")
        try:
            with psycopg.connect(bouncer.dsn(dbname), connect_timeout=2,
                                 prepare_threshold=None) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.Error as exc:
            if time.monotonic() > deadline:
                _stop(proc)
                raise RuntimeError(f"pgbouncer did not answer within {timeout}s ({exc}): "
                                   f"{bouncer.log()}") from None
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # immediate shutdown: clients are dropped
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
