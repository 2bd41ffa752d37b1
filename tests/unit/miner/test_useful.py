"""``UsefulMiner.matmul``: exact int64 products of int7 and wider matrices, mined against a (fake) node's
template: every matmul draws tickets, and at an easy target the winning tiles become valid blocks."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.select import get_backend
from miner.useful import UsefulMiner
from tests.unit.miner.support import FakeNode


def miner_for(node: FakeNode) -> UsefulMiner:
    return UsefulMiner("http://unused/", get_backend("numpy"), client=node)  # type: ignore[arg-type]


def test_int7_products_are_exact_and_every_call_mines():
    node = FakeNode(target=0)  # nothing wins: tickets only
    miner = miner_for(node)
    rng = np.random.default_rng(1)
    a = rng.integers(-64, 64, (37, 300), dtype=np.int8)
    b = rng.integers(-64, 64, (300, 21), dtype=np.int8)
    c = miner.matmul(a, b)
    assert c.dtype == np.int64 and np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    r = miner.last
    assert (r.matmuls, r.macs, r.tickets, r.blocks) == (1, 48 * 384 * 32, 3 * 2, [])


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.int32, np.int64])
def test_wider_integers_go_through_digits_and_stay_exact(dtype):
    node = FakeNode(target=0)
    miner = miner_for(node)
    rng = np.random.default_rng(2)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (16, 24), dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, (24, 8), dtype=dtype, endpoint=True)
    with np.errstate(over="ignore"):
        want = a.astype(np.int64) @ b.astype(np.int64)  # wraps modulo 2^64 for int64 inputs, as ours must
    assert np.array_equal(miner.matmul(a, b), want)
    assert miner.last.matmuls > 1 and miner.totals.matmuls == miner.last.matmuls


def test_at_an_easy_target_winning_tiles_become_blocks():
    node = FakeNode()  # every tile wins
    miner = miner_for(node)
    rng = np.random.default_rng(3)
    for _ in range(3):
        a = rng.integers(-64, 64, (16, 256), dtype=np.int8)
        b = rng.integers(-64, 64, (256, 16), dtype=np.int8)
        assert np.array_equal(miner.matmul(a, b), a.astype(np.int64) @ b.astype(np.int64))
        assert len(miner.last.blocks) == 1
    assert [b.header.block_id.hex() for b in node.blocks] == miner.totals.blocks
    assert [b.height for b in node.blocks] == [1, 2, 3]


def test_bad_inputs_are_refused_and_empty_ones_are_empty():
    miner = miner_for(FakeNode(target=0))
    with pytest.raises(TypeError, match="integer"):
        miner.matmul(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="inner dimensions"):
        miner.matmul(np.zeros((2, 3), np.int8), np.zeros((2, 2), np.int8))
    assert miner.matmul(np.zeros((0, 3), np.int8), np.zeros((3, 2), np.int8)).shape == (0, 2)
