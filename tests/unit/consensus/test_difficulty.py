"""WTEMA difficulty and the median time (docs/protocol.md section 10), exact integer arithmetic."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.difficulty import compute_median_time, compute_next_target
from consensus.networks import DEVNET, MAINNET

PARAMS = replace(MAINNET, block_spacing=60, wtema_n=100, pow_limit=(1 << 240))


def wtema(t, s, S=60, N=100):
    return t * (S * N + min(max(s, 1), 6 * S) - S) // (S * N)


def test_on_time_block_keeps_the_target():
    assert compute_next_target(10**40, 60, PARAMS) == 10**40


def test_slow_block_raises_fast_block_lowers_target():
    t = 10**40
    assert compute_next_target(t, 120, PARAMS) == t * (6000 + 60) // 6000
    assert compute_next_target(t, 30, PARAMS) == t * (6000 - 30) // 6000


def test_solve_time_is_clamped():
    t = 10**40
    assert compute_next_target(t, -500, PARAMS) == compute_next_target(t, 1, PARAMS) == wtema(t, 1)
    assert compute_next_target(t, 10**9, PARAMS) == compute_next_target(t, 360, PARAMS) == wtema(t, 360)


def test_result_is_clamped_to_one_and_pow_limit():
    assert compute_next_target(1, 1, PARAMS) == 1
    assert compute_next_target(PARAMS.pow_limit, 360, PARAMS) == PARAMS.pow_limit


def test_no_retarget_fixes_the_target():
    assert DEVNET.no_retarget
    assert compute_next_target(12345, 1, DEVNET) == DEVNET.initial_target


@given(st.integers(1, (1 << 240)), st.integers(-10**6, 10**6))
def test_matches_the_formula(t, s):
    assert compute_next_target(t, s, PARAMS) == min(max(wtema(t, s), 1), PARAMS.pow_limit)


def test_fixed_vector():
    # t = 2^200, s = 90 s, S = 60, N = 100: 2^200 * 6030 // 6000
    assert compute_next_target(1 << 200, 90, PARAMS) == (1 << 200) * 6030 // 6000


@pytest.mark.parametrize("times,median", [
    ([5], 5), ([1, 9], 9), ([3, 1, 2], 2), (list(range(11, 0, -1)), 6), ([7] * 11, 7),
])
def test_median_time(times, median):
    assert compute_median_time(times) == median
