"""Least-privilege roles: ``pgqueue_producer``, ``pgqueue_worker``, ``pgqueue_monitor``.

They are NOLOGIN group roles; the people and services that log in are granted one
(``GRANT pgqueue_worker TO app_worker``). :func:`create_roles` makes whichever are
missing and grants them what they need in one schema, from the named statements in
``sql/queries/roles.sql``: it is idempotent, and running it again after ``pgq
migrate`` grants on the tables a new migration added. What each role may do, and
why, is said there and in the README ("Security: roles, limits and secrets").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from pgqueue.client import run
from pgqueue.sql import queries
from pgqueue.statements import Statement, plain

PRODUCER, WORKER, MONITOR = "pgqueue_producer", "pgqueue_worker", "pgqueue_monitor"
ROLES = (PRODUCER, WORKER, MONITOR)

# In order: each GRANT names only objects that exist after `pgq migrate`.
_GRANTS = ("grant_usage", "grant_read", "grant_producer", "grant_producer_upserts",
           "grant_producer_cancel", "grant_sequences", "grant_sequences_read",
           "grant_monitor_stats", "grant_worker", "revoke_worker_ledger", "grant_functions")


@dataclass(frozen=True)
class RolesReport:
    created: tuple[str, ...]  # roles this call made (the others existed)
    grants: dict[str, list[tuple[str, int]]]  # role -> [(privilege, tables), ...]

    def lines(self, schema: str) -> list[str]:
        out = [f"created role {r} (NOLOGIN)" if r in self.created else f"role {r} exists"
               for r in ROLES]
        for role in ROLES:
            held = ", ".join(f"{priv} on {n} tables" for priv, n in self.grants.get(role, []))
            out.append(f"schema {schema}: {role}: {held or 'nothing'}")
        out.append(f"schema {schema}: {PRODUCER} may also UPDATE (state, cancel_requested, "
                   "finished_at) of jobs, to cancel them")
        return out


def _present(conn: psycopg.Connection[Any], schema: str) -> set[str]:
    stmt = Statement(queries(schema)["roles_present"], {}, lambda rows: {r[0] for r in rows})
    return run(conn, stmt)


def create_roles(conn: psycopg.Connection[Any], schema: str) -> RolesReport:
    """Create the roles where missing and grant them their rights on ``schema``, in one
    transaction. Needs CREATEROLE (or superuser) and ownership of the schema's objects:
    run it as the user that runs ``pgq migrate``."""
    with conn.transaction():
        before = _present(conn, schema)
        run(conn, plain(schema, "create_roles"))
        for name in _GRANTS:
            run(conn, plain(schema, name))
        rows = run(conn, Statement(queries(schema)["role_grants"], {"schema_name": schema},
                                   lambda r: r))
    grants: dict[str, list[tuple[str, int]]] = {}
    for grantee, privilege, tables in rows:
        grants.setdefault(grantee, []).append((privilege, int(tables)))
    return RolesReport(tuple(r for r in ROLES if r not in before), grants)


def create_roles_dsn(dsn: str, schema: str) -> RolesReport:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return create_roles(conn, schema)
