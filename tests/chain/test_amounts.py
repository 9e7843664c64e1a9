"""Amounts are exact integers of 1e-8 coin inside; decimal strings at the edges."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionode.chain.amounts import COIN, MAX_MONEY, coins_json, format_coins, parse_coins


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("12.5", 1_250_000_000),
        ("50", 50 * COIN),
        ("0.00000001", 1),
        (" 7 ", 7 * COIN),
        ("1e2", 100 * COIN),
        ("12.50000000000000000000000000000000000000", 1_250_000_000),  # trailing zeros are exact
        ("0", 0),
        ("92233720368.54775807", MAX_MONEY),
        (Decimal("0.1"), 10_000_000),
        (3, 3 * COIN),
    ],
)
def test_parse_coins_exact(text: str | int | Decimal, units: int) -> None:
    result = parse_coins(text)
    assert result == units
    assert type(result) is int


@pytest.mark.parametrize(
    "text",
    [
        "0.000000001",  # 9 decimals
        "12.123456789",
        # More significant digits than Decimal's default 28-digit context: rounding must not
        # hide the ninth-and-later decimals.
        "1.000000000000000000000000000001",
        "92233720368.5477580700000000000000000001",
        "1e-9999999",  # underflows to 0 in a rounding context
        "1e999999",  # overflows the default context
        "1e999999999",
        "-1",
        "-0.5",
        "92233720368.54775808",  # MAX_MONEY + 1 unit
        "abc",
        "",
        "NaN",
        "Infinity",
        "1,5",
    ],
)
def test_parse_coins_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_coins(text)


def test_floats_never_hold_amounts() -> None:
    # A float is read through its shortest repr, so 0.1 is exactly 10,000,000 units, and a
    # float carrying binary noise is refused instead of rounded.
    assert parse_coins(0.1) == 10_000_000
    assert type(parse_coins(0.1)) is int
    with pytest.raises(ValueError):
        parse_coins(0.1 + 0.2)  # 0.30000000000000004


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (1_250_000_000, "12.5"),
        (50 * COIN, "50"),
        (1, "0.00000001"),
        (0, "0"),
        (-150_000_000, "-1.5"),
        (MAX_MONEY, "92233720368.54775807"),
    ],
)
def test_format_coins(units: int, text: str) -> None:
    assert format_coins(units) == text


def test_coins_json() -> None:
    assert coins_json(50 * COIN) == 50
    assert type(coins_json(50 * COIN)) is int
    assert coins_json(1_250_000_000) == 12.5


@given(st.integers(min_value=0, max_value=MAX_MONEY))
def test_format_parse_roundtrip(units: int) -> None:
    assert parse_coins(format_coins(units)) == units


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_coins_json_is_exact_below_10_million_coins(units: int) -> None:
    # Up to 15 significant digits survive a float exactly (DBL_DIG); 8 are decimals.
    value = coins_json(units)
    assert Decimal(repr(value)) * COIN == units


def test_coins_json_is_not_exact_from_16_digits() -> None:
    # Documents the limit: 90,071,992.54740991 coins has 16 digits, one too many for a float.
    assert coins_json(2**53 - 1) != Decimal("90071992.54740991")


def _exact_units(value: Decimal) -> int | None:
    """An independent oracle: the units of ``value`` by integer arithmetic, None if fractional."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient == 0:
        return 0
    while coefficient % 10 == 0:
        coefficient //= 10
        exponent += 1
    if exponent + 8 < 0:
        return None  # a nonzero digit beyond the eighth decimal
    if exponent + 8 > 30:
        return MAX_MONEY + 1  # far out of range; no need to build the integer
    return (-1 if sign else 1) * coefficient * 10 ** (exponent + 8)


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_parse_coins_accepts_exactly_the_representable(value: Decimal) -> None:
    units = _exact_units(value)
    if units is None or not 0 <= units <= MAX_MONEY:
        with pytest.raises(ValueError):
            parse_coins(value)
    else:
        assert parse_coins(value) == units
