"""Balanced radix-128 digits: how a wide integer matrix becomes int7 job matrices (docs/protocol.md section 9).

A job multiplies matrices whose entries lie in ``[-64, 63]``. Any integer
``x`` is ``sum_i d_i * 128^i`` with every digit ``d_i`` in ``[-64, 63]``
(balanced: the digit is the remainder modulo 128 moved into ``[-64, 63]``,
the carry goes up). So ``A @ B = sum_{i,j} 128^(i+j) * (A_i @ B_j)``: each
digit pair is one job, and the products recombine exactly in int64.

The number of digits depends on the dtype only (``digit_count``), not on the
values, so an int8 matrix always gives two digits (the high one in
``{-1, 0, 1}``): callers skip the digit matrices that are all zero.
"""

from __future__ import annotations

import numpy as np

RADIX = 128
DIGIT_MIN = -64
DIGIT_MAX = 63
SUPPORTED = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64)
"""Integer dtypes with digits; uint64 is not (its values do not all fit the int64 the digits are computed in)."""


def digit_count(dtype: np.dtype | type) -> int:
    """Digits needed for every value of ``dtype``: the least ``n`` with ``63 * (128^n - 1) / 127 >= max|x|``.

    The most positive value ``n`` balanced digits reach is ``63 * (1 + 128 + ... + 128^(n-1))``; the most
    negative is ``-64 * (...)``, so the positive side decides (and ``-2^(b-1)`` fits whenever ``2^(b-1) - 1``
    does: ``64 * S > 63 * S``).
    """
    dt = np.dtype(dtype)
    if dt.type not in SUPPORTED:
        raise TypeError(f"no radix-128 digits for dtype {dt}; use one of "
                        f"{', '.join(np.dtype(t).name for t in SUPPORTED)}")
    info = np.iinfo(dt)
    biggest = max(int(info.max), -int(info.min) - 1)
    n, reach = 1, DIGIT_MAX
    while reach < biggest:
        n += 1
        reach = reach * RADIX + DIGIT_MAX
    return n


def to_digits(x: np.ndarray) -> list[np.ndarray]:
    """The balanced radix-128 digits of an integer array, least significant first, as int8 arrays in [-64, 63].

    ``digit_count(x.dtype)`` digits (int8: 2, uint8: 2, int16: 3, int32: 5,
    int64: 10), each an int8 array of ``x``'s shape, with
    ``from_digits(to_digits(x)) == x``. No step can overflow: each carry is
    ``(r >> 7) + (low >= 64)``, which never leaves int64.
    """
    x = np.asarray(x)
    count = digit_count(x.dtype)
    r = x.astype(np.int64)
    out: list[np.ndarray] = []
    for _ in range(count):
        low = r & (RADIX - 1)  # r mod 128 in [0, 127], also for negative r (two's complement)
        high = low >= RADIX // 2
        out.append((low - RADIX * high).astype(np.int8))  # in [-64, 63]
        r = (r >> 7) + high  # exact: r = 128 * carry + digit
    if np.any(r):
        raise AssertionError("digit_count left a carry")  # cannot happen: digit_count covers the dtype
    return out


def from_digits(ds: list[np.ndarray]) -> np.ndarray:
    """``sum_i ds[i] * 128^i`` as int64 (Horner, most significant first: every step is a prefix of the value).

    Raises ``ValueError`` for no digits or digits of different shapes.
    """
    if not ds:
        raise ValueError("from_digits needs at least one digit array")
    shape = np.shape(ds[0])
    acc = np.zeros(shape, np.int64)
    for d in reversed(ds):
        if np.shape(d) != shape:
            raise ValueError(f"digit arrays differ in shape: {shape} and {np.shape(d)}")
        acc = acc * RADIX + np.asarray(d).astype(np.int64)
    return acc
