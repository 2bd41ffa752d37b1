"""Merkle trees of RFC 6962 shape, keyed node hashing (docs/protocol.md section 3).

No padding leaves: the root of one leaf is the leaf itself; for ``L > 1`` leaves
with ``s`` the largest power of two below ``L``,
``root = HK(node_key, root(first s) || root(rest))``. An inclusion path lists
the sibling hashes from the leaf upwards.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import DecodeError
from .hashing import HK


def split_point(count: int) -> int:
    """Largest power of two strictly below ``count`` (``count >= 2``)."""
    return 1 << ((count - 1).bit_length() - 1)


def compute_levels(leaves: Sequence[bytes], node_key: bytes) -> list[list[bytes]]:
    """All levels of the tree, leaves first, root last.

    Built bottom-up: pairing adjacent nodes and carrying an odd last node up a
    level reproduces the recursive RFC 6962 definition, because every left
    subtree there is a full power of two.
    """
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        nxt = [HK(node_key, level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
    return levels


def compute_root(leaves: Sequence[bytes], node_key: bytes) -> bytes:
    """Root over ``leaves`` (at least one)."""
    return compute_levels(leaves, node_key)[-1][0]


def path_from_levels(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """Sibling hashes of leaf ``index`` (from the leaf up), read off precomputed levels."""
    if not 0 <= index < len(levels[0]):
        raise ValueError(f"leaf index {index} out of range for {len(levels[0])} leaves")
    path: list[bytes] = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index //= 2
    return path


def compute_path(leaves: Sequence[bytes], index: int, node_key: bytes) -> list[bytes]:
    """Sibling hashes of leaf ``index``, from the leaf up."""
    return path_from_levels(compute_levels(leaves, node_key), index)


def path_depth(index: int, count: int) -> int:
    """Number of siblings on the path of leaf ``index`` in a tree of ``count`` leaves."""
    if not 0 <= index < count:
        raise ValueError(f"leaf index {index} out of range for {count} leaves")
    depth = 0
    while count > 1:
        s = split_point(count)
        if index < s:
            count = s
        else:
            index -= s
            count -= s
        depth += 1
    return depth


def root_from_path(
    index: int, count: int, leaf: bytes, path: Sequence[bytes], node_key: bytes
) -> bytes:
    """Recompute the root from a leaf and its inclusion path.

    Raises ``DecodeError`` when the path has the wrong length for ``(index, count)``.
    """
    if path_depth(index, count) != len(path):
        raise DecodeError(
            f"path for leaf {index} of {count} needs {path_depth(index, count)} siblings, found {len(path)}"
        )
    # Descend to record, per level, whether the leaf is on the left or right.
    sides: list[bool] = []
    lo, hi = 0, count
    while hi - lo > 1:
        s = split_point(hi - lo)
        if index < lo + s:
            sides.append(True)
            hi = lo + s
        else:
            sides.append(False)
            lo = lo + s
    node = leaf
    for is_left, sibling in zip(reversed(sides), path, strict=True):
        node = HK(node_key, node + sibling) if is_left else HK(node_key, sibling + node)
    return node
