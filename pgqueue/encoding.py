"""JSON in and out for task arguments and results; never pickle.

What is stored
    Plain JSON, plus four types written as one-key tagged objects:
    ``{"$datetime": "2026-01-01T00:00:00+00:00"}``, ``$date``, ``$uuid`` and
    ``$decimal`` (a string, so no precision is lost; ``NaN`` and ``Infinity``
    included). A plain dict whose single key starts with ``$`` (which could be
    read as a tag) is escaped as ``{"$dict": [key, value]}``, so every dict
    comes back as the dict it was. Decoding only ever reads one-key objects as
    tags, so dicts with several keys are never escaped.

What changes on the way
    Tuples come back as lists; subclasses of str, int, float, list and dict
    (enums, say) come back as the base type; non-string dict keys (``1``,
    ``True``, ``None``) come back as strings, as in every JSON encoder; an aware
    datetime comes back with a fixed-offset ``timezone`` (same instant, same
    offset; a zoneinfo name is not kept); jsonb keeps neither key order nor the
    sign of -0.0 (numeric has no negative zero).
    Floats of 1e16 and above are written in full (``10000000000000000.0``):
    jsonb would print ``1e+16`` as an integer and it would come back an int.

What is refused, before anything is written
    ``TypeError`` for values of other types and for NaN/Infinity floats (JSON
    and jsonb have neither); ``UnstorableValue`` (a ``ValueError``) for strings
    with a NUL byte (jsonb refuses ``\\u0000``) or a lone surrogate (UTF-8 has
    none), naming where the string is; ``ValueError`` for circular or absurdly
    deep values and for ints of more than 4,300 digits. :func:`check_size`
    refuses encoded text over a size cap with ``ValueTooLarge``.

Reading old rows
    Rows written before the ``$dict`` escape decode as before. A tag whose text
    doesn't parse (``{"$uuid": "x"}``) can only be a plain dict stored by that
    older encoder, so it is returned as that dict. Text that isn't JSON at all
    raises ``UndecodableValue`` (a ``ValueError``) carrying the raw text, so a
    reader can show it instead of failing.

Speed
    The hot path is one C-encoder pass and a few substring tests over the
    text; only a hit (a ``$`` key, a NUL escape, a surrogate, a big float)
    walks the value. One module-level decoder serves every :func:`loads`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from _json import make_encoder
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any


class UnstorableValue(ValueError):
    """A string Postgres can't store (a NUL byte, a lone surrogate)."""


class UndecodableValue(ValueError):
    """Stored text that isn't pgqueue's JSON; ``.text`` is the raw text, to show."""

    def __init__(self, message: str, text: object) -> None:
        super().__init__(message)
        self.text = text


class ValueTooLarge(ValueError):
    """Encoded text over a size cap; ``.size`` and ``.limit`` are in bytes."""

    def __init__(self, message: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


# jsonb's own ceiling on a value (a larger one fails the INSERT, whatever the cap).
JSONB_MAX_BYTES = 268_435_455

_TAG_START = '{"$'  # can't occur inside a JSON string: there '"' is written '\"'
_ESCAPE = "$dict"
_NUL_ESCAPE = "\\u0000"  # how the encoder writes a NUL (or an escaped backslash + u0000)
_SURROGATE = re.compile("[\ud800-\udfff]")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_BIG_FLOAT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?e\+\d+)')


def _tag(value: Any) -> dict[str, str]:
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


def _encode(value: Any) -> tuple[str, int]:
    """(JSON text, how many tags the encoder wrote); one C pass."""
    tags = 0

    def default(obj: Any) -> Any:
        nonlocal tags
        tagged = _tag(obj)
        tags += 1
        return tagged

    encoder = make_encoder({}, default, json.encoder.encode_basestring, None, ":", ",",
                           False, False, False)
    return "".join(encoder(value, 0)), tags


def _escaped(value: Any) -> Any:
    """``value`` with every one-key ``$`` dict wrapped in the escape tag."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, item),) = value.items()
            if isinstance(key, str) and key.startswith("$"):
                return {_ESCAPE: [key, _escaped(item)]}
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escaped(item) for item in value]
    return value


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every (path, string) in ``value``, dict keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield f"a key of {path}", key
            yield from _strings(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def _refuse_bad_strings(value: Any, what: str) -> None:
    for path, text in _strings(value, what):
        bad = _BAD_CHAR.search(text)
        if bad is None:
            continue
        place = path if path.startswith("a key") else f"the string at {path}"
        if bad.group() == "\x00":
            raise UnstorableValue(f"{place} contains a NUL byte (\\x00), which Postgres "
                                  "can't store; remove it or encode the data (base64)")
        raise UnstorableValue(
            f"{place} contains a lone surrogate ({bad.group()!r}), which UTF-8 and so "
            "Postgres can't store; was it decoded with errors='surrogateescape'?")


def _full_float(match: re.Match[str]) -> str:
    number = match.group(1)
    if number is None:  # a string: left as it is
        return match.group()
    return format(Decimal(number), "f") + ".0"


def dumps(value: Any, what: str = "value") -> str:
    """Encode to JSON text Postgres can store; ``what`` names the value in errors
    (``"args"``, ``"result"``). Raises TypeError or ValueError for anything that
    can't round-trip (see the module docstring)."""
    try:
        text, tags = _encode(value)
        if _TAG_START in text and text.count(_TAG_START) != tags:
            text, _ = _encode(_escaped(value))  # a user dict that looks like a tag
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to store as JSON") from None
    except ValueError as exc:
        if str(exc).startswith("Out of range float"):  # jsonb has no NaN or Infinity
            raise TypeError(f"{what}: {exc}; NaN and Infinity can't be stored as JSON") \
                from None
        raise ValueError(f"{what} can't be stored as JSON: {exc}") from None
    if _NUL_ESCAPE in text or (not text.isascii() and _SURROGATE.search(text)):
        _refuse_bad_strings(value, what)  # a hit on an escaped backslash is no error
    if "e+" in text:
        text = _BIG_FLOAT.sub(_full_float, text)
    return text


def check_size(text: str, limit: int, what: str) -> None:
    """Raise ValueTooLarge if ``text`` is over ``limit`` bytes of UTF-8."""
    if len(text) * 4 <= limit:  # no character takes more than 4 bytes: surely fits
        return
    size = len(text) if len(text) > limit else len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ValueTooLarge(
            f"{what} is {size:,} bytes of JSON, over the limit of {limit:,} bytes; "
            "store large data elsewhere (a file, a table) and pass its id",
            size, limit)


def _decimal(text: str) -> Decimal:
    number = Decimal(text)
    if number.is_nan() and "nan" not in text.lower():  # a context without the trap
        raise ValueError(text)
    return number


def _datetime(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None and not value.utcoffset() and text[-7:-6] == "." \
            and text[-16:-7] in ("+00:00:00", "-00:00:00"):
        # Python 3.11 reads an offset of only microseconds (+00:00:00.000001) as UTC.
        micro = int(text[-6:]) * (-1 if text[-16] == "-" else 1)
        value = value.replace(tzinfo=dt.timezone(dt.timedelta(microseconds=micro)))
    return value


_DECODERS: dict[str, Callable[[str], Any]] = {
    "$datetime": _datetime,
    "$date": dt.date.fromisoformat,
    "$uuid": uuid.UUID,
    "$decimal": _decimal,
}


def _object_hook(obj: dict[str, Any]) -> Any:
    if len(obj) != 1:
        return obj
    ((key, value),) = obj.items()
    decode = _DECODERS.get(key)
    if decode is not None:
        if type(value) is not str:
            return obj
        try:
            return decode(value)
        except (ValueError, ArithmeticError):  # a plain dict an older encoder stored
            return obj
    if key == _ESCAPE and type(value) is list and len(value) == 2 \
            and type(value[0]) is str and value[0].startswith("$"):
        return {value[0]: value[1]}
    return obj


_decoder = json.JSONDecoder(object_hook=_object_hook)


def loads(text: str) -> Any:
    """Decode text written by :func:`dumps` (or by an older pgqueue).

    Raises UndecodableValue, with the raw text, for anything that isn't JSON.
    """
    try:
        return _decoder.decode(text)
    except (ValueError, TypeError, RecursionError) as exc:
        shown = text[:200] if isinstance(text, str) else text
        raise UndecodableValue(f"stored value can't be decoded as JSON ({exc}): {shown!r}",
                               text) from None
