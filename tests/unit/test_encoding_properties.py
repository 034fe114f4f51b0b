"""Property tests of the encoding: what dumps accepts comes back exactly; the rest raises.

Values are drawn from a mix of storable and poison leaves (NUL bytes, lone
surrogates, NaN/inf floats, sets, bytes, objects, absurd ints). A reference
predicate says which trees are storable; dumps must agree with it.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from pgqueue import encoding

BOUNDED = settings(max_examples=300, deadline=None)

_storable_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
_any_text = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"]),  # surrogates
                              st.just("\x00")))
_tag_like = st.sampled_from(["$uuid", "$date", "$datetime", "$decimal", "$dict", "$", "$x"])
_keys = st.one_of(_storable_text, _tag_like, _storable_text.map(lambda s: "$" + s))
_offsets = st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59),
                         max_value=dt.timedelta(hours=23, minutes=59))
_zones = st.one_of(st.none(), st.just(dt.UTC), _offsets.map(dt.timezone))

storable_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(allow_nan=False, allow_infinity=False),
    _storable_text, _tag_like,
    st.datetimes(timezones=_zones), st.dates(), st.uuids(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("NaN"), Decimal("-sNaN"), Decimal("-0"), Decimal("1.10"),
                     Decimal("1E+30")]),
)
poison_leaves = st.one_of(
    _any_text, st.sampled_from(["a\x00", "\ud800", "x\udfffy", "\x00"]),
    st.sampled_from([math.nan, math.inf, -math.inf, {1}, frozenset(), b"b", object(),
                     dt.timedelta(1), dt.time(1)]),
    st.builds(pow, st.just(10), st.just(4400)),  # repr() of such an int itself raises
)


def _trees(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> Any:
    return st.recursive(
        leaves,
        lambda kids: st.one_of(st.lists(kids, max_size=4), st.tuples(kids, kids),
                               st.dictionaries(keys, kids, max_size=4)),
        max_leaves=20,
    )


def storable(value: Any) -> bool:
    """The reference: what the module docstring promises to store."""
    if isinstance(value, str):
        return "\x00" not in value and not any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) < 10**4300
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (dt.date, uuid.UUID, Decimal)):
        return True
    if isinstance(value, (list, tuple)):
        return all(storable(v) for v in value)
    if isinstance(value, dict):
        return all(storable(k) and storable(v) for k, v in value.items())
    return False


def same(sent: Any, back: Any, jsonb: bool = False) -> bool:
    """Exactly equal, types included; tuples come back as lists. With ``jsonb``, -0.0
    may come back 0.0 (numeric has no negative zero; they are equal)."""
    if isinstance(sent, tuple):
        sent = list(sent)
    if type(sent) is not type(back):
        return False
    if isinstance(sent, list):
        return len(back) == len(sent) and all(same(s, b, jsonb)
                                              for s, b in zip(sent, back, strict=True))
    if isinstance(sent, dict):
        return sent.keys() == back.keys() and all(same(v, back[k], jsonb)
                                                  for k, v in sent.items())
    if isinstance(sent, float) and jsonb:
        return sent == back
    if isinstance(sent, (float, Decimal)):
        return repr(sent) == repr(back)  # tells -0.0 from 0.0, 1.10 from 1.1, keeps NaN
    if isinstance(sent, dt.datetime):
        return sent == back and sent.utcoffset() == back.utcoffset()
    return bool(sent == back)


@BOUNDED
@given(_trees(storable_leaves, _keys))
def test_every_storable_value_round_trips_exactly(value: Any) -> None:
    assert same(value, encoding.loads(encoding.dumps(value)))


@BOUNDED
@given(_trees(st.one_of(storable_leaves, poison_leaves), st.one_of(_keys, _any_text)))
def test_dumps_accepts_exactly_the_storable_values(value: Any) -> None:
    event("storable" if storable(value) else "refused")
    if storable(value):
        assert same(value, encoding.loads(encoding.dumps(value)))
    else:
        try:
            encoding.dumps(value, "args")
        except (TypeError, ValueError):
            return
        raise AssertionError(f"dumps accepted {value!r}")


@BOUNDED
@given(st.one_of(_any_text, st.from_regex(r'\A[\[\]{}",:0-9e.$\\-]*\Z')))
def test_loads_of_any_text_returns_or_raises_undecodable(text: str) -> None:
    try:
        encoding.loads(text)
    except encoding.UndecodableValue as exc:
        assert exc.text == text
