"""Find a wrong tile of a claimed product and build the fraud proof that names it (docs/protocol.md section 11).

A client whose delivered ``C`` fails Freivalds' test must show the chain one
wrong 16x16 tile, with the 16 rows of ``A`` and 16 columns of ``B`` that
determine it and three Merkle paths. Finding that tile must not cost a full
product: Freivalds' residual ``C.x - A.(B.x) (mod p)`` is non-zero exactly on
the rows of ``C`` that hold a wrong entry (up to a ``1/p`` chance per row), so
the residual names the rows in ``O(mk + kn + mn)`` work, and one such row
recomputed exactly (``k n`` multiply-adds in int64) names a column.

Everything here runs on the unpadded matrices as submitted; the payload is
built over the zero-padded ones (``pouw.matrix.pad_pair``), as the offer's
roots are, and over the zero-padded claimed product, as its ``root_C`` is.
"""

from __future__ import annotations

import numpy as np

from consensus.types import FraudPayload
from pouw.commit import commit_pair
from pouw.constants import TILE
from pouw.jobs import freivalds_vector, matvec_mod_p, product_hash
from pouw.matrix import pad_pair
from pouw.tiles import commit_product, pad_product, tile_of


def _check_shapes(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2 or c.ndim != 2:
        raise ValueError("A, B and C must be 2-D matrices")
    m, k = a.shape
    if b.shape[0] != k:
        raise ValueError(f"A is {m}x{k} but B is {b.shape[0]}x{b.shape[1]}: they cannot be multiplied")
    if c.shape != (m, b.shape[1]):
        raise ValueError(f"the product is {c.shape[0]}x{c.shape[1]}, expected {m}x{b.shape[1]}")


def wrong_rows(a: np.ndarray, b: np.ndarray, c: np.ndarray, job_id: bytes) -> list[int]:
    """Rows ``i`` where ``(C.x - A.(B.x))[i] != 0 (mod p)`` for the job's Freivalds vector ``x``."""
    _check_shapes(a, b, c)
    x = freivalds_vector(job_id, product_hash(c), c.shape[1])
    cx = np.array(matvec_mod_p(np.asarray(c, dtype=np.int64), x), dtype=np.uint64)
    abx = np.array(matvec_mod_p(a, matvec_mod_p(b, x)), dtype=np.uint64)
    return [int(i) for i in np.flatnonzero(cx != abx)]


def wrong_columns(a: np.ndarray, b: np.ndarray, c: np.ndarray, row: int) -> list[int]:
    """Columns of row ``row`` of ``C`` that differ from ``A[row] . B``, computed exactly in int64."""
    exact = a[row].astype(np.int64) @ b.astype(np.int64)  # |entry| <= 64^2 k: exact in int64
    return [int(j) for j in np.flatnonzero(np.asarray(c[row], dtype=np.int64) != exact)]


def find_wrong_tile(a: np.ndarray, b: np.ndarray, c_claimed: np.ndarray, job_id: bytes) -> tuple[int, int] | None:
    """The tile ``(I, J)`` of a wrong entry of ``c_claimed``, or ``None`` when it passes Freivalds' test.

    ``a`` (m x k) and ``b`` (k x n) are the job's matrices as submitted,
    ``c_claimed`` the m x n product as delivered (int32 entries). The first
    wrong row by Freivalds' residual is recomputed exactly; should that row
    turn out right (a residual can only be non-zero on a wrong row, so this
    would be a bug), the next one is tried.
    """
    for row in wrong_rows(a, b, c_claimed, job_id):
        cols = wrong_columns(a, b, c_claimed, row)
        if cols:
            return row // TILE, cols[0] // TILE
    return None


def build_fraud_payload(a: np.ndarray, b: np.ndarray, c_claimed: np.ndarray, tile_i: int, tile_j: int) -> FraudPayload:
    """The fraud proof of tile ``(I, J)`` of ``c_claimed`` for the job ``(A, B)``.

    ``A`` and ``B`` are zero-padded (``pad_pair``) and committed as the offer's
    roots are; the claimed product is zero-padded to ``m_p x n_p`` and
    committed as its ``root_C`` is, so the three paths reproduce the record's
    roots when the claim was of this ``C``.
    """
    _check_shapes(a, b, c_claimed)
    if c_claimed.size and (int(c_claimed.min()) < -(1 << 31) or int(c_claimed.max()) >= 1 << 31):
        raise ValueError("the claimed product has entries outside int32: it is not a product a claim commits to")
    pa, pb = pad_pair(np.ascontiguousarray(a), np.ascontiguousarray(b))
    m_p, k_p = pa.shape
    n_p = pb.shape[1]
    rows, cols = m_p // TILE, n_p // TILE
    if not (0 <= tile_i < rows and 0 <= tile_j < cols):
        raise ValueError(f"tile ({tile_i}, {tile_j}) is outside the {rows}x{cols} tiles of the padded product")
    pair = commit_pair(pa, pb)
    c_padded = pad_product(np.asarray(c_claimed), m_p, n_p)
    product = commit_product(c_padded)
    a_blk = np.ascontiguousarray(pa[TILE * tile_i : TILE * (tile_i + 1)]).tobytes()
    bt_blk = np.ascontiguousarray(pb[:, TILE * tile_j : TILE * (tile_j + 1)].T).tobytes()
    assert len(a_blk) == len(bt_blk) == TILE * k_p
    return FraudPayload(tile_i, tile_j, tile_of(c_padded, tile_i, tile_j), tuple(product.path(tile_i, tile_j)),
                        a_blk, tuple(pair.path_a(tile_i)), bt_blk, tuple(pair.path_b(tile_j)))

