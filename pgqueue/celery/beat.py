"""``beat_schedule`` entries (and ``add_periodic_task``) as pgqueue schedules.

An entry ``{"task": name, "schedule": ..., "args", "kwargs", "options"}`` becomes
``app.add_periodic(key, ...)``: its schedule a :class:`pgqueue.schedule.Rule` in
the app's ``timezone`` (:func:`pgqueue.celery.schedules.to_rule`), its queue and
priority decided as for any call of the task (its own options, the entry's
``options``, ``task_routes``, the defaults). pgqueue's scheduler then fires each
tick once however many beats run. A tick missed while no beat ran fires once
when one starts (as Celery's beat runs an overdue entry once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pgqueue.celery.exceptions import ImproperlyConfigured
from pgqueue.celery.routes import AMQP_ONLY, task_defaults
from pgqueue.celery.schedules import to_rule

if TYPE_CHECKING:
    from pgqueue.celery.app import Celery
    from pgqueue.schedule import Schedule

log = logging.getLogger("pgqueue.celery")

_ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative"})
_HONOURED = frozenset({"queue", "priority"})


def declare(app: Celery, key: str, entry: Mapping[str, Any]) -> Schedule:
    """Declare one beat entry as the schedule named ``key``."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("task"), str):
        raise ImproperlyConfigured(
            f"beat_schedule[{key!r}] must be a dict with a 'task' name and a 'schedule' "
            f"(e.g. {{'task': 'proj.tasks.add', 'schedule': 30.0, 'args': (2, 2)}})")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ImproperlyConfigured(f"beat_schedule[{key!r}]: unknown keys "
                                   f"{', '.join(sorted(unknown))}")
    if "schedule" not in entry:
        raise ImproperlyConfigured(f"beat_schedule[{key!r}] has no 'schedule'")
    name = entry["task"]
    tz = str(app.conf.timezone or "UTC")
    try:
        rule = to_rule(entry["schedule"], tz)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"beat_schedule[{key!r}]: {exc}") from None
    options = dict(entry.get("options") or {})
    ignored = set(options) - _HONOURED - set(AMQP_ONLY)
    if ignored:
        log.warning("beat_schedule[%r]: options %s are not applied to periodic jobs "
                    "(only queue and priority are)", key, ", ".join(sorted(ignored)))
    task = app.tasks.get(name)
    args = tuple(entry.get("args") or ())
    kwargs = dict(entry.get("kwargs") or {})
    call = {**task_defaults(task), **{k: v for k, v in options.items() if k in _HONOURED}}
    routed = app.route(name, args, kwargs, call, task)
    return app.add_periodic(key, name, cron=rule.cron, every=rule.every, tz=rule.tz,
                            args=args, kwargs=kwargs, queue=routed["queue"],
                            priority=app.celery_priority(routed.get("priority")))
