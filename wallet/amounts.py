"""Amounts: decimal coin text <-> integer base units (1 coin = 10^8 base units).

Parsing goes through ``decimal.Decimal`` and never a float, so ``0.1 + 0.2``
surprises cannot happen: ``"1.5"`` is exactly 150000000 base units, and a
value with more than 8 decimals is refused rather than rounded.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from consensus.networks import COIN

DECIMALS = 8
U64_MAX = (1 << 64) - 1
_AMOUNT_RE = re.compile(r"^[0-9]+(\.[0-9]*)?$|^\.[0-9]+$")


class AmountError(ValueError):
    """Text that is not an acceptable amount; the message says why and what to type instead."""


def parse_amount(text: str, *, allow_zero: bool = False, what: str = "amount") -> int:
    """Coins as decimal text (``"1.5"``, ``"0.00000001"``, ``"10"``) to base units.

    Accepts plain digits with an optional decimal point; rejects signs,
    exponents, ``nan``/``inf``, thousands separators, more than 8 decimals,
    zero (unless ``allow_zero``) and values beyond u64.
    """
    s = str(text).strip()
    if not _AMOUNT_RE.match(s):
        raise AmountError(f"{what} {text!r} is not a plain decimal number of coins (e.g. 1.5 or 0.00001)")
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise AmountError(f"{what} {text!r} is not a decimal number") from None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMALS and value != value.quantize(Decimal(1).scaleb(-DECIMALS)):
        raise AmountError(f"{what} {text!r} has more than {DECIMALS} decimals; the smallest unit is 0.00000001")
    units = int(value * COIN)
    if units == 0 and not allow_zero:
        raise AmountError(f"{what} must be more than zero, found {text!r}")
    if units > U64_MAX:
        raise AmountError(f"{what} {text!r} is too large (at most {format_amount(U64_MAX)} coins)")
    return units


def format_amount(units: int) -> str:
    """Base units to coins with exactly 8 decimals: ``150000000 -> "1.50000000"``."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(int(units)), COIN)
    return f"{sign}{whole}.{frac:0{DECIMALS}d}"
