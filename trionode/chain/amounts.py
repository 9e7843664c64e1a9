"""Exact amounts: integers of the smallest unit on the inside, decimal coins at the edges."""

from decimal import Decimal, Inexact, InvalidOperation, localcontext
from typing import Final

DECIMALS: Final = 8
# One coin in smallest units (like Bitcoin's satoshi): 8 decimals keeps every amount an int.
COIN: Final = 10**DECIMALS
# No amount, balance or reward may exceed this: keeps every value inside msgpack's uint64.
MAX_MONEY: Final = 2**63 - 1


def parse_coins(text: str | int | float | Decimal) -> int:
    """Parse a decimal coin amount ("12.5") into units; raise ValueError on anything inexact."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {text!r}")
    # Exact or nothing: the default 28-digit context would round "1.000000000000000000000000000001"
    # to 1 coin, underflow "1e-9999999" to 0 and raise decimal.Overflow on "1e999999".
    with localcontext() as ctx:
        ctx.traps[Inexact] = True  # Overflow and Underflow are Inexact too
        try:
            units = value * COIN
        except Inexact:
            raise ValueError(f"more than {DECIMALS} decimals or out of range: {text!r}") from None
    if units != units.to_integral_value():
        raise ValueError(f"more than {DECIMALS} decimals: {text!r}")
    if not 0 <= units <= MAX_MONEY:
        raise ValueError(f"amount out of range: {text!r}")
    return int(units)


def format_coins(units: int) -> str:
    """Units as a decimal coin string without trailing zeros: 5_000_000_000 -> "50"."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), COIN)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{DECIMALS}d}".rstrip("0")


def coins_json(units: int) -> int | float:
    """Units as a JSON number of coins (INTERFACE.md): 50 or 12.5.

    Floats are exact for every amount below 10**15 units (10 million coins): a float keeps 15
    significant decimal digits (DBL_DIG), so its shortest repr is the exact decimal. From 16
    digits on (e.g. 2**53 - 1 units) the last decimal may be lost.
    """
    if units % COIN == 0:
        return units // COIN
    return float(format_coins(units))
