"""Commitments to the mining matrices (docs/protocol.md section 3).

``A`` is cut into blocks of 16 consecutive rows; ``B`` is committed through its
transpose, so a block of ``B`` is 16 consecutive columns. Each block is one
Merkle leaf; the roots go into the header. Roots do not depend on the header, so
a miner commits to a matrix pair once and reuses the result for every nonce.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from blake3 import blake3

from .constants import TILE
from .hashing import K, u32
from .matrix import transpose_int8, validate_pair
from .merkle import compute_levels, path_from_levels


def _leaf(key: bytes, index: int, block) -> bytes:
    h = blake3(u32(index), key=key)
    h.update(block)
    return h.digest()


def leaf_a(index: int, block) -> bytes:
    """Leaf of row block ``index`` of ``A``: ``HK(K("leaf-A"), u32(I) || block)`` (16*k bytes, int8 row-major)."""
    return _leaf(K("leaf-A"), index, block)


def leaf_b(index: int, block) -> bytes:
    """Leaf of column block ``index`` of ``B``: ``HK(K("leaf-B"), u32(J) || block)`` (16 rows of ``B.T``)."""
    return _leaf(K("leaf-B"), index, block)


def node_key() -> bytes:
    """Key of inner nodes of the matrix trees."""
    return K("node")


def row_blocks(x: np.ndarray) -> list[memoryview]:
    """Bytes of each block of 16 consecutive rows of ``x`` (int8, row-major), without copying."""
    x = np.ascontiguousarray(x)
    return [x[i : i + TILE].data.cast("B") for i in range(0, x.shape[0], TILE)]


@dataclass(frozen=True)
class Commitment:
    """Merkle commitments of one matrix pair, with every tree level kept for paths."""

    m: int
    k: int
    n: int
    root_a: bytes
    root_b: bytes
    levels_a: list[list[bytes]] = field(repr=False)
    levels_b: list[list[bytes]] = field(repr=False)

    def path_a(self, tile_i: int) -> list[bytes]:
        """Inclusion path of row block ``tile_i`` of ``A``."""
        return path_from_levels(self.levels_a, tile_i)

    def path_b(self, tile_j: int) -> list[bytes]:
        """Inclusion path of column block ``tile_j`` of ``B``."""
        return path_from_levels(self.levels_b, tile_j)


def tree_levels(leaf_fn, x: np.ndarray) -> list[list[bytes]]:
    """Every level of the Merkle tree over the 16-row blocks of ``x`` (leaves hashed with ``leaf_fn``)."""
    return compute_levels([leaf_fn(i, blk) for i, blk in enumerate(row_blocks(x))], node_key())


def commit_pair(a: np.ndarray, b: np.ndarray) -> Commitment:
    """Validate ``A`` and ``B`` and compute both commitments."""
    m, k, n = validate_pair(a, b)
    levels_a = tree_levels(leaf_a, a)
    levels_b = tree_levels(leaf_b, transpose_int8(b))
    return Commitment(m, k, n, levels_a[-1][0], levels_b[-1][0], levels_a, levels_b)
