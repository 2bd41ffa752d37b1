"""Amounts: decimal coin text <-> integer base units (1 coin = 10^8 base units).

Parsing is exact integer arithmetic on the digits (never a float, never a
``decimal`` context with its 28-digit precision), so ``0.1 + 0.2`` surprises
cannot happen: ``"1.5"`` is exactly 150000000 base units, and a value with
more than 8 decimals is refused rather than rounded. Every malformed or
out-of-range text raises ``AmountError`` with a message saying what is wrong.
"""

from __future__ import annotations

import re

from consensus.networks import COIN

DECIMALS = 8
U64_MAX = (1 << 64) - 1
_U64_MAX_DIGITS = len(str(U64_MAX // COIN))  # whole coins never need more digits than this
_AMOUNT_RE = re.compile(r"(?P<whole>[0-9]*)(?:\.(?P<frac>[0-9]*))?", re.ASCII)
_EXPONENT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]*", re.ASCII)
_NON_FINITE = {"nan", "snan", "qnan", "inf", "infinity"}
_HINT = "type a plain decimal number of coins (e.g. 1.5 or 0.00001)"
_SHOW_MAX = 40

assert COIN == 10**DECIMALS


class AmountError(ValueError):
    """Text that is not an acceptable amount; the message says why and what to type instead."""


def _show(text: str) -> str:
    """``text`` quoted for a message, shortened if it is long."""
    return repr(text if len(text) <= _SHOW_MAX else text[:_SHOW_MAX] + "...")


def parse_amount(text: str, *, allow_zero: bool = False, what: str = "amount") -> int:
    """Coins as decimal text (``"1.5"``, ``"0.00000001"``, ``"10"``) to base units.

    Accepts ASCII digits with an optional decimal point (surrounding spaces are
    ignored); rejects the empty text, signs, exponents, ``nan``/``inf``,
    thousands separators, more than 8 decimals (beyond trailing zeros), zero
    (unless ``allow_zero``) and values beyond u64 base units.
    """
    raw = str(text)
    s = raw.strip()
    shown = _show(raw)
    if not s:
        raise AmountError(f"{what} is empty; {_HINT}")
    if s.lstrip("+-").lower() in _NON_FINITE:
        raise AmountError(f"{what} {shown} is not a number of coins (NaN and Infinity are not amounts); {_HINT}")
    if s[0] == "-":
        raise AmountError(f"{what} {shown} is negative; {_HINT}")
    if s[0] == "+":
        raise AmountError(f"{what} {shown} has a sign; {_HINT}")
    if _EXPONENT_RE.fullmatch(s):
        raise AmountError(f"{what} {shown} uses exponent notation; write the digits out (e.g. 1000 or 0.00001)")
    m = _AMOUNT_RE.fullmatch(s)
    if m is None or not (m["whole"] or m["frac"]):
        raise AmountError(f"{what} {shown} is not a plain decimal number of coins; {_HINT}")
    whole = m["whole"].lstrip("0")
    frac = (m["frac"] or "").rstrip("0")
    if len(frac) > DECIMALS:
        raise AmountError(f"{what} {shown} has more than {DECIMALS} decimals; the smallest unit is 0.00000001")
    too_large = AmountError(f"{what} {shown} is too large (at most {format_amount(U64_MAX)} coins)")
    if len(whole) > _U64_MAX_DIGITS:  # checked before int(): no huge conversions
        raise too_large
    units = int(whole or "0") * COIN + int(frac.ljust(DECIMALS, "0"))
    if units > U64_MAX:
        raise too_large
    if units == 0 and not allow_zero:
        raise AmountError(f"{what} must be more than zero, found {shown}")
    return units


def format_amount(units: int) -> str:
    """Base units to coins with exactly 8 decimals: ``150000000 -> "1.50000000"``."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(int(units)), COIN)
    return f"{sign}{whole}.{frac:0{DECIMALS}d}"
