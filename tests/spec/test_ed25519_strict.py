"""Strict Ed25519 (docs/protocol.md section 10): the public vectors, the attacks, and each rule on its own.

``verify_strict`` must reach the spec's verdict, which OpenSSL alone does not:
the tests that show an attack also show that ``cryptography`` by itself accepts
it, so they fail if the strict checks are taken out. The rules are checked
against a plain reference here (RFC 8032 section 5.1.3 decoding with the square
root, affine point addition), exact integers throughout.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consensus import ed25519
from consensus.ed25519 import SMALL_ORDER_Y, Y8, L, P, is_strict_point, verify_strict

# The twelve cases of "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko, 2020), copied as data from
# novifinancial/ed25519-speccheck, cases.txt (also published there as cases.json), Apache-2.0. Each is
# (message, public key, signature) in hex; the message is hex-decoded before verifying, as the project does.
SPECCHECK_CASES = [
    ("8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
     "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
     "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
     "0000000000000000000000000000000000000000000000000000000000000000"),
    ("9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
     "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
     "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43"
     "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04"),
    ("aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
     "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
     "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"
     "8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e"),
    ("9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
     "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
     "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f"
     "87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009"),
    ("e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
     "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
     "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed512"
     "5ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09"),
    ("e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
     "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
     "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7"
     "e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405"),
    ("85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
     "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
     "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e"
     "547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514"),
    ("85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
     "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
     "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa1942"
     "7e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22"),
    ("9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
     "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
     "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f"),
    ("9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
     "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
     "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908"),
    ("e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
     "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc"
     "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04"),
    ("39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
     "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc"
     "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04"),
]

# What fails in each case, by rule: (A passes 3a-3c, R passes 3a-3c, S < L). Cases 4 and 5 pass all three
# and fail the cofactorless equation (they hold only cofactored); case 3 passes everything.
SPECCHECK_RULES = [
    (False, False, True),  # 0: small-order A and R, S = 0
    (False, True, True),   # 1: small-order A
    (True, False, True),   # 2: small-order R (A mixed-order)
    (True, True, True),    # 3: mixed-order A and R, the cofactorless equation holds: valid
    (True, True, True),    # 4: cofactored equation only
    (True, True, True),    # 5: cofactored equation only
    (True, True, False),   # 6: S > L
    (True, True, False),   # 7: S >> L
    (True, False, True),   # 8: R = y p-1 with the sign bit set (x = 0), hashed reduced
    (True, False, True),   # 9: the same R, hashed as received
    (False, True, True),   # 10: A = y p-1 with the sign bit set (x = 0), hashed reduced
    (False, True, True),   # 11: the same A, hashed as received (OpenSSL accepts it)
]

# RFC 8032 section 7.1, TEST 1 to 3: (secret key, public key, message, signature).
RFC8032_VECTORS = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24"
     "655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb0"
     "0d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc0"
     "27beceea1ec40a"),
]

IDENTITY = bytes([1]) + bytes(31)
"""The identity point ``(0, 1)``: small order (1)."""
BASE = bytes([0x58]) + bytes([0x66]) * 31
"""The base point ``B``: prime order ``L``."""
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def le(n: int) -> bytes:
    return n.to_bytes(32, "little")


def openssl_accepts(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """The verdict of ``cryptography`` alone, the verifier the node used before strict checks."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except Exception:
        return False
    return True


def ref_decode(encoding: bytes) -> tuple[int, int] | None:
    """RFC 8032 section 5.1.3 decoding, step by step with the square root; ``None`` where it fails."""
    n = int.from_bytes(encoding, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P == (-u) % P:
        x = x * SQRT_M1 % P
    if v * x * x % P != u:
        return None
    if x == 0 and sign:
        return None
    return (P - x, y) if x & 1 != sign else (x, y)


def add(p1: tuple[int, int], p2: tuple[int, int]) -> tuple[int, int]:
    """Affine addition on ``-x^2 + y^2 = 1 + d x^2 y^2`` (complete: the denominators never vanish)."""
    (x1, y1), (x2, y2) = p1, p2
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + y1 * x2) * pow(1 + t, P - 2, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)


def secret_scalar(seed: bytes) -> int:
    """The clamped scalar ``a`` of an RFC 8032 private key (so ``A = [a]B``)."""
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] = (h[31] & 127) | 64
    return int.from_bytes(h, "little")


def public_of(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def challenge(r: bytes, a: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + a + message).digest(), "little") % L


def flip(data: bytes, index: int, mask: int) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1:]


# --- the public vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("case", range(12))
def test_speccheck_exactly_case_3_verifies(case):
    message, public_key, signature = (bytes.fromhex(h) for h in SPECCHECK_CASES[case])
    assert verify_strict(public_key, signature, message) is (case == 3)


@pytest.mark.parametrize("case", range(12))
def test_speccheck_each_case_fails_the_rule_it_was_made_for(case):
    message, public_key, signature = (bytes.fromhex(h) for h in SPECCHECK_CASES[case])
    found = (is_strict_point(public_key), is_strict_point(signature[:32]), int.from_bytes(signature[32:], "little") < L)
    assert found == SPECCHECK_RULES[case]


@pytest.mark.parametrize("secret,public,message,signature", RFC8032_VECTORS)
def test_rfc8032_vectors_verify(secret, public, message, signature):
    public_key, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert public_of(bytes.fromhex(secret)) == public_key
    assert verify_strict(public_key, sig, msg)
    assert not verify_strict(public_key, sig, msg + b"\x00")


def test_random_valid_signatures_verify():
    rng = random.Random(8032)
    for _ in range(32):
        seed, message = rng.randbytes(32), rng.randbytes(rng.randrange(0, 200))
        signature = Ed25519PrivateKey.from_private_bytes(seed).sign(message)
        assert verify_strict(public_of(seed), signature, message)


def test_flipping_any_byte_of_r_s_or_a_fails():
    rng = random.Random(3)
    seed, message = rng.randbytes(32), rng.randbytes(32)
    public_key, signature = public_of(seed), Ed25519PrivateKey.from_private_bytes(seed).sign(message)
    assert verify_strict(public_key, signature, message)
    for mask in (0x01, 0x80):
        for i in range(64):  # R is bytes 0..31, S bytes 32..63
            assert not verify_strict(public_key, flip(signature, i, mask), message), (i, mask)
        for i in range(32):
            assert not verify_strict(flip(public_key, i, mask), signature, message), (i, mask)


# --- the attacks (each accepted by OpenSSL alone) --------------------------------------------


def test_identity_key_with_identity_r_and_zero_s_verifies_nothing():
    """The attack of issue 13: ``A = R = identity, S = 0`` satisfies the equation for every message."""
    signature = IDENTITY + bytes(32)
    for message in (b"", bytes(32), b"spend everything", bytes(range(32))):
        assert openssl_accepts(IDENTITY, signature, message)
        assert not verify_strict(IDENTITY, signature, message)


def test_small_order_key_with_honest_looking_r_fails():
    """``A = identity``, ``R = B``, ``S = 1``: ``[1]B = B + [k]O`` for any message; only rule 3b refuses it."""
    signature = BASE + le(1)
    assert openssl_accepts(IDENTITY, signature, b"any message")
    assert is_strict_point(BASE)
    assert not verify_strict(IDENTITY, signature, b"any message")


def test_non_canonical_key_fails():
    """``A = LE(p + 1)`` is the identity spelled with ``y >= p``: OpenSSL reduces it and accepts; rule 3a refuses."""
    for y in (P, P + 1, P + 18):  # y = 0, 1, 18 spelled with y >= p
        public_key = le(y)
        assert ref_decode(public_key) is None and not is_strict_point(public_key)
    public_key, signature = le(P + 1), BASE + le(1)
    assert openssl_accepts(public_key, signature, b"m")
    assert not verify_strict(public_key, signature, b"m")


def test_small_order_r_with_a_real_key_fails():
    """``R = identity`` and ``S = k*a``: valid under the equation for a real key; rule 3b on ``R`` refuses it."""
    seed, message = bytes(range(32)), b"a message the key never signed"
    public_key = public_of(seed)
    s = challenge(IDENTITY, public_key, message) * secret_scalar(seed) % L
    signature = IDENTITY + le(s)
    assert openssl_accepts(public_key, signature, message)
    assert not verify_strict(public_key, signature, message)


def test_identity_with_sign_bit_fails():
    """``x = 0`` with the sign bit set does not decode (RFC 8032 5.1.3 step 4); OpenSSL takes it as the identity."""
    public_key = IDENTITY[:31] + b"\x80"
    assert ref_decode(public_key) is None and not is_strict_point(public_key)
    assert openssl_accepts(public_key, BASE + le(1), b"m")
    assert not verify_strict(public_key, BASE + le(1), b"m")


def test_s_plus_l_fails():
    """Malleability: ``S + L`` satisfies the same equation, and is refused (rule 2)."""
    seed, message = bytes(32), b"x"
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(message)
    s = int.from_bytes(signature[32:], "little")
    assert verify_strict(public_of(seed), signature, message)
    assert not verify_strict(public_of(seed), signature[:32] + le(s + L), message)


@pytest.mark.parametrize("public_key,signature", [
    (bytes(31), bytes(64)), (bytes(33), bytes(64)), (bytes(32), bytes(63)), (bytes(32), bytes(65)), (b"", b""),
    (bytes(range(32)), bytes(64)),
])
def test_malformed_input_is_invalid_not_an_error(public_key, signature):
    assert verify_strict(public_key, signature, b"m") is False


# --- the rules against the reference ---------------------------------------------------------


def test_small_order_y_are_exactly_the_eight_torsion_points():
    """The five ``y`` of the spec, with both signs of ``x`` where ``x != 0``, are 8 distinct points of order | 8."""
    points = set()
    for y in SMALL_ORDER_Y:
        for sign in (0, 1):
            point = ref_decode(le(y | sign << 255))
            if point is None:
                assert y in (1, P - 1) and sign == 1  # x = 0: the sign bit must be clear
                continue
            eight = point
            for _ in range(3):
                eight = add(eight, eight)
            assert eight == (0, 1), y
            points.add(point)
            assert not is_strict_point(le(y | sign << 255))
    assert len(points) == 8
    assert Y8 in SMALL_ORDER_Y and P - Y8 in SMALL_ORDER_Y
    order8 = ref_decode(bytes.fromhex(SPECCHECK_CASES[0][1]))  # speccheck's small-order key
    assert order8 is not None and order8[1] in (Y8, P - Y8)


def test_point_check_matches_rfc8032_decoding():
    """``is_strict_point`` (Legendre symbol) agrees with the square-root decoding on edges and random values."""
    rng = random.Random(255)
    ys = [*range(64), *range(P - 64, P + 64), (1 << 255) - 1, Y8, P - Y8, *(rng.randrange(P) for _ in range(400))]
    seen = {True: 0, False: 0}
    for y in ys:
        for sign in (0, 1):
            encoding = le((y % (1 << 255)) | sign << 255)
            decodes = ref_decode(encoding) is not None
            if y < P:  # the decoding step alone, x = 0 with the sign bit included (rule 3b also covers those y)
                assert ed25519._decodes(y, sign) is decodes, (y, sign)
            expected = decodes and (y % (1 << 255)) not in SMALL_ORDER_Y
            assert is_strict_point(encoding) is expected, (y, sign)
            seen[expected] += 1
    assert seen[True] > 100 and seen[False] > 100  # both outcomes were exercised


def test_jacobi_matches_euler_criterion():
    rng = random.Random(19)
    for a in [0, 1, 2, P - 1, *(rng.randrange(P) for _ in range(300))]:
        euler = pow(a, (P - 1) // 2, P)
        assert ed25519._jacobi(a, P) == (0 if a == 0 else 1 if euler == 1 else -1)


def test_public_key_cache_is_bounded_and_changes_no_verdict():
    """Fresh keys from an attacker only evict entries: the cache never holds more than its bound."""
    rng = random.Random(7)
    seed, message = rng.randbytes(32), b"m"
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(message)
    assert verify_strict(public_of(seed), signature, message)
    for _ in range(ed25519.PUBLIC_KEY_CACHE_SIZE + 50):
        verify_strict(rng.randbytes(32), signature, message)
    info = ed25519._checked_public_key.cache_info()
    assert info.maxsize == ed25519.PUBLIC_KEY_CACHE_SIZE and info.currsize <= info.maxsize
    assert verify_strict(public_of(seed), signature, message)
    assert not verify_strict(IDENTITY, IDENTITY + bytes(32), message)
    assert not verify_strict(IDENTITY, IDENTITY + bytes(32), message)  # a cached refusal stays a refusal
