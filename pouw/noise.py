"""Noise of docs/protocol.md section 5: dense low-rank factors and sparse +-1 factors.

``E_A = E_AL . E_AR`` (``E_AL`` is ``m x r`` dense, ``E_AR`` is ``r x k`` with
one +1 and one -1 per column) and ``E_B = E_BL . E_BR`` likewise. Dense factors
are generated per 16-line block, so a verifier derives only the block it needs.
Every entry of ``E_A`` and ``E_B`` lies in ``[-63, 63]``, so the noised matrices
``A' = A + E_A`` and ``B' = B + E_B`` fit int8.
"""

from __future__ import annotations

import numpy as np

from .constants import TILE, R
from .hashing import XOF, u32
from .seeds import compute_seeds


def map_bytes(raw: bytes) -> np.ndarray:
    """Map each byte ``x`` to ``int8((x & 63) - 32)``, in ``[-32, 31]``."""
    x = np.frombuffer(raw, dtype=np.uint8)
    return ((x & 63).astype(np.int8) - np.int8(32)).astype(np.int8)


def eal_block(seed_a: bytes, block: int) -> np.ndarray:
    """Rows ``16*block .. 16*block+15`` of ``E_AL``, shape ``(16, r)`` int8."""
    return map_bytes(XOF(seed_a, b"EAL" + u32(block), TILE * R)).reshape(TILE, R)


def ebr_block_t(seed_b: bytes, block: int) -> np.ndarray:
    """Columns ``16*block .. 16*block+15`` of ``E_BR`` as 16 rows, shape ``(16, r)`` int8.

    Row ``t`` is column ``16*block + t`` of ``E_BR``.
    """
    return map_bytes(XOF(seed_b, b"EBR" + u32(block), TILE * R)).reshape(TILE, R)


def compute_eal(seed_a: bytes, m: int) -> np.ndarray:
    """The whole ``E_AL`` (``m x r`` int8)."""
    return np.concatenate([eal_block(seed_a, i) for i in range(m // TILE)], axis=0)


def compute_ebr(seed_b: bytes, n: int) -> np.ndarray:
    """The whole ``E_BR`` (``r x n`` int8)."""
    return np.concatenate([ebr_block_t(seed_b, j) for j in range(n // TILE)], axis=0).T.copy()


def sparse_indices(seed: bytes, label: bytes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The index pairs ``(f, s)`` of one sparse factor, each an int64 array of length ``k``.

    ``f[c] = u[c] & (r-1)`` and ``s[c] = f[c] ^ (1 + (((r-1) * u[c]) >> 32))`` with
    the product in 64 bits; so ``s[c] != f[c]`` and both are below ``r``.
    """
    u = np.frombuffer(XOF(seed, label, 4 * k), dtype="<u4").astype(np.uint64)
    f = u & np.uint64(R - 1)
    s = f ^ (np.uint64(1) + ((np.uint64(R - 1) * u) >> np.uint64(32)))
    return f.astype(np.int64), s.astype(np.int64)


def a_indices(seed_a: bytes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fA, sA)`` from ``XOF(seed_A, b"EAR", 4k)``."""
    return sparse_indices(seed_a, b"EAR", k)


def b_indices(seed_b: bytes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fB, sB)`` from ``XOF(seed_B, b"EBL", 4k)``."""
    return sparse_indices(seed_b, b"EBL", k)


def noise_a(eal: np.ndarray, fa: np.ndarray, sa: np.ndarray) -> np.ndarray:
    """``E_A[:, c] = E_AL[:, fA[c]] - E_AL[:, sA[c]]`` (rows of ``eal`` may be any block subset)."""
    e = np.take(eal, fa, axis=1)
    e -= np.take(eal, sa, axis=1)
    return e


def noise_b_t(ebr_t: np.ndarray, fb: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """``E_B`` transposed: row ``t`` of the result is column ``t`` of ``E_B``.

    ``ebr_t`` holds columns of ``E_BR`` as rows (``E_BR.T`` or a block of it).
    """
    return noise_a(ebr_t, fb, sb)


def noised_a(a: np.ndarray, eal: np.ndarray, fa: np.ndarray, sa: np.ndarray) -> np.ndarray:
    """``A' = A + E_A`` (int8, entries in ``[-127, 126]``: no int8 wrap-around is possible)."""
    e = noise_a(eal, fa, sa)
    e += a
    return e


def noised_b(b: np.ndarray, ebr: np.ndarray, fb: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """``B' = B + E_B`` (int8), with ``E_B[c, :] = E_BR[fB[c], :] - E_BR[sB[c], :]``."""
    e = np.take(ebr, fb, axis=0)
    e -= np.take(ebr, sb, axis=0)
    e += b
    return e


def sparse_dense(f: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The ``k x r`` matrix with ``+1`` at ``(c, f[c])`` and ``-1`` at ``(c, s[c])`` (int8).

    This is ``E_BL`` for ``(fB, sB)`` and ``E_AR.T`` for ``(fA, sA)``.
    """
    k = f.shape[0]
    e = np.zeros((k, R), np.int8)
    rows = np.arange(k)
    e[rows, f] = 1
    e[rows, s] = -1
    return e


class MiningNoise:
    """Everything section 5 derives for one (HeaderPre, commitment) pair, whole matrices."""

    __slots__ = ("seeds", "eal", "ebr", "fa", "sa", "fb", "sb")

    @classmethod
    def derive(cls, pre: bytes, root_a: bytes, root_b: bytes, m: int, n: int, k: int) -> MiningNoise:
        """The seeds of an encoded HeaderPre and the two roots (section 5), and the noise they give."""
        return cls(compute_seeds(pre, root_a, root_b, m, n, k), m, n, k)

    def __init__(self, seeds, m: int, n: int, k: int) -> None:
        self.seeds = seeds
        self.eal = compute_eal(seeds.seed_a, m)
        self.ebr = compute_ebr(seeds.seed_b, n)
        self.fa, self.sa = a_indices(seeds.seed_a, k)
        self.fb, self.sb = b_indices(seeds.seed_b, k)
