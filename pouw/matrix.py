"""Input validation and padding of mining/job matrices (docs/protocol.md section 2)."""

from __future__ import annotations

import numpy as np

from .constants import K_MAX, K_MIN, MN_MAX, MN_MIN, TILE, VALUE_MAX, VALUE_MIN, R
from .errors import InvalidMatrixError


def validate_entries(x: np.ndarray, name: str) -> None:
    """Raise unless ``x`` is an int8 array whose entries all lie in ``[-64, 63]``."""
    if not isinstance(x, np.ndarray):
        raise InvalidMatrixError(f"{name}: expected a numpy array, found {type(x).__name__}")
    if x.dtype != np.int8:
        raise InvalidMatrixError(f"{name}: expected dtype int8, found {x.dtype}")
    if x.size:
        lo, hi = int(x.min()), int(x.max())
        if lo < VALUE_MIN or hi > VALUE_MAX:
            bad = lo if lo < VALUE_MIN else hi
            raise InvalidMatrixError(
                f"{name}: entries must lie in [{VALUE_MIN}, {VALUE_MAX}], found {bad}"
            )


def validate_shape(m: int, k: int, n: int) -> None:
    """Raise unless ``(m, k, n)`` meets the shape rules of section 2."""
    if k % R or not (K_MIN <= k <= K_MAX):
        raise InvalidMatrixError(
            f"k must be a multiple of {R} in [{K_MIN}, {K_MAX}], found {k}"
        )
    for name, v in (("m", m), ("n", n)):
        if v % TILE or not (MN_MIN <= v <= MN_MAX):
            raise InvalidMatrixError(
                f"{name} must be a multiple of {TILE} in [{MN_MIN}, {MN_MAX}], found {v}"
            )


def validate_pair(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """Validate a mining pair ``A`` (m x k) and ``B`` (k x n); return ``(m, k, n)``."""
    for name, x in (("A", a), ("B", b)):
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            nd = getattr(x, "ndim", None)
            raise InvalidMatrixError(f"{name}: expected a 2-D matrix, found ndim={nd}")
    if a.shape[1] != b.shape[0]:
        raise InvalidMatrixError(
            f"inner dimensions differ: A is {a.shape[0]}x{a.shape[1]}, B is {b.shape[0]}x{b.shape[1]}"
        )
    m, k = a.shape
    n = b.shape[1]
    validate_shape(m, k, n)
    validate_entries(a, "A")
    validate_entries(b, "B")
    return m, k, n


def padded_shape(m: int, k: int, n: int) -> tuple[int, int, int]:
    """The smallest shape ``>= (m, k, n)`` that meets the shape rules."""
    if min(m, k, n) < 1:
        raise InvalidMatrixError(f"every dimension must be at least 1, found {(m, k, n)}")

    def up(v: int, q: int) -> int:
        return -(-v // q) * q

    pm, pk, pn = max(up(m, TILE), MN_MIN), max(up(k, R), K_MIN), max(up(n, TILE), MN_MIN)
    if pm > MN_MAX or pn > MN_MAX or pk > K_MAX:
        raise InvalidMatrixError(
            f"shape {m}x{k}x{n} exceeds the limits (m, n <= {MN_MAX}, k <= {K_MAX})"
        )
    return pm, pk, pn


def pad_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad ``A`` and ``B`` to the shape rules; the product's top-left block is unchanged."""
    for name, x in (("A", a), ("B", b)):
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            raise InvalidMatrixError(f"{name}: expected a 2-D matrix")
        validate_entries(x, name)
    if a.shape[1] != b.shape[0]:
        raise InvalidMatrixError(
            f"inner dimensions differ: A is {a.shape[0]}x{a.shape[1]}, B is {b.shape[0]}x{b.shape[1]}"
        )
    m, k = a.shape
    n = b.shape[1]
    pm, pk, pn = padded_shape(m, k, n)
    pa = np.zeros((pm, pk), np.int8)
    pa[:m, :k] = a
    pb = np.zeros((pk, pn), np.int8)
    pb[:k, :n] = b
    return pa, pb


def transpose_int8(x: np.ndarray, block: int = 256) -> np.ndarray:
    """``x.T`` as a C-contiguous copy of an int8 matrix.

    NumPy moves one byte per step when it transposes int8, across rows: slow.
    When the row length is a multiple of 8, the matrix is transposed as 8-byte
    words (in cache-sized blocks), then each word's 8 bytes are spread over 8
    output rows: about 4x faster. Otherwise it is transposed in blocks, which
    keeps both sides in cache.
    """
    rows, cols = x.shape
    if x.itemsize == 1 and cols % 8 == 0 and x.flags.c_contiguous and rows:
        words = x.view(np.uint64)  # (rows, cols/8): word q of row r holds x[r, 8q .. 8q+7]
        wt = np.empty((cols // 8, rows), np.uint64)
        for i in range(0, rows, block):
            for j in range(0, cols // 8, block):
                wt[j : j + block, i : i + block] = words[i : i + block, j : j + block].T
        # wt[q, r] holds x[r, 8q+t] in byte t: byte t of every word of row q becomes output row 8q+t.
        spread = wt.view(np.uint8).reshape(cols // 8, rows, 8).transpose(0, 2, 1)
        return np.ascontiguousarray(spread).reshape(cols, rows).view(x.dtype)
    out = np.empty((cols, rows), x.dtype)
    for i in range(0, rows, block):
        for j in range(0, cols, block):
            out[j : j + block, i : i + block] = x[i : i + block, j : j + block].T
    return out
