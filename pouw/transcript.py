"""Per-tile transcript, tickets and the win condition (docs/protocol.md section 6).

After each 128-wide chunk ``c`` of the inner dimension, every 16x16 output tile's
running int32 sum is reduced to one word ``w_c``: the XOR of its 256 entries'
bit patterns (XOR, never a sum: a sum is linear and could be computed from row
and column sums without the product). The words fold into a 16-word transcript
``T``; the ticket is a keyed hash of ``(I, J, T)``.
"""

from __future__ import annotations

import numpy as np
from blake3 import blake3

from .constants import MAX_U256, TILE, TRANSCRIPT_WORDS, R
from .hashing import HK, le_int, u32


def xor_tiles(acc: np.ndarray) -> np.ndarray:
    """XOR of the uint32 bit patterns of every 16x16 tile of ``acc`` (int32, ``(16a, 16b)``).

    Returns a uint32 array of shape ``(a, b)``.
    """
    rows, cols = acc.shape
    v = np.ascontiguousarray(acc).view(np.uint32).reshape(rows // TILE, TILE, cols)
    per_col = np.bitwise_xor.reduce(v, axis=1)  # (a, cols): contiguous row XORs
    return np.bitwise_xor.reduce(per_col.reshape(rows // TILE, cols // TILE, TILE), axis=2)


def rotl32(x: np.ndarray, s: int) -> np.ndarray:
    x = x.astype(np.uint32, copy=False)
    return (x << np.uint32(s)) | (x >> np.uint32(32 - s))


def fold_words(words: np.ndarray) -> np.ndarray:
    """Fold chunk words into transcripts.

    ``words`` has shape ``(..., k/r)`` (uint32, chunk order last); the result has
    shape ``(..., 16)``: ``T[c % 16] = rotl32(T[c % 16], 13) ^ w_c`` for each ``c``.
    """
    words = np.asarray(words, dtype=np.uint32)
    t = np.zeros(words.shape[:-1] + (TRANSCRIPT_WORDS,), np.uint32)
    for c in range(words.shape[-1]):
        slot = c % TRANSCRIPT_WORDS
        t[..., slot] = rotl32(t[..., slot], 13) ^ words[..., c]
    return t


def tile_words(a_blk: np.ndarray, bt_blk: np.ndarray) -> np.ndarray:
    """Chunk words of one tile from its noised row block ``A'`` (16 x k) and column block ``B'.T`` (16 x k).

    Exact: each chunk's 16x16 product is computed in float64 (|value| < 2^21),
    converted to int64, and the running sum kept in int64 then read as int32
    (the spec's accumulator never exceeds ``127^2 * 65536 < 2^31``).
    """
    k = a_blk.shape[1]
    nc = k // R
    a3 = a_blk.astype(np.float64).reshape(TILE, nc, R).transpose(1, 0, 2)
    b3 = bt_blk.astype(np.float64).reshape(TILE, nc, R).transpose(1, 2, 0)
    parts = np.matmul(a3, b3).astype(np.int64)  # (nc, 16, 16), exact chunk products
    acc = np.cumsum(parts, axis=0).astype(np.int32)
    return np.bitwise_xor.reduce(acc.view(np.uint32).reshape(nc, TILE * TILE), axis=1)


def ticket_message(tile_i: int, tile_j: int, transcript: np.ndarray) -> bytes:
    """The 72 bytes hashed into a ticket: ``u32(I) || u32(J) || T``."""
    return u32(tile_i) + u32(tile_j) + np.asarray(transcript, dtype="<u4").tobytes()


def compute_ticket(pow_key: bytes, tile_i: int, tile_j: int, transcript: np.ndarray) -> bytes:
    """``HK(pow_key, u32(I) || u32(J) || T)``."""
    return HK(pow_key, ticket_message(tile_i, tile_j, transcript))


def compute_tickets(pow_key: bytes, transcripts: np.ndarray, row0: int = 0, col0: int = 0) -> np.ndarray:
    """Tickets of a grid of tiles.

    ``transcripts`` has shape ``(a, b, 16)``; tile ``(x, y)`` of the grid is tile
    ``(row0 + x, col0 + y)`` of the matrix. Returns uint8 ``(a, b, 32)``.
    """
    a, b, _ = transcripts.shape
    msg = np.empty((a, b, 18), dtype="<u4")
    msg[:, :, 0] = (np.arange(a, dtype=np.uint32) + np.uint32(row0))[:, None]
    msg[:, :, 1] = (np.arange(b, dtype=np.uint32) + np.uint32(col0))[None, :]
    msg[:, :, 2:] = transcripts
    flat = msg.reshape(a * b, 72 // 4).view(np.uint8)
    buf = flat.tobytes()
    out = bytearray(32 * a * b)
    hasher = blake3(key=pow_key)
    for t in range(a * b):
        h = hasher.copy()
        h.update(buf[72 * t : 72 * t + 72])
        out[32 * t : 32 * t + 32] = h.digest()
    return np.frombuffer(bytes(out), np.uint8).reshape(a, b, 32)


def win_threshold(target: int, k: int) -> int:
    """``min(2^256 - 1, target * 256 * k)``, computed exactly then capped."""
    return min(MAX_U256, target * TILE * TILE * k)


def is_winning(ticket: bytes, threshold: int) -> bool:
    """A ticket wins iff ``LE(ticket) <= threshold``."""
    return le_int(ticket) <= threshold


def winning_tiles(tickets: np.ndarray, threshold: int) -> list[tuple[int, int, bytes]]:
    """All winning tiles of a ``(a, b, 32)`` ticket grid, row-major order."""
    a, b, _ = tickets.shape
    if threshold >= MAX_U256:
        return [(i, j, tickets[i, j].tobytes()) for i in range(a) for j in range(b)]
    # Compare the top 64 bits first: a ticket can only win if its top word is
    # at most the threshold's top word; check candidates exactly.
    top = tickets[:, :, 24:32].copy().view("<u8")[:, :, 0]
    cand = np.nonzero(top <= np.uint64(threshold >> 192))
    wins = []
    for i, j in zip(*cand, strict=True):
        t = tickets[i, j].tobytes()
        if is_winning(t, threshold):
            wins.append((int(i), int(j), t))
    wins.sort()
    return wins
