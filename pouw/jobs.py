"""Jobs, their ids and the Freivalds check of a product (PROTOCOL.md section 9).

A job is a matrix pair ``(A, B)``; its id is content-addressed. The result is
the exact product of the matrices as submitted, checked with Freivalds' test
modulo ``p = 2^61 - 1``: for a vector ``x`` derived from the job id and the
product's hash, ``A.(B.x) == C.x (mod p)``. A wrong ``C`` passes with
probability at most ``1/p``. All arithmetic is exact (8-bit limbs in int64,
combined with Python integers).
"""

from __future__ import annotations

import numpy as np

from .hashing import H, HK, XOF, K, u32

FREIVALDS_MODULUS = (1 << 61) - 1
_LIMB_BITS = 8
_LIMBS = 8  # 8 limbs of 8 bits cover 61-bit values


def compute_job_id(m: int, k: int, n: int, root_a: bytes, root_b: bytes) -> bytes:
    """``HK(K("job-id"), u32(m) || u32(k) || u32(n) || root_A || root_B)``.

    ``m, k, n`` are the dimensions as submitted (before padding) and the roots are
    those of the zero-padded matrices: the spec leaves open which shape is
    meant, and binding the submitted shape keeps a 100x300 job and its 112x384
    zero-padded twin apart (they have different results).
    """
    return HK(K("job-id"), u32(m) + u32(k) + u32(n) + root_a + root_b)


def product_hash(c: np.ndarray) -> bytes:
    """``H(C)``: BLAKE3 of the product's bytes as int32 little-endian, row-major."""
    return H(np.ascontiguousarray(c, dtype="<i4").tobytes())


def freivalds_vector(job_id: bytes, c_hash: bytes, n: int) -> list[int]:
    """The ``n`` check values: ``XOF(K("freivalds"), job_id || H(C), 8n)`` as u64, each mod p."""
    raw = np.frombuffer(XOF(K("freivalds"), job_id + c_hash, 8 * n), dtype="<u8")
    return [int(v) % FREIVALDS_MODULUS for v in raw]


def matvec_mod_p(mat: np.ndarray, vec: list[int], block_rows: int = 4096) -> list[int]:
    """``mat . vec mod p`` exactly, for an integer matrix with |entries| < 2^31 and values < 2^61.

    Each 8-bit limb of ``vec`` is multiplied in int64 (|partial sums| <
    2^31 * 2^8 * 2^20 = 2^59 for up to 2^20 columns), then the limbs are
    recombined with Python integers.
    """
    rows, cols = mat.shape
    if cols != len(vec):
        raise ValueError(f"matrix has {cols} columns, vector has {len(vec)} entries")
    v = np.array(vec, dtype=np.uint64)
    limbs = [((v >> np.uint64(_LIMB_BITS * i)) & np.uint64(255)).astype(np.int64) for i in range(_LIMBS)]
    out: list[int] = []
    for r0 in range(0, rows, block_rows):
        part = mat[r0 : r0 + block_rows].astype(np.int64)
        acc = [0] * part.shape[0]
        for i, limb in enumerate(limbs):
            col = (part @ limb).tolist()
            shift = _LIMB_BITS * i
            acc = [a + (x << shift) for a, x in zip(acc, col)]
        out.extend(a % FREIVALDS_MODULUS for a in acc)
    return out


def freivalds_check(a: np.ndarray, b: np.ndarray, c: np.ndarray, job_id: bytes) -> bool:
    """True iff ``A.(B.x) == C.x (mod p)`` for the vector of ``(job_id, H(C))``.

    ``a`` is ``m x k``, ``b`` is ``k x n``, ``c`` is ``m x n`` (the unpadded
    matrices as submitted).
    """
    m, k = a.shape
    if b.shape[0] != k or c.shape != (m, b.shape[1]):
        return False
    x = freivalds_vector(job_id, product_hash(c), c.shape[1])
    bx = matvec_mod_p(b, x)
    return matvec_mod_p(a, bx) == matvec_mod_p(c, x)
