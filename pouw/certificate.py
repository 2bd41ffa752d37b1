"""Certificate byte layout (docs/protocol.md section 8).

```
Certificate = A_blk (16*k bytes) || Bt_blk (16*k bytes)
           || u8(len(path_A)) || path_A (32 bytes each) || u8(len(path_B)) || path_B
```
The length is fixed by the header: ``32*k + 2 + 32*(depth_A + depth_B)``; the
verifier checks the depths against the tree shape, so one header has exactly
one certificate encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import TILE
from .errors import DecodeError, EncodeError
from .merkle import path_depth


@dataclass(frozen=True)
class Certificate:
    a_blk: bytes
    """Rows ``16I .. 16I+15`` of ``A``, int8 row-major (16*k bytes)."""
    bt_blk: bytes
    """Columns ``16J .. 16J+15`` of ``B`` as 16 rows of ``B.T`` (16*k bytes)."""
    path_a: tuple[bytes, ...]
    """Inclusion path of leaf ``I`` in the tree of ``A``, leaf upwards."""
    path_b: tuple[bytes, ...]
    """Inclusion path of leaf ``J`` in the tree of ``B``."""

    def encode(self) -> bytes:
        if len(self.a_blk) != len(self.bt_blk) or len(self.a_blk) % TILE:
            raise EncodeError("A_blk and Bt_blk must both be 16*k bytes")
        for p in (self.path_a, self.path_b):
            if len(p) > 255 or any(len(h) != 32 for h in p):
                raise EncodeError("a path holds at most 255 hashes of 32 bytes")
        return b"".join([
            self.a_blk, self.bt_blk,
            bytes([len(self.path_a)]), *self.path_a,
            bytes([len(self.path_b)]), *self.path_b,
        ])

    def a_matrix(self) -> np.ndarray:
        """``A_blk`` as a ``(16, k)`` int8 array."""
        return np.frombuffer(self.a_blk, np.int8).reshape(TILE, -1)

    def bt_matrix(self) -> np.ndarray:
        """``Bt_blk`` as a ``(16, k)`` int8 array."""
        return np.frombuffer(self.bt_blk, np.int8).reshape(TILE, -1)


def certificate_length(k: int, m: int, n: int, tile_i: int, tile_j: int) -> int:
    """The one valid encoded length for a header with these fields."""
    return 32 * k + 2 + 32 * (path_depth(tile_i, m // TILE) + path_depth(tile_j, n // TILE))


def decode_certificate(data: bytes, k: int) -> Certificate:
    """Parse a certificate for inner dimension ``k``; rejects trailing or missing bytes."""
    blk = TILE * k
    pos = 2 * blk
    if len(data) < pos + 2:
        raise DecodeError(f"certificate too short: {len(data)} bytes for k={k}")
    paths = []
    for name in ("path_A", "path_B"):
        if pos >= len(data):
            raise DecodeError(f"certificate truncated before the length of {name}")
        count = data[pos]
        pos += 1
        end = pos + 32 * count
        if end > len(data):
            raise DecodeError(f"certificate truncated inside {name} ({count} hashes announced)")
        paths.append(tuple(data[pos + 32 * i : pos + 32 * i + 32] for i in range(count)))
        pos = end
    if pos != len(data):
        raise DecodeError(f"certificate has {len(data) - pos} trailing bytes")
    return Certificate(bytes(data[:blk]), bytes(data[blk : 2 * blk]), paths[0], paths[1])


def make_certificate(a: np.ndarray, b: np.ndarray, commitment, tile_i: int, tile_j: int) -> Certificate:
    """The certificate a miner publishes for winning tile ``(tile_i, tile_j)``.

    ``commitment`` is the ``pouw.commit.Commitment`` of ``(a, b)``.
    """
    a_blk = np.ascontiguousarray(a[TILE * tile_i : TILE * tile_i + TILE]).tobytes()
    bt_blk = np.ascontiguousarray(b[:, TILE * tile_j : TILE * tile_j + TILE].T).tobytes()
    return Certificate(a_blk, bt_blk, tuple(commitment.path_a(tile_i)), tuple(commitment.path_b(tile_j)))
