"""Protocol constants of consensus v1 (docs/protocol.md section 2)."""

R = 128
"""Noise rank and chunk width of the inner dimension."""

TILE = 16
"""Edge of a ticket tile (``b`` in the spec); also the Merkle row-block height."""

VALUE_MIN = -64
VALUE_MAX = 63
"""Every entry of a mining or job matrix lies in ``[VALUE_MIN, VALUE_MAX]`` (7-bit signed)."""

K_MIN = 256
K_MAX = 65536
MN_MIN = 16
MN_MAX = 1 << 20

HEADER_PRE_SIZE = 140
HEADER_SIZE = 212

TRANSCRIPT_WORDS = 16
"""Number of u32 words in a tile transcript ``T``."""

MAX_U256 = (1 << 256) - 1

PROTOCOL_VERSION = 1
"""``version`` field of every header of consensus v1."""
