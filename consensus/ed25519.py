"""Strict Ed25519 verification: the one verdict every node must reach (docs/protocol.md section 10).

Ed25519 verifiers disagree on edge cases (small-order points, non-canonical
encodings, ``S >= L``, cofactored or cofactorless equations; Chalkias, Garillot
and Nikolaenko, "Taming the many EdDSAs", 2020). On a chain a disagreement is a
split: a block one implementation accepts and another rejects. So the verdict
is pinned by the spec's rules alone, and OpenSSL (``cryptography``) is used
only for the last of them, the equation, after this module has made the checks
OpenSSL does not make. With ``A`` the 32-byte public key and ``sig = R || S``,
in the order made here (cheapest first; the verdict is their conjunction, so
the order changes only the time spent on a bad signature):

1. Lengths 32 and 64, so nothing else runs on malformed input.
2. ``S = LE(sig[32:]) < L``. Otherwise ``S`` and ``S + L`` both verify:
   anyone could re-sign a transfer into one with a new id (malleability).
   OpenSSL checks it too; it is repeated because it costs one comparison.
3. ``A`` (result cached, see below) and then ``R``, each:

   a. ``y = LE(bytes) mod 2^255 < p``. Otherwise one point has two
      encodings; OpenSSL reduces a non-canonical ``A`` and hashes the bytes as
      received, so ``A = LE(p + 1)`` (the identity, spelled non-canonically)
      would verify ``R = B, S = 1`` for any message.
   b. ``y`` is not one of ``0, 1, p-1, Y8, p-Y8``: those are the eight points
      of order dividing 8 (each ``y`` with both signs of ``x``). A small-order
      ``A`` makes ``[k]A`` take at most eight values whatever the message, so
      ``A = identity, R = identity, S = 0`` verifies every message: anyone
      could spend from an address funded at that key. A small-order ``R`` is
      refused so that ``R`` carries the signer's commitment, as libsodium does.
      Made before (c) because it is one set lookup.
   c. The bytes decode as RFC 8032 section 5.1.3 says: ``x^2 = u / v`` with
      ``u = y^2 - 1``, ``v = d*y^2 + 1`` has a square root, and ``x = 0`` comes
      with the sign bit clear. Only whether the root exists matters, not the
      root, so this computes the Legendre symbol of ``u*v`` (a square iff
      ``u / v`` is, as ``v`` is never 0) with the binary Jacobi algorithm,
      about four times faster in CPython than the exponentiation RFC 8032 uses.
      OpenSSL refuses an off-curve ``A`` itself, and its byte comparison of
      the recomputed ``R`` already implies this for ``R``; it is checked here
      so that the verdict does not rest on how one library happens to compare.

4. The cofactorless equation ``[S]B = R + [k]A`` with
   ``k = SHA-512(R || A || M) mod L`` over the bytes as received, by
   ``Ed25519PublicKey.verify``; any exception from it means invalid. Never a
   cofactored or batch equation: those accept signatures the cofactorless one
   refuses (speccheck cases 4 and 5).

Under these rules exactly case 3 of the twelve speccheck cases verifies, as
with released libsodium (tests/spec/test_ed25519_strict.py).

Exact integers only. The checks on ``A`` (and the loaded OpenSSL key) are kept
in a bounded LRU cache keyed by the 32 bytes: a sender's key is checked once
per ``PUBLIC_KEY_CACHE_SIZE`` distinct keys seen, and an attacker sending fresh
keys only evicts entries, it cannot grow the cache. ``R`` is fresh in every
signature and is never cached.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

P = (1 << 255) - 19
"""The field prime ``p``."""
L = (1 << 252) + 27742317777372353535851937790883648493
"""The order of the base point ``B``."""
D = -121665 * pow(121666, P - 2, P) % P
"""The curve constant ``d = -121665/121666 mod p``."""
Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
"""The ``y`` of the points of order 8 (with ``p - Y8``)."""
SMALL_ORDER_Y = frozenset({0, 1, P - 1, Y8, P - Y8})
"""``y`` of every point of order dividing 8: refused for ``A`` and ``R``."""

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
PUBLIC_KEY_CACHE_SIZE = 4096
"""Entries of the LRU cache of checked public keys (a few hundred bytes each)."""

_Y_MASK = (1 << 255) - 1


def verify_strict(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True iff ``signature`` is a strict Ed25519 signature of ``message`` by ``public_key`` (see module doc)."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    signature = bytes(signature)
    if int.from_bytes(signature[32:], "little") >= L:
        return False
    key = _checked_public_key(bytes(public_key))
    if key is None or not is_strict_point(signature[:32]):
        return False
    try:
        key.verify(signature, bytes(message))
    except Exception:  # the spec: any exception from verify means invalid
        return False
    return True


def is_strict_point(encoding: bytes) -> bool:
    """True iff the 32 bytes are the canonical encoding of a curve point not of small order (rules 3a-3c)."""
    n = int.from_bytes(encoding, "little")
    y = n & _Y_MASK
    if y >= P or y in SMALL_ORDER_Y:
        return False
    return _decodes(y, n >> 255)


def _decodes(y: int, sign: int) -> bool:
    """RFC 8032 section 5.1.3 decoding of ``(y, sign)`` succeeds (``y < p`` already checked)."""
    yy = y * y % P
    u = (yy - 1) % P
    if u == 0:  # x = 0: only the sign bit 0 encodes it
        return sign == 0
    return _jacobi(u * ((D * yy + 1) % P) % P, P) == 1


def _jacobi(a: int, n: int) -> int:
    """Jacobi symbol ``(a / n)`` for odd ``n > 0`` (the Legendre symbol when ``n`` is prime)."""
    a %= n
    t = 1
    while a:
        zeros = (a & -a).bit_length() - 1
        a >>= zeros
        if zeros & 1 and n & 7 in (3, 5):  # (2/n) = -1 iff n = 3, 5 mod 8
            t = -t
        if a & n & 2:  # quadratic reciprocity: both 3 mod 4
            t = -t
        a, n = n % a, a
    return t if n == 1 else 0


@lru_cache(maxsize=PUBLIC_KEY_CACHE_SIZE)
def _checked_public_key(public_key: bytes) -> Ed25519PublicKey | None:
    """The OpenSSL key of ``public_key`` if it passes rules 3a-3c, else ``None``; cached (bounded)."""
    if not is_strict_point(public_key):
        return None
    return Ed25519PublicKey.from_public_bytes(public_key)
