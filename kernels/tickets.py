"""Ticket hashing for many tiles at once: BLAKE3 vectorised across tiles in NumPy.

A ticket is ``HK(pow_key, u32(I) || u32(J) || T)`` over 72 bytes (docs/protocol.md
section 6): one BLAKE3 chunk of two blocks, so two compressions. Hashing tiles
one by one through the ``blake3`` package costs about 2 us each and holds the
GIL; here every step of the compression function is one NumPy operation over
all tiles of a batch, which releases the GIL and keeps the other mining threads
running. ``pouw.transcript.compute_tickets`` is the plain reference; the tests
check this one against it and against the BLAKE3 test vectors' construction.
"""

from __future__ import annotations

import numpy as np

from pouw.transcript import compute_tickets

IV = np.array([0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
               0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19], np.uint32)
CHUNK_START, CHUNK_END, ROOT, KEYED_HASH = 1, 2, 8, 16
PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)

# Message word order of each round: round 0 uses words 0..15, each later round
# the previous order permuted.
_SCHEDULE: list[tuple[int, ...]] = [tuple(range(16))]
for _ in range(6):
    _SCHEDULE.append(tuple(_SCHEDULE[-1][p] for p in PERMUTATION))
# Per round: (column mx, column my, diagonal mx, diagonal my) as index arrays.
_ROUND_WORDS = [
    (np.array(s[0:8:2]), np.array(s[1:8:2]), np.array(s[8:16:2]), np.array(s[9:16:2])) for s in _SCHEDULE
]
_LEFT1, _LEFT2, _LEFT3 = np.array([1, 2, 3, 0]), np.array([2, 3, 0, 1]), np.array([3, 0, 1, 2])


class _Lanes:
    """Scratch for one batch: the state as four ``(4, N)`` rows (a, b, c, d) and a temporary."""

    def __init__(self, n: int) -> None:
        self.a, self.b, self.c, self.d, self.t = (np.empty((4, n), np.uint32) for _ in range(5))

    def _rotr(self, x: np.ndarray, s: int) -> None:
        np.right_shift(x, np.uint32(s), out=self.t)
        np.left_shift(x, np.uint32(32 - s), out=x)
        np.bitwise_or(x, self.t, out=x)

    def _half_g(self, a, b, c, d, m, rot_d: int, rot_b: int) -> None:
        a += b
        a += m
        d ^= a
        self._rotr(d, rot_d)
        c += d
        b ^= c
        self._rotr(b, rot_b)

    def _g(self, a, b, c, d, mx, my) -> None:
        """BLAKE3's G on four columns (or diagonals) at once."""
        self._half_g(a, b, c, d, mx, 16, 12)
        self._half_g(a, b, c, d, my, 8, 7)

    def compress(self, cv: np.ndarray, block: np.ndarray, block_len: int, flags: int) -> np.ndarray:
        """BLAKE3 compression of ``block`` (``(16, N)`` words) under ``cv`` (``(8, N)`` or ``(8, 1)``).

        Counter 0 (every ticket is the first and only chunk). Returns the new
        chaining value, ``(8, N)``.
        """
        a, b, c, d = self.a, self.b, self.c, self.d
        a[...] = cv[0:4]
        b[...] = cv[4:8]
        c[...] = IV[0:4, None]
        d[0:2] = 0
        d[2] = block_len
        d[3] = flags
        for cmx, cmy, dmx, dmy in _ROUND_WORDS:
            self._g(a, b, c, d, block[cmx], block[cmy])
            # Diagonal step: rotate rows b, c, d left by 1, 2, 3 so the diagonals line up as columns.
            b[...] = b[_LEFT1]
            c[...] = c[_LEFT2]
            d[...] = d[_LEFT3]
            self._g(a, b, c, d, block[dmx], block[dmy])
            b[...] = b[_LEFT3]
            c[...] = c[_LEFT2]
            d[...] = d[_LEFT1]
        return np.concatenate([a ^ c, b ^ d], axis=0)


def ticket_batch(pow_key: bytes, rows: np.ndarray, cols: np.ndarray, transcripts: np.ndarray) -> np.ndarray:
    """Tickets of ``N`` tiles: ``HK(pow_key, u32(I) || u32(J) || T)``, as uint8 ``(N, 32)``.

    ``rows``, ``cols``: tile indices ``I``, ``J`` (``(N,)``); ``transcripts``:
    ``(N, 16)`` uint32.
    """
    n = transcripts.shape[0]
    key = np.frombuffer(pow_key, dtype="<u4").astype(np.uint32).reshape(8, 1)
    block = np.empty((16, n), np.uint32)
    block[0] = rows
    block[1] = cols
    block[2:16] = transcripts[:, 0:14].T
    lanes = _Lanes(n)
    cv = lanes.compress(key, block, 64, CHUNK_START | KEYED_HASH)
    block[0:2] = transcripts[:, 14:16].T
    block[2:16] = 0
    out = lanes.compress(cv, block, 8, CHUNK_END | ROOT | KEYED_HASH)
    return np.ascontiguousarray(out.T).astype("<u4", copy=False).view(np.uint8).reshape(n, 32)


VECTOR_MIN_LANES = 1024
"""Below this many tiles the per-call cost of ~1,500 NumPy steps exceeds hashing tile by tile."""


def grid_tickets(pow_key: bytes, transcripts: np.ndarray, row0: int = 0, col0: int = 0, *,
                 min_lanes: int = VECTOR_MIN_LANES) -> np.ndarray:
    """Tickets of a grid of tiles, like ``pouw.transcript.compute_tickets``: ``(a, b, 16)`` -> ``(a, b, 32)``.

    Grids of fewer than ``min_lanes`` tiles go through the reference (one
    ``blake3`` call per tile): cheaper there, and a small mining shape must not
    hold the GIL for a millisecond of tiny NumPy calls per nonce.
    """
    a, b, _ = transcripts.shape
    if a * b < min_lanes:
        return compute_tickets(pow_key, transcripts, row0=row0, col0=col0)
    rows = np.repeat(np.arange(row0, row0 + a, dtype=np.uint32), b)
    cols = np.tile(np.arange(col0, col0 + b, dtype=np.uint32), a)
    return ticket_batch(pow_key, rows, cols, transcripts.reshape(a * b, 16)).reshape(a, b, 32)
