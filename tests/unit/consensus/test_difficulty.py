"""ASERT difficulty and the median time (docs/protocol.md section 10), exact integer arithmetic.

The spec's arithmetic vectors are in ``tests/spec/test_asert.py``; these are the
properties around them: monotone in time, a factor of two per half-life, the
accuracy of the cubic, saturation without huge shifts, and the median.
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal, getcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.difficulty import compute_asert_target, compute_median_time, compute_next_target
from consensus.networks import DEVNET, MAINNET

PARAMS = replace(MAINNET, block_spacing=60, halflife=43_200, max_future=3_600, pow_limit=1 << 240)
ANCHOR = 1 << 200

offsets = st.integers(-10**7, 10**7)
heights = st.integers(0, 10**5)


def asert(offset: int, height: int = 0, anchor: int = ANCHOR) -> int:
    return compute_asert_target(anchor, offset, height, PARAMS)


@given(offsets, offsets, heights)
def test_later_parent_time_never_gives_a_harder_target(a, b, h):
    lo, hi = sorted((a, b))
    assert asert(lo, h) <= asert(hi, h)


@given(offsets, heights)
def test_one_more_block_at_the_same_time_never_gives_an_easier_target(offset, h):
    assert asert(offset, h + 1) <= asert(offset, h)


@given(st.integers(-3 * 10**6, 3 * 10**6))
def test_one_halflife_later_doubles_the_target(offset):
    """Same fraction, one more shift: equal to twice the target up to the final floor (one unit)."""
    one, two = asert(offset), asert(offset + PARAMS.halflife)
    if two < PARAMS.pow_limit and one > 1:
        assert abs(two - 2 * one) <= 1


def test_cubic_is_within_0_012_percent_of_the_exponential():
    getcontext().prec = 40
    worst = Decimal(0)
    for frac in range(0, 65536, 97):
        offset_seconds = frac * PARAMS.halflife // 65536
        exponent = (offset_seconds * 65536) // PARAMS.halflife
        exact = Decimal(ANCHOR) * Decimal(2) ** (Decimal(exponent) / 65536)
        worst = max(worst, abs(Decimal(asert(offset_seconds)) - exact) / exact)
    assert worst < Decimal("0.00012")


def test_saturates_without_computing_a_huge_shift():
    """A timestamp near 2^64 would shift by ~2^37 bits if computed: the saturation answers at once."""
    start = time.perf_counter()
    assert asert((1 << 64) - 1) == PARAMS.pow_limit
    assert asert(-(1 << 64)) == 1
    assert asert(0, height=(1 << 64) - 1) == 1
    assert time.perf_counter() - start < 0.5


def test_saturation_edges():
    h = PARAMS.halflife
    assert asert(100 * h, anchor=1) == 1 << 100
    assert asert(40 * h) == PARAMS.pow_limit  # 2^240: exactly pow_limit
    assert asert(39 * h) == 1 << 239
    assert asert(-200 * h) == 1
    assert asert(-199 * h) == 2


def test_no_retarget_fixes_the_target():
    assert DEVNET.no_retarget
    assert compute_next_target(12345, DEVNET.genesis_time + 10**9, DEVNET) == DEVNET.initial_target
    assert compute_next_target(0, DEVNET.genesis_time - 10**9, DEVNET) == DEVNET.initial_target


def test_next_target_is_anchored_at_the_presets_genesis():
    p = replace(PARAMS, initial_target=ANCHOR, genesis_time=1_000_000)
    assert compute_next_target(10, 1_000_000 + 600, p) == ANCHOR
    assert compute_next_target(10, 1_000_000 + 600 + p.halflife, p) == 2 * ANCHOR


@pytest.mark.parametrize("times,median", [
    ([5], 5), ([1, 9], 9), ([3, 1, 2], 2), ([4, 1, 3, 2], 3), (list(range(11, 0, -1)), 6), ([7] * 11, 7),
    ([10, 10, 1, 1], 10),
])
def test_median_time_is_element_count_div_2_of_the_sorted_times(times, median):
    assert compute_median_time(times) == median == sorted(times)[len(times) // 2]


def test_median_of_nothing_is_refused():
    with pytest.raises(ValueError):
        compute_median_time([])
