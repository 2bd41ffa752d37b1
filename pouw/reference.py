"""A deliberately plain miner: the executable reading of sections 5-7.

Slow (float64 chunk products, whole-matrix passes) and simple; every backend is
tested against it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .commit import Commitment
from .constants import R
from .header import HeaderPre
from .noise import MiningNoise, noised_a, noised_b
from .product import recover_product
from .transcript import compute_tickets, fold_words, xor_tiles


@dataclass(frozen=True)
class ReferenceResult:
    transcripts: np.ndarray
    """``(m/16, n/16, 16)`` uint32."""
    tickets: np.ndarray
    """``(m/16, n/16, 32)`` uint8."""
    product: np.ndarray
    """Exact ``A @ B`` (int32)."""


def mine_reference(a: np.ndarray, b: np.ndarray, commitment: Commitment, pre: HeaderPre) -> ReferenceResult:
    m, k = a.shape
    n = b.shape[1]
    nz = MiningNoise.derive(pre.encode(), commitment.root_a, commitment.root_b, m, n, k)
    seeds = nz.seeds
    ap = noised_a(a, nz.eal, nz.fa, nz.sa).astype(np.float64)
    bp8 = noised_b(b, nz.ebr, nz.fb, nz.sb)
    bp = bp8.astype(np.float64)
    acc = np.zeros((m, n), np.int64)
    words = []
    for c in range(k // R):
        s = slice(c * R, (c + 1) * R)
        acc += np.matmul(ap[:, s], bp[s, :]).astype(np.int64)
        words.append(xor_tiles(acc.astype(np.int32)))
    transcripts = fold_words(np.stack(words, axis=-1))
    tickets = compute_tickets(seeds.pow_key, transcripts)
    product = recover_product(acc.astype(np.int32), a, bp8, nz.eal, nz.ebr, nz.fa, nz.sa, nz.fb, nz.sb)
    return ReferenceResult(transcripts, tickets, product)
