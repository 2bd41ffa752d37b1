"""Recovering the exact product from the noised one (docs/protocol.md section 7).

``C = C' - (A . E_BL) . E_BR - E_AL . (E_AR . B')``: two corrections of rank ``r``.
``A . E_BL`` scatters ``A``'s columns into ``r`` buckets (+ at ``fB[c]``, - at
``sB[c]``); ``E_AR . B'`` does the same with ``B'``'s rows.

This module is the reference: exact by construction (float64 GEMMs whose
partial sums stay far below 2^53). Backends may use faster exact routes and
are tested against it.
"""

from __future__ import annotations

import numpy as np

from .noise import sparse_dense


def scatter_columns(a: np.ndarray, f: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``A . E_BL`` for the index pairs ``(f, s)``: ``m x r`` int64.

    |entries| <= 127 * k < 2^24, so a float32 GEMM with the +-1 matrix is exact.
    """
    e = sparse_dense(f, s).astype(np.float32)
    return np.matmul(a.astype(np.float32), e).astype(np.int64)


def scatter_rows(b: np.ndarray, f: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``E_AR . B'`` for the index pairs ``(f, s)``: ``r x n`` int64 (exact, as above)."""
    e = sparse_dense(f, s).astype(np.float32)
    return np.matmul(e.T, b.astype(np.float32)).astype(np.int64)


def corrections(
    a: np.ndarray, b_noised: np.ndarray, eal: np.ndarray, ebr: np.ndarray,
    fa: np.ndarray, sa: np.ndarray, fb: np.ndarray, sb: np.ndarray,
) -> np.ndarray:
    """``(A . E_BL) . E_BR + E_AL . (E_AR . B')`` as exact int64 (``m x n``)."""
    x = scatter_columns(a, fb, sb).astype(np.float64)
    y = scatter_rows(b_noised, fa, sa).astype(np.float64)
    # |x| <= 64k and |E_BR| <= 32 over r terms; |y| <= 127k and |E_AL| <= 32:
    # every partial sum is below 2^13 * 2^16 * 2^7 = 2^36, exact in float64.
    total = np.matmul(x, ebr.astype(np.float64)) + np.matmul(eal.astype(np.float64), y)
    return total.astype(np.int64)


def recover_product(
    c_noised: np.ndarray, a: np.ndarray, b_noised: np.ndarray, eal: np.ndarray,
    ebr: np.ndarray, fa: np.ndarray, sa: np.ndarray, fb: np.ndarray, sb: np.ndarray,
) -> np.ndarray:
    """``C = C' - (A . E_BL) . E_BR - E_AL . (E_AR . B')`` as int32 (equals ``A @ B``)."""
    return (c_noised.astype(np.int64) - corrections(a, b_noised, eal, ebr, fa, sa, fb, sb)).astype(
        np.int32
    )
