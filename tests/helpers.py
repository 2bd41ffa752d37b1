"""Small builders shared by tests (random int7 matrices, a mined header/certificate pair)."""

from __future__ import annotations

import numpy as np

from pouw.header import HeaderPre

EASY_TARGET = 1 << 240
"""With k >= 256 the win threshold target*256*k saturates: every tile wins."""


def int7(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    return rng.integers(-64, 64, (rows, cols), dtype=np.int8)


def template(m: int, k: int, n: int, target: int = EASY_TARGET, height: int = 1) -> HeaderPre:
    return HeaderPre(1, height, bytes(range(32)), bytes(32), 1_700_000_000, target, 0, m, n, k)


def mined_pair(m=64, k=256, n=48, seed=1, target=EASY_TARGET, winner_index=0):
    """Mine with the NumPy backend; return (header bytes, certificate bytes, result, prepared)."""
    from kernels.base import prepare
    from kernels.select import get_backend

    rng = np.random.default_rng(seed)
    prepared = prepare(int7(rng, m, k), int7(rng, k, n))
    backend = get_backend("numpy")
    nonce = 0
    while True:
        result = backend.mine(prepared, template(m, k, n, target), nonce)
        if result.winners:
            w = result.winners[min(winner_index, len(result.winners) - 1)]
            return (result.header(prepared, w).encode(), result.certificate(prepared, w).encode(),
                    result, prepared)
        nonce += 1
