"""JSON in and out for task arguments and results; never pickle.

Beyond plain JSON, four types round-trip, written as one-key tagged objects:
``{"$datetime": "2026-01-01T00:00:00+00:00"}``, ``$date``, ``$uuid`` and
``$decimal`` (as a string, so no precision is lost). Tuples come back as lists.
Anything else raises ``TypeError`` naming the value's type, before a job is
written, so a bad argument fails at the caller and not later in a worker.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, (set, frozenset)):
        raise TypeError(
            f"a {type(value).__name__} is not JSON serialisable; pass a list instead"
        )
    raise TypeError(
        f"a value of type {type(value).__module__}.{type(value).__qualname__} is not "
        "JSON serialisable; pgqueue stores arguments and results as JSON (plus datetime, "
        "date, UUID and Decimal): pass plain data such as ids, not objects"
    )


_DECODERS: dict[str, Callable[[str], Any]] = {
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$uuid": uuid.UUID,
    "$decimal": Decimal,
}


def _object_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, value),) = obj.items()
        decode = _DECODERS.get(key)
        if decode is not None and isinstance(value, str):
            return decode(value)
    return obj


_encoder = json.JSONEncoder(default=_default, ensure_ascii=False, allow_nan=False,
                            separators=(",", ":"))


def dumps(value: Any) -> str:
    """Encode to JSON text; raises TypeError for anything that can't round-trip."""
    try:
        return _encoder.encode(value)
    except ValueError as exc:  # NaN/Infinity: not valid JSON, Postgres' jsonb rejects them
        raise TypeError(f"{exc}; NaN and Infinity can't be stored as JSON") from None


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_object_hook)
