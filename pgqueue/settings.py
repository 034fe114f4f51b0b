"""The one Settings object: every default lives here, validated on construction.

Built from keyword arguments, from ``PGQ_*`` environment variables
(:meth:`Settings.from_env`), or both: an argument the caller gave wins over the
environment, which wins over the default. Nothing reads the environment at import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pgqueue import redact
from pgqueue.errors import ConfigurationError
from pgqueue.options import check_queue

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")
POOLS = ("threads", "processes", "asyncio")


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "on")


def _queues(value: str) -> tuple[str, ...]:
    return tuple(q.strip() for q in value.split(",") if q.strip())


@dataclass(frozen=True)
class Settings:
    dsn: str | None = field(default=None, repr=False, metadata={"env": "PGQ_DSN"})
    schema: str = field(default="pgqueue", metadata={"env": "PGQ_SCHEMA"})
    # A direct (unpooled) connection for what a transaction-mode pooler can't carry:
    # LISTEN, cancel notifications and session advisory locks. None: use dsn, unless
    # dsn goes through a pooler, in which case workers poll (see docs/operating.md).
    listen_dsn: str | None = field(default=None, repr=False,
                                   metadata={"env": "PGQ_LISTEN_DSN"})
    # Where the dashboard, pgq status and /metrics read from (a read replica, say).
    monitor_dsn: str | None = field(default=None, repr=False,
                                    metadata={"env": "PGQ_MONITOR_DSN"})
    # pgq status, the dashboard and /metrics warn of a transaction open longer (seconds)
    # than this: it holds back vacuum on jobs (docs/operating.md).
    xmin_warn: float = field(default=300.0, metadata={"env": "PGQ_XMIN_WARN", "parse": float})
    # psycopg's server-side prepared statements; off behind PgBouncer < 1.21, whose
    # transaction mode can't carry them from one statement's server to the next.
    prepared_statements: bool = field(default=True, metadata={
        "env": "PGQ_PREPARED_STATEMENTS", "parse": _flag})
    # A job whose arguments encode to more JSON bytes than this is refused at enqueue.
    max_args_bytes: int = field(default=16 * 1024 * 1024, metadata={
        "env": "PGQ_MAX_ARGS_BYTES", "parse": int})
    # Worker
    queues: tuple[str, ...] = field(default=("default",), metadata={"env": "PGQ_QUEUES",
                                                                   "parse": _queues})
    concurrency: int = field(default=10, metadata={"env": "PGQ_CONCURRENCY", "parse": int})
    pool: str = field(default="threads", metadata={"env": "PGQ_POOL"})
    poll_interval: float = field(default=5.0, metadata={"env": "PGQ_POLL_INTERVAL",
                                                        "parse": float})
    batch_size: int = field(default=100, metadata={"env": "PGQ_BATCH_SIZE", "parse": int})
    lease_seconds: float = field(default=30.0, metadata={"env": "PGQ_LEASE_SECONDS",
                                                         "parse": float})
    heartbeat_interval: float = field(default=5.0, metadata={"env": "PGQ_HEARTBEAT_INTERVAL",
                                                             "parse": float})
    shutdown_timeout: float = field(default=30.0, metadata={"env": "PGQ_SHUTDOWN_TIMEOUT",
                                                            "parse": float})
    max_tasks_per_child: int | None = field(default=None, metadata={
        "env": "PGQ_MAX_TASKS_PER_CHILD", "parse": int})
    max_rescues: int = field(default=5, metadata={"env": "PGQ_MAX_RESCUES", "parse": int})
    # A result larger than this (bytes of JSON) fails its job with ResultTooLarge
    # rather than bloat the results table (jsonb itself stops at 255 MB).
    max_result_bytes: int = field(default=64 * 1024 * 1024, metadata={
        "env": "PGQ_MAX_RESULT_BYTES", "parse": int})
    # A job whose task this worker doesn't know goes back (uncounted, later each
    # time) while it is younger than this many seconds, for a worker that does know
    # it: a rolling deploy where new producers start first. Then it fails.
    unknown_task_grace: float = field(default=600.0, metadata={
        "env": "PGQ_UNKNOWN_TASK_GRACE", "parse": float})
    # A waiting job's priority rises by one for every this many seconds it has been
    # due (0: off), by at most priority_aging_cap: no job waits forever behind a
    # stream of higher-priority ones.
    priority_aging: float = field(default=60.0, metadata={"env": "PGQ_PRIORITY_AGING",
                                                          "parse": float})
    priority_aging_cap: int = field(default=100, metadata={"env": "PGQ_PRIORITY_AGING_CAP",
                                                           "parse": int})
    metrics_port: int | None = field(default=None, metadata={"env": "PGQ_METRICS_PORT",
                                                             "parse": int})
    metrics_host: str = field(default="127.0.0.1", metadata={"env": "PGQ_METRICS_HOST"})
    # Scheduler (beat) and built-in maintenance
    beat: bool = field(default=False, metadata={"env": "PGQ_BEAT", "parse": _flag})
    leader_dsn: str | None = field(default=None, repr=False, metadata={"env": "PGQ_LEADER_DSN"})
    retention_days: float = field(default=7.0, metadata={"env": "PGQ_RETENTION_DAYS",
                                                         "parse": float})
    prune_interval: float = field(default=3600.0, metadata={"env": "PGQ_PRUNE_INTERVAL",
                                                            "parse": float})
    # Producers
    pool_size: int = field(default=10, metadata={"env": "PGQ_POOL_SIZE", "parse": int})
    pool_timeout: float = field(default=5.0, metadata={"env": "PGQ_POOL_TIMEOUT",
                                                       "parse": float})
    # Tests: run tasks inline at enqueue (pgqueue.eager)
    eager: bool = field(default=False, metadata={"env": "PGQ_EAGER", "parse": _flag})
    # Embedded Postgres for local use when no DSN is given
    home: str = field(default=".pgqueue", metadata={"env": "PGQ_HOME"})

    def __post_init__(self) -> None:
        redact.remember(self.dsn, self.listen_dsn, self.monitor_dsn, self.leader_dsn)
        if isinstance(self.queues, str):
            object.__setattr__(self, "queues", _queues(self.queues))
        else:
            object.__setattr__(self, "queues", tuple(self.queues))
        if not _SCHEMA.match(self.schema):
            raise ConfigurationError(
                f"invalid schema name {self.schema!r}: use lower-case letters, digits and _"
            )
        if not self.queues:
            raise ConfigurationError("no queues given: pass --queues default,emails")
        for q in self.queues:
            try:
                check_queue(q)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(str(exc)) from None
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.pool not in POOLS:
            raise ConfigurationError(
                f"unknown pool {self.pool!r}: choose one of {', '.join(POOLS)}"
            )
        if self.priority_aging < 0 or self.priority_aging != self.priority_aging:
            raise ConfigurationError("priority_aging must be 0 (off) or more seconds")
        if not 0 <= self.priority_aging_cap <= 65535:
            raise ConfigurationError("priority_aging_cap must be 0 to 65535 levels")
        if self.poll_interval <= 0:
            raise ConfigurationError("poll_interval must be positive")
        if self.heartbeat_interval <= 0 or self.lease_seconds < 2 * self.heartbeat_interval:
            raise ConfigurationError(
                f"lease_seconds ({self.lease_seconds}) must be at least twice "
                f"heartbeat_interval ({self.heartbeat_interval}), so that one late "
                "heartbeat does not lose a lease"
            )
        if self.shutdown_timeout < 0:
            raise ConfigurationError("shutdown_timeout must be 0 or more seconds")
        if self.max_tasks_per_child is not None and self.max_tasks_per_child < 1:
            raise ConfigurationError("max_tasks_per_child must be at least 1")
        if self.max_args_bytes < 1:
            raise ConfigurationError("max_args_bytes must be at least 1")
        if self.max_result_bytes < 1:
            raise ConfigurationError("max_result_bytes must be at least 1")
        if self.unknown_task_grace < 0:
            raise ConfigurationError("unknown_task_grace must be 0 or more seconds")
        if self.max_rescues < 1:
            raise ConfigurationError("max_rescues must be at least 1")
        if self.retention_days < 0:
            raise ConfigurationError("retention_days must be 0 (keep forever) or more")
        if self.xmin_warn <= 0:
            raise ConfigurationError("xmin_warn must be positive seconds")
        if self.prune_interval <= 0:
            raise ConfigurationError("prune_interval must be positive seconds")
        if self.pool_timeout <= 0:
            raise ConfigurationError("pool_timeout must be positive seconds")
        if self.pool_size < 1:
            raise ConfigurationError("pool_size must be at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **given: Any) -> Settings:
        """Settings from ``PGQ_*`` variables, overridden by the arguments that are not None."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata.get("env")
            if name and env.get(name):
                parse: Callable[[str], Any] = f.metadata.get("parse", str)
                try:
                    values[f.name] = parse(env[name])
                except ValueError:
                    raise ConfigurationError(
                        f"{name}={env[name]!r} is not a valid {f.name}"
                    ) from None
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """A copy with the given (non-None) fields changed, validated again."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
