import datetime as dt
import math
import uuid
from decimal import Decimal

import pytest

from pgqueue import encoding


@pytest.mark.parametrize("value", [
    None, 1, 1.5, "é", [1, [2, {"a": None}]], {"k": [True, False]},
    dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    dt.date(2026, 3, 29),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Decimal("12345678901234567890.000000001"),
    {"nested": [dt.date(2020, 1, 1), Decimal("1.10")]},
])
def test_round_trip(value):
    assert encoding.loads(encoding.dumps(value)) == value


def test_tuples_come_back_as_lists():
    assert encoding.loads(encoding.dumps((1, 2))) == [1, 2]


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", math.nan, [math.inf]])
def test_unencodable_values_raise_type_error(value):
    with pytest.raises(TypeError):
        encoding.dumps(value)


def test_type_error_names_the_type():
    class Invoice:
        pass

    with pytest.raises(TypeError, match="Invoice"):
        encoding.dumps({"invoice": Invoice()})


# -- unambiguous: plain dicts that look like tags ----------------------------
@pytest.mark.parametrize("value", [
    {"$uuid": "x"}, {"$date": "x"}, {"$decimal": "abc"}, {"$datetime": "2026-01-01"},
    {"$uuid": "12345678-1234-5678-1234-567812345678"}, {"$dict": ["$a", 1]}, {"$": None},
    {"$x": {"$uuid": {"$date": dt.date(2020, 1, 1)}}}, [{"$decimal": Decimal("1")}],
    {"$uuid": "x", "other": 1},
])
def test_dicts_that_look_like_tags_round_trip(value):
    back = encoding.loads(encoding.dumps(value))
    assert back == value and type(back) is type(value)


def test_only_one_key_dollar_dicts_are_escaped():
    assert encoding.dumps({"$a": 1, "b": 2}) == '{"$a":1,"b":2}'
    assert encoding.dumps({"$uuid": "x"}) == '{"$dict":["$uuid","x"]}'
    assert encoding.dumps([uuid.UUID(int=1)]) == \
        '[{"$uuid":"00000000-0000-0000-0000-000000000001"}]'


def test_rows_stored_by_the_older_encoder_still_decode():
    assert encoding.loads('{"$uuid":"00000000-0000-0000-0000-000000000001"}') == \
        uuid.UUID(int=1)
    # Unparseable tags can only be plain dicts the older encoder stored as they were.
    assert encoding.loads('[{"$uuid":"x"},{"$date":"x"},{"$decimal":"abc"}]') == \
        [{"$uuid": "x"}, {"$date": "x"}, {"$decimal": "abc"}]
    assert encoding.loads('{"$datetime":1}') == {"$datetime": 1}
    assert encoding.loads('{"$dict":"not a pair"}') == {"$dict": "not a pair"}


@pytest.mark.parametrize("text", ["", "nope", '{"a":', "[1,]", "\ud800", "[" * 100_000])
def test_undecodable_text_raises_a_value_error_with_the_raw_text(text):
    with pytest.raises(encoding.UndecodableValue, match="can't be decoded") as info:
        encoding.loads(text)
    assert isinstance(info.value, ValueError) and info.value.text == text


def test_undecodable_non_text():
    with pytest.raises(encoding.UndecodableValue):
        encoding.loads(None)  # type: ignore[arg-type]


# -- strings Postgres can't store --------------------------------------------
@pytest.mark.parametrize(("value", "message"), [
    (["a\x00b"], r"string at args\[0\] contains a NUL byte"),
    ([{"name": "\x00"}], r"string at args\[0\]\['name'\] contains a NUL byte"),
    ({"k\x00": 1}, r"a key of args contains a NUL byte"),
    ([1, ["\ud800"]], r"string at args\[1\]\[0\] contains a lone surrogate \('\\ud800'\)"),
    ({"a": {"\udfff": 1}}, r"a key of args\['a'\] contains a lone surrogate"),
])
def test_strings_postgres_cant_store_are_refused_naming_where(value, message):
    with pytest.raises(encoding.UnstorableValue, match=message) as info:
        encoding.dumps(value, "args")
    assert isinstance(info.value, ValueError)


def test_an_escaped_backslash_before_u0000_is_fine():
    value = ["\\u0000", {"k": "\\u0000é"}]
    assert encoding.loads(encoding.dumps(value)) == value


def test_astral_characters_are_fine():
    value = ["😀", "\U0010ffff"]
    assert encoding.loads(encoding.dumps(value)) == value


# -- values JSON or jsonb would change ------------------------------------------
@pytest.mark.parametrize("value", [1e16, -1.5e300, 1.7976931348623157e308, 1e-7, 5e-324,
                                   -0.0, 123456789.125])
def test_floats_stay_floats(value):
    text = encoding.dumps([value])
    assert "e+" not in text  # jsonb would print 1e+16 as 10000000000000000, an int
    back = encoding.loads(text)[0]
    assert type(back) is float and repr(back) == repr(value)


def test_e_plus_inside_strings_is_left_alone():
    value = ["1e+16", {"a+e+1": 1e20}, 'quote " 2e+5']
    assert encoding.loads(encoding.dumps(value)) == value


def test_large_ints_round_trip_and_absurd_ones_are_refused():
    assert encoding.loads(encoding.dumps([10**4000, -(2**200)])) == [10**4000, -(2**200)]
    with pytest.raises(ValueError, match="args can't be stored"):
        encoding.dumps([10**5000], "args")


def test_circular_and_too_deep_values_are_value_errors():
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        encoding.dumps(loop)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        encoding.dumps(deep)


def test_non_string_keys_become_strings():
    assert encoding.loads(encoding.dumps({1: "a", 2.5: "b", None: "c", False: "d"})) == \
        {"1": "a", "2.5": "b", "null": "c", "false": "d"}


# -- size cap ----------------------------------------------------------------
def test_check_size():
    encoding.check_size("x" * 100, 100, "result")
    encoding.check_size("é" * 50, 100, "result")  # 100 bytes of UTF-8
    with pytest.raises(encoding.ValueTooLarge, match="result is 102 bytes of JSON, over the "
                                                     "limit of 100 bytes") as info:
        encoding.check_size("é" * 51, 100, "result")
    assert isinstance(info.value, ValueError)
    assert (info.value.size, info.value.limit) == (102, 100)
    with pytest.raises(encoding.ValueTooLarge, match="args is 1,000,001 bytes"):
        encoding.check_size("x" * 1_000_001, 1_000_000, "args")
