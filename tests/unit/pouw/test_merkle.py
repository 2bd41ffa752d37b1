"""Merkle trees: roots and inclusion paths for leaf counts 1 to 17 against a recursive reading of the spec."""

import pytest

from pouw.errors import DecodeError
from pouw.hashing import HK, K
from pouw.merkle import compute_path, compute_root, path_depth, root_from_path, split_point

KEY = K("node")


def recursive_root(leaves):
    if len(leaves) == 1:
        return leaves[0]
    s = 1
    while s * 2 < len(leaves):
        s *= 2
    return HK(KEY, recursive_root(leaves[:s]) + recursive_root(leaves[s:]))


def leaves_of(count):
    return [bytes([i]) * 32 for i in range(count)]


@pytest.mark.parametrize("count", range(1, 18))
def test_root_matches_recursive_definition(count):
    assert compute_root(leaves_of(count), KEY) == recursive_root(leaves_of(count))


@pytest.mark.parametrize("count", range(1, 18))
def test_every_path_reproduces_root(count):
    leaves = leaves_of(count)
    root = compute_root(leaves, KEY)
    for i in range(count):
        path = compute_path(leaves, i, KEY)
        assert len(path) == path_depth(i, count)
        assert root_from_path(i, count, leaves[i], path, KEY) == root


@pytest.mark.parametrize("count", range(2, 18))
def test_wrong_sibling_or_leaf_changes_root(count):
    leaves = leaves_of(count)
    root = compute_root(leaves, KEY)
    for i in range(count):
        path = compute_path(leaves, i, KEY)
        bad = [b"\xee" * 32] + path[1:]
        assert root_from_path(i, count, leaves[i], bad, KEY) != root
        assert root_from_path(i, count, b"\xff" * 32, path, KEY) != root


def test_depth_depends_on_index():
    # The spec's own example: L = 5 gives depth 3 for index 0 and 1 for index 4.
    assert path_depth(0, 5) == 3
    assert path_depth(4, 5) == 1
    assert path_depth(0, 1) == 0


def test_path_of_wrong_length_is_rejected():
    leaves = leaves_of(5)
    path = compute_path(leaves, 0, KEY)
    with pytest.raises(DecodeError):
        root_from_path(0, 5, leaves[0], path[:-1], KEY)
    with pytest.raises(DecodeError):
        root_from_path(0, 5, leaves[0], path + [bytes(32)], KEY)


def test_split_point_is_largest_power_below():
    assert [split_point(c) for c in (2, 3, 4, 5, 8, 9, 17)] == [1, 2, 2, 4, 4, 8, 16]


def test_index_out_of_range():
    with pytest.raises(ValueError):
        path_depth(5, 5)
    with pytest.raises(ValueError):
        compute_path(leaves_of(3), 3, KEY)
