"""``app.conf``: Celery's settings, read from where Celery reads them, and what each means here.

:class:`Config` holds the settings a project gave (``Celery(..., **settings)``,
``conf.update``, ``config_from_object``) over Celery's defaults, with dict and
attribute access. ``config_from_object`` is lazy, as in Celery: the source is read
when a setting is first needed, so ``config_from_object("django.conf:settings",
namespace="CELERY")`` may run before Django's settings are ready.

Every documented Celery setting is accepted. :data:`APPLIED` lists those that
change what pgqueue does; :data:`IGNORED` (and the result-backend prefixes of
:data:`IGNORED_PREFIXES`) those that have no meaning on Postgres, logged at debug
level; a name in neither is logged as a warning, since it is likely a typo.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import threading
import types
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from pgqueue.errors import ConfigurationError

log = logging.getLogger("pgqueue.celery")

# Celery's defaults for the settings pgqueue reads (its documented defaults).
DEFAULTS: dict[str, Any] = {
    "broker_url": None,
    "result_backend": None,
    "task_default_queue": "celery",
    "task_default_priority": None,
    "task_queue_max_priority": None,
    "task_routes": None,
    "task_annotations": None,
    "beat_schedule": {},
    "task_queues": None,
    "timezone": None,
    "enable_utc": True,
    "imports": (),
    "include": (),
    "task_always_eager": False,
    "task_eager_propagates": False,
    "task_store_eager_result": False,
    "task_track_started": False,
    "task_ignore_result": False,
    "task_acks_late": False,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "task_default_rate_limit": None,
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": None,
    "result_expires": dt.timedelta(days=1),
    "worker_concurrency": None,
    "worker_max_tasks_per_child": None,
    "worker_prefetch_multiplier": 4,
    "broker_transport_options": {},
    # pgqueue's own: which way Celery priorities point ("amqp": higher runs first,
    # "redis": 0 runs first); priority_steps in broker_transport_options also selects redis.
    "task_priority_convention": None,
    # pgqueue's own: send_task checks names against the registry (None: when the app
    # declares its task modules; True: whenever it has tasks; False: never).
    "send_task_check_registry": None,
}

# Settings that change what pgqueue does (see docs/migrating-from-celery.md).
APPLIED = frozenset(DEFAULTS)

# Documented Celery settings with no meaning on Postgres: accepted, logged at debug.
_IGNORED_NAMES = """
broker_connection_retry broker_connection_retry_on_startup broker_connection_max_retries
broker_connection_timeout broker_channel_error_retry broker_heartbeat
broker_heartbeat_checkrate broker_pool_limit broker_login_method broker_use_ssl
broker_failover_strategy broker_read_url broker_write_url broker_transport
broker_native_delayed_delivery_queue_type
result_backend_transport_options result_backend_always_retry result_backend_max_retries
result_backend_base_sleep_between_retries result_backend_max_sleep_between_retries
result_backend_thread_safe result_persistent result_extended result_compression
result_cache_max result_chord_join_timeout result_chord_retry_interval result_exchange
result_exchange_type override_backends
task_compression task_protocol task_publish_retry task_publish_retry_policy
task_create_missing_queues task_default_exchange task_default_exchange_type
task_default_routing_key task_default_delivery_mode task_inherit_parent_priority
task_send_sent_event task_reject_on_worker_lost task_remote_tracebacks
task_allow_error_cb_on_chord_header task_create_missing_queue_type
task_create_missing_queue_exchange_type
worker_enable_prefetch_count_reduction worker_lost_wait worker_disable_rate_limits
worker_state_db worker_timer_precision worker_enable_remote_control worker_send_task_events
worker_hijack_root_logger worker_log_color worker_log_format worker_task_log_format
worker_redirect_stdouts worker_redirect_stdouts_level worker_direct worker_pool
worker_pool_restarts worker_autoscaler worker_consumer worker_timer
worker_max_memory_per_child worker_cancel_long_running_tasks_on_connection_loss
worker_proc_alive_timeout worker_deduplicate_successful_tasks worker_soft_shutdown_timeout
worker_enable_soft_shutdown_on_idle worker_detect_quorum_queues worker_eta_task_limit
beat_scheduler beat_schedule_filename beat_sync_every beat_max_loop_interval
beat_cron_starting_deadline
control_queue_ttl control_queue_expires control_exchange
event_queue_ttl event_queue_expires event_queue_prefix event_exchange event_serializer
event_queue_durable event_queue_exclusive
security_key security_certificate security_cert_store security_digest security_key_password
cache_backend cache_backend_options
"""
IGNORED = frozenset(_IGNORED_NAMES.split())

# Settings of Celery's other result backends and transports: all ignored.
IGNORED_PREFIXES = ("redis_", "database_", "mongodb_", "cassandra_", "s3_", "azureblockblob_",
                    "gcs_", "elasticsearch_", "couchbase_", "arangodb_", "cosmosdbsql_",
                    "riak_", "dynamodb_", "filesystem_", "couchdb_", "sqs_", "control_",
                    "event_", "security_")

# Celery 3 names (still read by Celery when no namespace is used) -> today's.
OLD_NAMES = {
    "BROKER_URL": "broker_url", "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_DEFAULT_QUEUE": "task_default_queue", "CELERY_ROUTES": "task_routes",
    "CELERYBEAT_SCHEDULE": "beat_schedule", "CELERY_TIMEZONE": "timezone",
    "CELERY_ENABLE_UTC": "enable_utc", "CELERY_IMPORTS": "imports",
    "CELERY_INCLUDE": "include", "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERY_ACKS_LATE": "task_acks_late", "CELERY_IGNORE_RESULT": "task_ignore_result",
    "CELERY_TRACK_STARTED": "task_track_started",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_RESULT_SERIALIZER": "result_serializer",
    "CELERY_ACCEPT_CONTENT": "accept_content",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERY_DEFAULT_RATE_LIMIT": "task_default_rate_limit",
    "CELERY_ANNOTATIONS": "task_annotations",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
}


def check_setting(key: str) -> None:
    """Log what becomes of a setting that pgqueue does not apply."""
    if key in APPLIED:
        return
    if key in IGNORED or key.startswith(IGNORED_PREFIXES):
        log.debug("Celery setting %s has no effect with pgqueue (ignored)", key)
    else:
        log.warning("%s is not a Celery setting pgqueue knows (a typo?): kept in app.conf, "
                    "otherwise ignored", key)


def _check_serializer(key: str, value: object) -> None:
    if key in ("task_serializer", "result_serializer") and value not in (None, "json"):
        raise ConfigurationError(
            f"{key}={value!r}: pgqueue stores arguments and results as JSON only (never "
            "pickle), so set it to 'json' or leave it out")


class Config(MutableMapping[str, Any]):
    """``app.conf``: the project's settings over Celery's defaults; ``conf.x`` is ``conf["x"]``.

    ``changed`` is called with the keys set, after each change, so the app can
    apply them. A pending ``config_from_object`` source is read first by any access.
    """

    def __init__(self, changed: Callable[[set[str]], None]) -> None:
        object.__setattr__(self, "_data", {})
        object.__setattr__(self, "_changed", changed)
        object.__setattr__(self, "_pending", None)
        object.__setattr__(self, "_lock", threading.RLock())

    # -- lazy sources -----------------------------------------------------------
    def defer(self, source: Callable[[], Mapping[str, Any]]) -> None:
        """Read ``source`` (keys already Celery's) when a setting is next needed."""
        object.__setattr__(self, "_pending", source)

    def load(self) -> None:
        pending = self._pending
        if pending is None:
            return
        with self._lock:
            if self._pending is None:
                return
            object.__setattr__(self, "_pending", None)
            try:
                found = pending()
            except BaseException:
                object.__setattr__(self, "_pending", pending)  # raise again next time
                raise
            self.update(found)

    # -- mapping ----------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        self.load()
        if key in self._data:
            return self._data[key]
        if key in DEFAULTS:
            return DEFAULTS[key]
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        self.load()
        del self._data[key]
        self._changed({key})

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter({**DEFAULTS, **self._data})

    def __len__(self) -> int:
        self.load()
        return len({**DEFAULTS, **self._data})

    def __contains__(self, key: object) -> bool:
        self.load()
        return key in self._data or key in DEFAULTS

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set many settings at once (``conf.update(task_default_queue="q")``)."""
        self.load()
        given = dict(other, **kwargs)
        for key, value in given.items():
            if not isinstance(key, str):
                raise TypeError(f"setting names are strings, not {key!r}")
            _check_serializer(key, value)
            check_setting(key)
        self._data.update(given)
        if given:
            self._changed(set(given))

    def given(self, key: str) -> bool:
        """Whether the project set ``key`` (rather than leaving Celery's default)."""
        self.load()
        return key in self._data

    # -- attributes -------------------------------------------------------------
    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no setting {key!r} in app.conf") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __repr__(self) -> str:
        return f"<Config: {len(self._data)} settings given>"


# -- config_from_object ---------------------------------------------------------
def import_object(path: str) -> Any:
    """``"proj.celeryconfig"`` (a module), ``"django.conf:settings"`` or ``"proj.conf.Obj"``."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
        return getattr(importlib.import_module(module_name), attr)
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        module_name, _, attr = path.rpartition(".")
        if not module_name or exc.name != path:
            raise
        return getattr(importlib.import_module(module_name), attr)


def settings_of(obj: Any, namespace: str | None) -> dict[str, Any]:
    """The Celery settings in a module, class, object or mapping, keys as Celery's.

    With ``namespace="CELERY"``, only names ``CELERY_...`` count, read without the
    prefix and in lower case (``CELERY_BROKER_URL`` is ``broker_url``), as in Celery.
    Without one, lower-case names and Celery 3's upper-case names count.
    """
    if isinstance(obj, str):
        obj = import_object(obj)
    if isinstance(obj, Mapping):
        items = dict(obj)
    else:
        items = {k: getattr(obj, k) for k in dir(obj) if not k.startswith("_")}
    prefix = f"{namespace}_" if namespace else None
    out: dict[str, Any] = {}
    for key, value in items.items():
        if not isinstance(key, str):
            continue
        if key in OLD_NAMES:
            out[OLD_NAMES[key]] = value
        elif prefix is not None:
            if key.startswith(prefix):
                out[key[len(prefix):].lower()] = value
        elif key in APPLIED or (key.islower() and not callable(value)
                                and not isinstance(value, types.ModuleType)):
            out[key] = value
    return out


def retention_days(value: object) -> float:
    """``result_expires`` as pgqueue's retention in days (None: keep forever)."""
    if value is None:
        return 0.0  # never expire: keep finished jobs
    if isinstance(value, dt.timedelta):
        return value.total_seconds() / 86400
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 86400
    raise ConfigurationError(f"result_expires must be seconds or a timedelta, not {value!r}")
