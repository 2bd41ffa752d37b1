"""Jobs, their ids and the Freivalds check of a product (docs/protocol.md section 9).

A job is a matrix pair ``(A, B)``; its id is content-addressed. The result is
the exact product of the matrices as submitted, checked with Freivalds' test
modulo ``p = 2^61 - 1``: for a vector ``x`` derived from the job id and the
product's hash, ``A.(B.x) == C.x (mod p)``. A wrong ``C`` passes with
probability at most ``1/p``. All arithmetic is exact: limbs of ``x`` small
enough that no partial sum can round, recombined modulo p in uint64.
"""

from __future__ import annotations

import numpy as np

from .hashing import HK, XOF, H, K, u32

FREIVALDS_MODULUS = (1 << 61) - 1
_LIMB_BITS = 8


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
    return H(np.ascontiguousarray(c, dtype="<i4").data.cast("B"))  # hashed in place, no copy


def freivalds_vector(job_id: bytes, c_hash: bytes, n: int) -> list[int]:
    """The ``n`` check values: ``XOF(K("freivalds"), job_id || H(C), 8n)`` as u64, each mod p."""
    raw = np.frombuffer(XOF(K("freivalds"), job_id + c_hash, 8 * n), dtype="<u8")
    return [int(v) % FREIVALDS_MODULUS for v in raw]


def _mul_pow2_mod_p(x: np.ndarray, shift: int) -> np.ndarray:
    """``x * 2^shift mod p`` for uint64 ``x`` in ``[0, p)``: a 61-bit rotation, since ``2^61 = 1 (mod p)``."""
    shift %= 61
    if shift == 0:
        return x
    p = np.uint64(FREIVALDS_MODULUS)
    return ((x << np.uint64(shift)) & p) | (x >> np.uint64(61 - shift))


def matvec_mod_p(mat: np.ndarray, vec: list[int], block_rows: int = 4096) -> list[int]:
    """``mat . vec mod p`` exactly, for an integer matrix with |entries| < 2^31 and values < 2^61.

    ``vec`` is split into limbs of ``L`` bits; each limb's product is computed
    in float64 (BLAS), exact because every partial sum is an integer below
    ``max|mat| * (2^L - 1) * cols <= 2^53``, with ``L`` chosen from the actual
    matrix. When the bound leaves fewer than 8 bits per limb, 8-bit limbs in
    int64 are used instead (``2^31 * 2^8 * 2^20 < 2^63``). The limb products
    are recombined modulo ``p`` in uint64: reduce each, multiply by its
    ``2^(L*i)`` as a rotation of 61 bits (``p`` is a Mersenne prime), add
    (at most 8 terms below ``2^61``: no overflow) and fold once.
    """
    rows, cols = mat.shape
    if cols != len(vec):
        raise ValueError(f"matrix has {cols} columns, vector has {len(vec)} entries")
    v = np.array(vec, dtype=np.uint64)
    max_abs = max(int(mat.max()), -int(mat.min())) if mat.size else 0
    limb_bits = 53 - max(1, max_abs * cols).bit_length()
    dtype: type[np.float64] | type[np.int64]
    if limb_bits >= 8:
        dtype, limb_bits = np.float64, min(limb_bits, 61)
    else:
        dtype, limb_bits = np.int64, _LIMB_BITS
    limbs_count = -(-61 // limb_bits)
    mask = np.uint64((1 << limb_bits) - 1)
    limbs = np.stack([((v >> np.uint64(limb_bits * i)) & mask).astype(dtype) for i in range(limbs_count)], axis=1)
    p = np.uint64(FREIVALDS_MODULUS)
    out = np.empty(rows, np.uint64)
    for r0 in range(0, rows, block_rows):
        cols_by_limb = (mat[r0 : r0 + block_rows].astype(dtype) @ limbs).astype(np.int64)  # exact integers
        acc = np.zeros(cols_by_limb.shape[0], np.uint64)
        for i in range(limbs_count):
            reduced = np.mod(cols_by_limb[:, i], np.int64(FREIVALDS_MODULUS)).astype(np.uint64)
            acc += _mul_pow2_mod_p(reduced, limb_bits * i)
        acc = (acc & p) + (acc >> np.uint64(61))
        out[r0 : r0 + block_rows] = np.where(acc >= p, acc - p, acc)
    return out.tolist()


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
