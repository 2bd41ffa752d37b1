"""Balanced radix-128 digits (``wallet.digits``): exact round trips over every supported dtype's full range."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wallet.digits import DIGIT_MAX, DIGIT_MIN, digit_count, from_digits, to_digits

DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64]


def extremes(dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    vals = {info.min, info.max, 0, 1, -1 if info.min < 0 else 0, info.min + 1, info.max - 1, 63, 64, -64, -65,
            127, 128, -128}
    return np.array(sorted(v for v in vals if info.min <= v <= info.max), dtype=dtype).reshape(1, -1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extremes_round_trip_with_digits_in_range(dtype):
    x = extremes(dtype)
    ds = to_digits(x)
    assert len(ds) == digit_count(dtype)
    for d in ds:
        assert d.dtype == np.int8 and d.shape == x.shape
        assert int(d.min()) >= DIGIT_MIN and int(d.max()) <= DIGIT_MAX
    back = from_digits(ds)
    assert back.dtype == np.int64
    assert [int(v) for v in back.ravel()] == [int(v) for v in x.ravel()]


def test_digit_counts_and_the_int8_high_digit():
    assert [digit_count(t) for t in (np.int8, np.uint8, np.int16, np.int32, np.int64)] == [2, 2, 3, 5, 10]
    x = np.arange(-128, 128, dtype=np.int16).astype(np.int8).reshape(16, 16)
    lo, hi = to_digits(x)
    assert set(np.unique(hi).tolist()) == {-1, 0, 1}
    assert np.array_equal(lo.astype(np.int64) + 128 * hi.astype(np.int64), x.astype(np.int64))
    # Values already in [-64, 63] are their own low digit, with a zero high digit (not sent as a job).
    small = np.array([[-64, 0, 63]], np.int8)
    assert np.array_equal(to_digits(small)[0], small) and not to_digits(small)[1].any()


def test_unsupported_dtypes_and_bad_digits_are_refused():
    for bad in (np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint64), np.zeros((2, 2), bool)):
        with pytest.raises(TypeError, match="no radix-128 digits"):
            to_digits(bad)
    with pytest.raises(ValueError, match="at least one"):
        from_digits([])
    with pytest.raises(ValueError, match="differ in shape"):
        from_digits([np.zeros((2, 2), np.int8), np.zeros((2, 3), np.int8)])


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(DTYPES).flatmap(
    lambda t: arrays(t, st.tuples(st.integers(1, 6), st.integers(1, 6)))))
def test_random_arrays_round_trip(x):
    ds = to_digits(x)
    assert all(d.dtype == np.int8 and int(d.min()) >= -64 and int(d.max()) <= 63 for d in ds)
    assert [int(v) for v in from_digits(ds).ravel()] == [int(v) for v in x.ravel()]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([np.int8, np.uint8, np.int16]).flatmap(
    lambda t: st.tuples(arrays(t, st.tuples(st.integers(1, 5), st.integers(1, 7))), arrays(t, (7, 4)))))
def test_digit_products_recombine_to_the_product(pair):
    """``A @ B == sum 128^(i+j) A_i @ B_j``: the identity the client's jobs rely on."""
    a, b = pair
    a = a[:, : a.shape[1]]
    b = b[: a.shape[1]]
    want = a.astype(np.int64) @ b.astype(np.int64)
    got = np.zeros(want.shape, np.int64)
    for i, da in enumerate(to_digits(a)):
        for j, db in enumerate(to_digits(b)):
            got += (da.astype(np.int64) @ db.astype(np.int64)) * 128 ** (i + j)
    assert np.array_equal(got, want)
