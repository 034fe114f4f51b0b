"""Plumbing of tests/acceptance/test_cut_host.py: worker "hosts" as network namespaces,
and a Postgres of the test's own that listens on their links.

Each host is a namespace joined to the root namespace by its own veth pair, on a
/30 of 10.213.0.0/16 that no address on this machine uses yet: the root end is
.1 (where Postgres listens), the host's end .2. Nothing routes anywhere else: a
namespace has only its veth and loopback, the root namespace forwards nothing,
and an ``unreachable`` route for each /30 (a higher metric than the link's own)
keeps the root namespace from sending the subnet's packets out of its default
route while a link is down. Names carry the test's pid, so parallel runs and
leftovers never collide; every namespace, link, route and process is removed
on exit, failed or not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

SUPERNET = ipaddress.ip_network("10.213.0.0/16")
SAFETY_METRIC = "4242"
_PREFIX = "pgqcut"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=30)


def unavailable() -> str | None:
    """Why namespaces can't be built here (None: they can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "building network namespaces needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{_PREFIX}{os.getpid()}probe"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    n: int
    ns: str        # namespace name
    outer: str     # veth end in the root namespace (Postgres's side)
    inner: str     # veth end inside the namespace (the host's network card)
    subnet: ipaddress.IPv4Network

    @property
    def server_address(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def address(self) -> str:
        return str(self.subnet.network_address + 2)


class Network:
    def __init__(self, count: int) -> None:
        pid = os.getpid()
        _remove_stale()
        subnets = _free_subnets(count, pid)
        self.hosts = [Host(n, f"{_PREFIX}{pid}h{n}", f"pqc{pid}h{n}", f"pqc{pid}n{n}",
                           subnets[n]) for n in range(count)]
        try:
            for host in self.hosts:
                _build(host)
        except BaseException:
            self.remove()
            raise

    def cut(self, host: Host) -> None:
        """Unplug the host: its network card goes down (the root end loses carrier)."""
        ip("-n", host.ns, "link", "set", host.inner, "down")

    def restore(self, host: Host) -> None:
        ip("-n", host.ns, "link", "set", host.inner, "up")

    def exec_prefix(self, host: Host) -> list[str]:
        return ["ip", "netns", "exec", host.ns]

    def remove(self) -> None:
        for host in self.hosts:
            _unbuild(host)


def _build(host: Host) -> None:
    ip("netns", "add", host.ns)
    ip("link", "add", host.outer, "type", "veth", "peer", "name", host.inner,
       "netns", host.ns)
    # No IPv6 link-local addresses: the links carry only what the test sends.
    ip("link", "set", host.outer, "addrgenmode", "none")
    ip("-n", host.ns, "link", "set", host.inner, "addrgenmode", "none")
    prefix = host.subnet.prefixlen
    ip("addr", "add", f"{host.server_address}/{prefix}", "dev", host.outer)
    ip("route", "add", "unreachable", str(host.subnet), "metric", SAFETY_METRIC)
    ip("link", "set", host.outer, "up")
    ip("-n", host.ns, "addr", "add", f"{host.address}/{prefix}", "dev", host.inner)
    ip("-n", host.ns, "link", "set", "lo", "up")
    ip("-n", host.ns, "link", "set", host.inner, "up")


def _unbuild(host: Host) -> None:
    ip("netns", "del", host.ns, check=False)  # takes the inner end, and so the pair
    ip("link", "del", host.outer, check=False)
    ip("route", "del", "unreachable", str(host.subnet), "metric", SAFETY_METRIC,
       check=False)


def _remove_stale() -> None:
    """Namespaces (with their links and routes) left by a run of this test that died
    before its clean-up: only those whose pid no longer exists."""
    listed = ip("netns", "list", check=False).stdout
    for name in re.findall(rf"^({_PREFIX}(\d+)h\d+)", listed, re.M):
        ns, pid = name
        if not Path(f"/proc/{pid}").exists():
            subnets = re.findall(r"inet (\S+)", ip("-n", ns, "-4", "addr", check=False).stdout)
            ip("netns", "del", ns, check=False)
            for cidr in subnets:
                net = ipaddress.ip_interface(cidr).network
                if net.subnet_of(SUPERNET):
                    ip("route", "del", "unreachable", str(net), "metric", SAFETY_METRIC,
                       check=False)


def _free_subnets(count: int, pid: int) -> list[ipaddress.IPv4Network]:
    """``count`` /30s of SUPERNET that no address or route here touches, starting at a
    place picked by the pid (so two runs at once start far apart)."""
    taken: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    for text in (ip("-4", "-o", "addr", check=False).stdout,
                 ip("-4", "route", "show", "table", "all", check=False).stdout):
        for found in re.findall(r"\b10\.213\.\d+\.\d+(?:/\d+)?", text):
            net = ipaddress.ip_network(found, strict=False)
            if net.prefixlen <= 30:
                taken.update(net.subnets(new_prefix=30))
            else:
                taken.add(net.supernet(new_prefix=30))
    blocks = list(SUPERNET.subnets(new_prefix=30))
    start = (pid * count) % len(blocks)
    free = [b for b in blocks[start:] + blocks[:start] if b not in taken]
    return free[:count]


# -- a Postgres listening on the hosts' links -----------------------------------------
class Postgres:
    """initdb + pg_ctl from the pgserver binaries, run as pgserver's own system user
    (initdb refuses root), listening on 127.0.0.1 and the given addresses; trust
    authentication for loopback and for the given subnets only."""

    USER = "pgserver"

    def __init__(self, addresses: list[str], subnets: list[str]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH  # type: ignore[import-untyped]
            from pgserver.utils import (  # type: ignore[import-untyped]
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )
        self.bin = Path(POSTGRES_BIN_PATH)
        ensure_user_exists(self.USER)
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, 0o055)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        self.base = Path(tempfile.mkdtemp(prefix=f"pgq-cut-{os.getpid()}-"))
        self.data = self.base / "data"
        self.data.mkdir()
        entry = pwd.getpwnam(self.USER)
        os.chown(self.data, entry.pw_uid, entry.pw_gid)
        ensure_prefix_permissions(self.data)
        self.port = _free_port()
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres",
                  "--encoding=utf8", "--no-sync")
        with open(self.data / "pg_hba.conf", "a") as hba:
            for subnet in subnets:
                hba.write(f"host all all {subnet} trust\n")
        listen = ",".join(["127.0.0.1", *addresses])
        options = (f"-c listen_addresses={listen} -p {self.port} -k {self.data} "
                   "-c fsync=off -c max_connections=200")
        self._run("pg_ctl", "-w", "-D", str(self.data), "-l", str(self.data / "log"),
                  "-o", options, "start")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([str(self.bin / program), *args], user=self.USER, check=True,
                       capture_output=True, text=True, timeout=120)

    def dsn(self, host: str = "127.0.0.1", dbname: str = "postgres") -> str:
        return f"host={host} port={self.port} dbname={dbname} user=postgres"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-w", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
