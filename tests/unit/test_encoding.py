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
