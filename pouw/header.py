"""Block header byte layout and block id (docs/protocol.md section 4).

``HeaderPre`` (140 bytes) is what a miner fixes before multiplying; ``Header``
(212 bytes) adds the matrix roots and the winning tile. The block id is
``HK(K("block"), Header)``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from .constants import HEADER_PRE_SIZE, HEADER_SIZE, MAX_U256, TILE, R
from .errors import DecodeError, EncodeError
from .hashing import HK, K

_PRE = struct.Struct("<IQ32s32sQ32sQIIIHH")
_TAIL = struct.Struct("<32s32sII")
assert _PRE.size == HEADER_PRE_SIZE and _PRE.size + _TAIL.size == HEADER_SIZE


def _check_u(name: str, value: int, bits: int) -> None:
    if not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise EncodeError(f"{name} must be an unsigned {bits}-bit integer, found {value!r}")


def _check_b32(name: str, value: bytes) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise EncodeError(f"{name} must be 32 bytes, found {value!r}")


@dataclass(frozen=True)
class HeaderPre:
    """The part of the header a miner fixes before mining."""

    version: int
    """Protocol version, 1."""
    height: int
    """Block height (genesis is 0)."""
    prev_id: bytes
    """Id of the parent block, 32 bytes (all zero for genesis)."""
    tx_root: bytes
    """Merkle root of the block's transaction ids, coinbase first."""
    time: int
    """Unix seconds."""
    target: int
    """256-bit difficulty target; a ticket wins if ``LE(ticket) <= min(2^256-1, target*256*k)``."""
    nonce: int
    """Free 64-bit value; every nonce gives fresh noise."""
    m: int
    n: int
    k: int
    r: int = R
    b: int = TILE

    def encode(self) -> bytes:
        """The 140 bytes of HeaderPre."""
        for name, bits in (("version", 32), ("height", 64), ("time", 64), ("nonce", 64),
                           ("m", 32), ("n", 32), ("k", 32), ("r", 16), ("b", 16)):
            _check_u(name, getattr(self, name), bits)
        _check_u("target", self.target, 256)
        _check_b32("prev_id", self.prev_id)
        _check_b32("tx_root", self.tx_root)
        return _PRE.pack(self.version, self.height, bytes(self.prev_id), bytes(self.tx_root),
                         self.time, self.target.to_bytes(32, "little"), self.nonce,
                         self.m, self.n, self.k, self.r, self.b)

    @classmethod
    def decode(cls, data: bytes) -> HeaderPre:
        """Parse exactly 140 bytes."""
        if len(data) != HEADER_PRE_SIZE:
            raise DecodeError(f"HeaderPre must be {HEADER_PRE_SIZE} bytes, found {len(data)}")
        v, h, prev, txr, t, tgt, nonce, m, n, k, r, b = _PRE.unpack(data)
        return cls(v, h, prev, txr, t, int.from_bytes(tgt, "little"), nonce, m, n, k, r, b)

    def with_nonce(self, nonce: int) -> HeaderPre:
        return replace(self, nonce=nonce)


@dataclass(frozen=True)
class Header:
    """The full 212-byte header: HeaderPre, matrix roots and winning tile."""

    pre: HeaderPre
    root_a: bytes
    root_b: bytes
    tile_i: int
    tile_j: int

    def encode(self) -> bytes:
        """The 212 bytes of Header."""
        _check_b32("root_a", self.root_a)
        _check_b32("root_b", self.root_b)
        _check_u("tile_i", self.tile_i, 32)
        _check_u("tile_j", self.tile_j, 32)
        return self.pre.encode() + _TAIL.pack(bytes(self.root_a), bytes(self.root_b),
                                              self.tile_i, self.tile_j)

    @classmethod
    def decode(cls, data: bytes) -> Header:
        """Parse exactly 212 bytes."""
        if len(data) != HEADER_SIZE:
            raise DecodeError(f"Header must be {HEADER_SIZE} bytes, found {len(data)}")
        pre = HeaderPre.decode(data[:HEADER_PRE_SIZE])
        ra, rb, ti, tj = _TAIL.unpack(data[HEADER_PRE_SIZE:])
        return cls(pre, ra, rb, ti, tj)

    @property
    def block_id(self) -> bytes:
        return compute_block_id(self.encode())


def compute_block_id(header_bytes: bytes) -> bytes:
    """``HK(K("block"), Header)``."""
    return HK(K("block"), header_bytes)


def compute_work(target: int) -> int:
    """Expected multiply-accumulates of a block at ``target``: ``floor(2^256 / (target + 1))``."""
    if not 0 <= target <= MAX_U256:
        raise ValueError(f"target must be a 256-bit unsigned integer, found {target}")
    return (1 << 256) // (target + 1)
