"""``transpose_int8``: both paths equal ``x.T`` on every shape."""

import numpy as np
import pytest

from pouw.matrix import transpose_int8


@pytest.mark.parametrize("shape", [(1, 8), (3, 16), (16, 8), (300, 264), (257, 520), (5, 7), (256, 100), (0, 8)])
def test_transpose_int8_equals_numpy_transpose(shape):
    x = np.random.default_rng(sum(shape)).integers(-128, 128, shape, dtype=np.int8)
    got = transpose_int8(x, block=64)
    assert got.dtype == np.int8 and got.flags.c_contiguous
    assert np.array_equal(got, x.T)


def test_transpose_of_a_non_contiguous_view_and_of_uint8():
    x = np.random.default_rng(1).integers(-128, 128, (64, 96), dtype=np.int8)
    assert np.array_equal(transpose_int8(x[:, 16:80]), x[:, 16:80].T)
    u = x.view(np.uint8)
    got = transpose_int8(u)
    assert got.dtype == np.uint8 and np.array_equal(got, u.T)
