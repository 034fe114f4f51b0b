"""Health checks for the docker-compose stack's containers: exit 0 if healthy, 1 if not.

    python healthcheck.py worker            a pgq worker on this host is up (fresh heartbeat)
    python healthcheck.py http URL          URL answers 2xx
    python healthcheck.py tcp HOST PORT     something accepts connections there

A worker's check reads its heartbeat from Postgres rather than asking the process:
heartbeats come from the worker's event loop, so a worker whose loop is stuck goes
unhealthy even though its process is still alive. Only the standard library and
psycopg, so it runs in any of the stack's containers.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request

import psycopg
from psycopg import sql

MAX_HEARTBEAT_AGE = 30  # seconds; heartbeats come every 5 s by default


def worker_is_up(dsn: str, schema: str, host: str) -> bool:
    # The worker records socket.gethostname(): in a container, the container's own name,
    # so this finds the worker of this container and no other.
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute(sql.SQL(
            "SELECT count(*) FROM {} WHERE host = %s AND status = 'up' "
            "AND heartbeat_age < make_interval(secs => %s)"
        ).format(sql.Identifier(schema, "worker_status")), (host, MAX_HEARTBEAT_AGE)).fetchone()
    return bool(row and row[0])


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return 200 <= int(response.status) < 300


def tcp_open(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=5):
        return True


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["worker"]:
            healthy = worker_is_up(os.environ["PGQ_DSN"], os.environ.get("PGQ_SCHEMA") or
                                   "pgqueue", socket.gethostname())
        elif argv[:1] == ["http"] and len(argv) == 2:
            healthy = http_ok(argv[1])
        elif argv[:1] == ["tcp"] and len(argv) == 3:
            healthy = tcp_open(argv[1], int(argv[2]))
        else:
            print(__doc__, file=sys.stderr)
            return 1  # docker reserves 2: any failure is just "unhealthy"
    except (OSError, psycopg.Error) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if not healthy:
        print("unhealthy", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
