"""``task_routes``: which queue a task's jobs go to, decided as Celery decides it.

A route is looked up by task name in each router of ``task_routes`` in order,
first answer wins. A router is a dict (exact names first, then ``*`` globs and
compiled regexes in the dict's order), a list of ``(pattern, route)`` pairs, a
function ``(name, args, kwargs, options, task=None, **kw)``, an object with
``route_for_task``, or the dotted path of a function. A route is a dict
(``{"queue": "feeds"}``, maybe with ``priority``) or a queue name.

The result merges as Celery's ``lpmerge``: options given to the call (and the
task's own ``queue=``) win over the route, the route over
``task_default_queue``. ``exchange`` and ``routing_key`` are AMQP's: dropped.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pgqueue.celery.conf import import_object
from pgqueue.errors import ConfigurationError

Route = dict[str, Any]
Router = Callable[[str, Sequence[Any], Mapping[str, Any], Mapping[str, Any]], Route | None]
AMQP_ONLY = ("exchange", "exchange_type", "routing_key", "delivery_mode")


def glob_to_re(glob: str) -> re.Pattern[str]:
    """A ``*`` glob (``"feed.tasks.*"``) as a regex over the whole name."""
    return re.compile("^" + ".*".join(re.escape(part) for part in glob.split("*")) + "$")


def as_route(value: object) -> Route | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"queue": value}
    if isinstance(value, Mapping):
        route = {k: v for k, v in value.items() if k not in AMQP_ONLY}
        queue = route.get("queue")
        if queue is not None and not isinstance(queue, str):
            # A kombu Queue object: its name is what pgqueue routes by.
            route["queue"] = getattr(queue, "name", queue)
        return route
    raise TypeError(f"a task route must be a dict like {{'queue': 'name'}} or a queue name, "
                    f"not {type(value).__name__}")


class MapRoute:
    """A dict or list of ``(pattern, route)``: exact names, then patterns in order."""

    def __init__(self, pairs: Mapping[Any, Any] | Sequence[tuple[Any, Any]]) -> None:
        items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
        self.exact: dict[str, Route | None] = {}
        self.patterns: list[tuple[re.Pattern[str], Route | None]] = []
        for key, value in items:
            route = as_route(value)
            if isinstance(key, re.Pattern):
                self.patterns.append((key, route))
            elif isinstance(key, str) and "*" in key:
                self.patterns.append((glob_to_re(key), route))
            elif isinstance(key, str):
                self.exact.setdefault(key, route)
            else:
                raise TypeError(f"task_routes keys are task names, globs or compiled "
                                f"regexes, not {key!r}")

    def __call__(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any],
                 options: Mapping[str, Any], task: Any = None, **kw: Any) -> Route | None:
        if name in self.exact:
            return self.exact[name]
        for pattern, route in self.patterns:
            if pattern.match(name):
                return route
        return None


def _router(value: object) -> Callable[..., Any]:
    if isinstance(value, str):
        value = import_object(value)
    if isinstance(value, Mapping):
        return MapRoute(value)
    if isinstance(value, (list, tuple)) and all(
            isinstance(p, tuple) and len(p) == 2 for p in value):
        return MapRoute(value)
    method = getattr(value, "route_for_task", None)
    if callable(method):  # Celery 3's router classes: route_for_task(task, args, kwargs)
        return lambda name, args, kwargs, options, task=None, **kw: method(name, args, kwargs)
    if callable(value):
        return value
    raise TypeError(f"task_routes entries are dicts, (pattern, route) lists, functions or "
                    f"their dotted paths, not {type(value).__name__}")


def routers(task_routes: object) -> list[Callable[..., Any]]:
    """``conf.task_routes`` as a list of routers, in lookup order."""
    if task_routes is None:
        return []
    if isinstance(task_routes, (Mapping, str)) or callable(task_routes):
        return [_router(task_routes)]
    if isinstance(task_routes, (list, tuple)):
        return [_router(r) for r in task_routes]
    raise TypeError(f"task_routes must be a dict, a list of routers, or a function, "
                    f"not {type(task_routes).__name__}")


def lookup(routers_: Sequence[Callable[..., Any]], name: str, args: Sequence[Any],
           kwargs: Mapping[str, Any], options: Mapping[str, Any], task: Any = None
           ) -> Route | None:
    for router in routers_:
        route = as_route(router(name, args, kwargs, options, task=task))
        if route:
            return route
    return None


def merge(route: Route | None, options: Mapping[str, Any], default_queue: str,
          default_priority: int | None) -> dict[str, Any]:
    """Celery's merge: the call's options over the route, over the defaults."""
    merged: dict[str, Any] = dict(route or {})
    merged.update({k: v for k, v in options.items() if v is not None})
    for k in AMQP_ONLY:
        merged.pop(k, None)
    if merged.get("queue") is None:
        merged["queue"] = default_queue
    if merged.get("priority") is None and default_priority is not None:
        merged["priority"] = default_priority
    return merged


def task_defaults(task: object) -> dict[str, Any]:
    """A Celery task's own call options (its ``queue=``...), under a call's; {} if none."""
    own = getattr(task, "_call_defaults", None)
    return dict(own()) if callable(own) else {}


PRIORITY_CONVENTIONS = ("amqp", "redis")


def priority_convention(conf: Mapping[str, Any]) -> str:
    """``"amqp"`` (higher runs first, the default) or ``"redis"`` (0 runs first)."""
    chosen = conf.get("task_priority_convention")
    if chosen is not None:
        if chosen not in PRIORITY_CONVENTIONS:
            raise ConfigurationError(
                f"task_priority_convention={chosen!r}: choose 'amqp' (higher runs first, "
                "the default) or 'redis' (0 runs first)")
        return str(chosen)
    options = conf.get("broker_transport_options") or {}
    if "priority_steps" in options or options.get("queue_order_strategy") == "priority":
        return "redis"
    return "amqp"


def celery_priority(conf: Mapping[str, Any], priority: int | None) -> int | None:
    """A Celery priority as pgqueue's (higher runs first).

    AMQP's convention (the default): higher is higher, capped at
    ``task_queue_max_priority`` when set, as RabbitMQ caps it. Redis'
    (``task_priority_convention="redis"`` or ``priority_steps`` in
    ``broker_transport_options``): 0 runs first, so the sign is turned; with
    ``priority_steps``, a priority counts as the step at or below it.
    """
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, not {type(priority).__name__}")
    if priority_convention(conf) == "redis":
        steps = sorted((conf.get("broker_transport_options") or {}).get("priority_steps")
                       or ())
        if steps:
            priority = steps[max(bisect.bisect_right(steps, priority) - 1, 0)]
        return -priority
    cap = conf.get("task_queue_max_priority")
    return min(priority, cap) if cap is not None else priority
