"""BLAKE3 primitives with domain separation (docs/protocol.md section 1).

- ``H(data)``: unkeyed 32-byte digest.
- ``K(name)``: the 32-byte domain key ``H(b"pouw/v1/" + name)``.
- ``HK(key, data)``: keyed 32-byte digest.
- ``XOF(key, data, L)``: keyed extended output of ``L`` bytes.
"""

from __future__ import annotations

import functools
import struct

from blake3 import blake3

DOMAIN_PREFIX = b"pouw/v1/"


def H(data: bytes | memoryview) -> bytes:
    """Unkeyed BLAKE3, 32 bytes."""
    return blake3(data).digest()


@functools.cache
def K(name: str) -> bytes:
    """Domain key for ``name`` (ASCII): ``H(b"pouw/v1/" + name)``."""
    return H(DOMAIN_PREFIX + name.encode("ascii"))


def HK(key: bytes, data: bytes) -> bytes:
    """Keyed BLAKE3 with a 32-byte key, 32-byte digest."""
    return blake3(data, key=key).digest()


def XOF(key: bytes, data: bytes, length: int) -> bytes:
    """Keyed BLAKE3 extended output of ``length`` bytes."""
    return blake3(data, key=key).digest(length=length)


def u16(x: int) -> bytes:
    return struct.pack("<H", x)


def u32(x: int) -> bytes:
    return struct.pack("<I", x)


def u64(x: int) -> bytes:
    return struct.pack("<Q", x)


def le_int(data: bytes) -> int:
    """``LE(x)``: bytes read as an unsigned little-endian integer."""
    return int.from_bytes(data, "little")
