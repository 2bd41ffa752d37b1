"""The product commitment ``root_C`` and the fraud-proof arithmetic of paid jobs (docs/protocol.md section 11).

A claimant commits to its product ``C`` (of the zero-padded matrices, shape
``m_p x n_p``) through a Merkle tree over its 16x16 tiles in row-major tile
order: ``leafC_(I,J) = HK(K("leaf-C"), u32(I) || u32(J) || tile)``, ``tile`` the
256 entries as signed int32 little-endian, row-major (1024 bytes), leaf index
``I * (n_p/16) + J``; inner nodes are keyed ``K("node")`` like the trees of
``A`` and ``B`` (section 3).

A fraud proof names one tile and carries the 16 rows of ``A`` and 16 columns
of ``B`` that determine it; ``expected_tile`` recomputes the tile exactly from
those bytes, with entries outside the unpadded ``m x n`` forced to 0 (a client
that committed non-zero padding cannot prove an honest product wrong).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from blake3 import blake3

from .constants import TILE
from .hashing import K, u32
from .merkle import compute_levels, path_from_levels

TILE_BYTES = TILE * TILE * 4
"""Bytes of one encoded tile (256 int32 entries)."""


def leaf_c(tile_i: int, tile_j: int, tile: bytes | memoryview) -> bytes:
    """``HK(K("leaf-C"), u32(I) || u32(J) || tile)``."""
    h = blake3(u32(tile_i) + u32(tile_j), key=K("leaf-C"))
    h.update(tile)
    return h.digest()


def _tile_bytes(c: np.ndarray) -> np.ndarray:
    """Tiles of ``c`` (int32, both sides multiples of 16), shape ``(rows, cols, 1024)`` uint8, row-major tiles."""
    rows, cols = c.shape[0] // TILE, c.shape[1] // TILE
    tiles = np.ascontiguousarray(np.asarray(c, dtype="<i4").reshape(rows, TILE, cols, TILE).transpose(0, 2, 1, 3))
    return tiles.view(np.uint8).reshape(rows, cols, TILE_BYTES)


def pad_product(c: np.ndarray, m_p: int, n_p: int) -> np.ndarray:
    """``c`` (``m x n``, any integer dtype that fits int32) zero-padded to ``m_p x n_p`` int32."""
    m, n = c.shape
    if m > m_p or n > n_p:
        raise ValueError(f"a {m}x{n} product does not fit the padded shape {m_p}x{n_p}")
    out = np.zeros((m_p, n_p), dtype=np.int32)
    out[:m, :n] = c
    return out


@dataclass(frozen=True)
class ProductCommitment:
    """``root_C`` of a padded product, with the tree kept so that any tile's path can be read off."""

    rows: int
    cols: int
    """Tile rows ``m_p/16`` and tile columns ``n_p/16``."""
    root_c: bytes
    levels: list[list[bytes]] = field(repr=False)

    def path(self, tile_i: int, tile_j: int) -> list[bytes]:
        """Inclusion path of tile ``(I, J)``."""
        return path_from_levels(self.levels, tile_i * self.cols + tile_j)


def commit_product(c_padded: np.ndarray) -> ProductCommitment:
    """The tile tree of a padded product (``m_p x n_p`` int32, both multiples of 16)."""
    if c_padded.ndim != 2 or c_padded.shape[0] % TILE or c_padded.shape[1] % TILE or 0 in c_padded.shape:
        raise ValueError(f"a padded product has sides that are positive multiples of {TILE}, found {c_padded.shape}")
    tiles = _tile_bytes(c_padded)
    rows, cols = tiles.shape[0], tiles.shape[1]
    leaves = [leaf_c(i, j, tiles[i, j].data) for i in range(rows) for j in range(cols)]
    levels = compute_levels(leaves, K("node"))
    return ProductCommitment(rows, cols, levels[-1][0], levels)


def compute_root_c(c: np.ndarray, m_p: int, n_p: int) -> bytes:
    """``root_C`` of the product ``c`` as submitted (``m x n``), zero-padded to ``m_p x n_p``."""
    return commit_product(pad_product(c, m_p, n_p)).root_c


def tile_of(c_padded: np.ndarray, tile_i: int, tile_j: int) -> bytes:
    """The 1024 bytes of tile ``(I, J)`` of a padded product."""
    block = c_padded[TILE * tile_i : TILE * (tile_i + 1), TILE * tile_j : TILE * (tile_j + 1)]
    return np.ascontiguousarray(block, dtype="<i4").tobytes()


def expected_tile(a_blk: bytes, bt_blk: bytes, tile_i: int, tile_j: int, m: int, n: int) -> np.ndarray:
    """The exact 16x16 tile (int64) that rows ``a_blk`` and columns ``bt_blk`` give, padding forced to 0.

    Entry ``(r, c)`` is ``sum_t a[r, t] * bt[c, t]`` over the ``k_p`` int8 bytes
    of row ``r`` of ``a_blk`` and row ``c`` of ``bt_blk`` (two's complement, no
    range check), when ``16I + r < m`` and ``16J + c < n``; 0 otherwise. The sum
    is exact: ``|entry| <= 128^2 * k_p``, far below ``2^63``.
    """
    if len(a_blk) != len(bt_blk) or len(a_blk) % TILE or not a_blk:
        raise ValueError("a_blk and bt_blk must be 16 rows of the same positive length")
    k_p = len(a_blk) // TILE
    a = np.frombuffer(a_blk, dtype=np.int8).reshape(TILE, k_p).astype(np.int64)
    bt = np.frombuffer(bt_blk, dtype=np.int8).reshape(TILE, k_p).astype(np.int64)
    out = a @ bt.T
    live_rows = max(0, min(TILE, m - TILE * tile_i))
    live_cols = max(0, min(TILE, n - TILE * tile_j))
    out[live_rows:, :] = 0
    out[:, live_cols:] = 0
    return out


def decode_tile(tile: bytes) -> np.ndarray:
    """A 1024-byte tile as a 16x16 int64 array (signed int32 LE entries)."""
    if len(tile) != TILE_BYTES:
        raise ValueError(f"a tile is {TILE_BYTES} bytes, found {len(tile)}")
    return np.frombuffer(tile, dtype="<i4").reshape(TILE, TILE).astype(np.int64)


def is_tile_wrong(tile: bytes, a_blk: bytes, bt_blk: bytes, tile_i: int, tile_j: int, m: int, n: int) -> bool:
    """True iff some entry of the claimed ``tile`` differs from ``expected_tile``."""
    return bool(np.any(decode_tile(tile) != expected_tile(a_blk, bt_blk, tile_i, tile_j, m, n)))
