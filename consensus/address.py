"""Account addresses and their bech32m text form (docs/protocol.md section 10, BIP-350).

An address is the first 20 bytes of ``HK(K("address"), ed25519_public_key)``.
People see it as bech32m: the network's human-readable prefix (``pdev``,
``ptest``, ``pouw``), the separator ``1``, the 20 bytes regrouped into 32
five-bit characters, and a 6-character bech32m checksum. Unlike a segwit
address there is no witness version character: the data part is the address
and nothing else. Mixed case is rejected, as BIP-173 requires.
"""

from __future__ import annotations

from pouw.hashing import HK, K

from .errors import AddressError
from .types import ADDRESS_SIZE, PUBKEY_SIZE

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32M_CONST = 0x2BC830A3
MAX_LENGTH = 90
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def compute_address(pubkey: bytes) -> bytes:
    """The 20-byte address of an Ed25519 public key."""
    if len(pubkey) != PUBKEY_SIZE:
        raise ValueError(f"an Ed25519 public key is {PUBKEY_SIZE} bytes, found {len(pubkey)}")
    return HK(K("address"), bytes(pubkey))[:ADDRESS_SIZE]


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _create_checksum(hrp: str, data: list[int]) -> list[int]:
    poly = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ BECH32M_CONST
    return [(poly >> 5 * (5 - i)) & 31 for i in range(6)]


def convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    """Regroup a sequence of ``from_bits``-bit values into ``to_bits``-bit values (BIP-173)."""
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            raise AddressError(f"value {value} does not fit in {from_bits} bits")
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        raise AddressError("non-zero padding bits in the data part")
    return out


def bech32m_encode(hrp: str, data: list[int]) -> str:
    """Encode 5-bit ``data`` under ``hrp`` with a bech32m checksum."""
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp) or hrp.lower() != hrp:
        raise AddressError(f"human-readable prefix must be lower-case printable ASCII, found {hrp!r}")
    out = hrp + "1" + "".join(CHARSET[d] for d in data + _create_checksum(hrp, data))
    if len(out) > MAX_LENGTH:
        raise AddressError(f"bech32m string longer than {MAX_LENGTH} characters")
    return out


def bech32m_decode(text: str) -> tuple[str, list[int]]:
    """Split a bech32m string into its prefix and 5-bit data; raise ``AddressError`` on any fault."""
    if not isinstance(text, str):
        raise AddressError(f"an address is a string, found {type(text).__name__}")
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise AddressError("address holds a character outside printable ASCII")
    if text.lower() != text and text.upper() != text:
        raise AddressError("address mixes upper and lower case")
    if len(text) > MAX_LENGTH:
        raise AddressError(f"address longer than {MAX_LENGTH} characters ({len(text)})")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or sep + 7 > len(text):
        raise AddressError("address needs a prefix, the separator '1' and a 6-character checksum")
    hrp, rest = text[:sep], text[sep + 1 :]
    if any(c not in CHARSET for c in rest):
        raise AddressError("address data holds a character outside the bech32 alphabet")
    data = [CHARSET.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + data) != BECH32M_CONST:
        raise AddressError("bech32m checksum mismatch (a typo, or a bech32 rather than bech32m string)")
    return hrp, data[:-6]


def encode_address(address: bytes, hrp: str) -> str:
    """Show a 20-byte address as bech32m under ``hrp``."""
    if len(address) != ADDRESS_SIZE:
        raise AddressError(f"an address is {ADDRESS_SIZE} bytes, found {len(address)}")
    return bech32m_encode(hrp, convert_bits(bytes(address), 8, 5, pad=True))


def decode_address(text: str, hrp: str) -> bytes:
    """Parse a bech32m address of the network whose prefix is ``hrp``."""
    got_hrp, data = bech32m_decode(text)
    if got_hrp != hrp:
        raise AddressError(f"expected prefix {hrp!r}, found {got_hrp!r}")
    raw = bytes(convert_bits(data, 5, 8, pad=False))
    if len(raw) != ADDRESS_SIZE:
        raise AddressError(f"an address is {ADDRESS_SIZE} bytes, found {len(raw)}")
    return raw
