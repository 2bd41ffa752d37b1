"""Strict Ed25519 figures: microseconds per verification, before (OpenSSL alone) and after (``verify_strict``).

Prints figures, asserts nothing. Each figure is the best of ``--repeat`` runs
of ``--count`` calls (the best run is the one least disturbed by other load):

1. A valid signature: OpenSSL alone (the node's check before issue 13, key
   loaded each call), ``verify_strict`` with the sender's key in the LRU cache
   (a sender seen before), and with the cache cleared before every call (a key
   never seen, or one an attacker's fresh keys evicted).
2. A transfer: ``is_signature_valid`` (sighash included), and OpenSSL alone on
   the same transfer.
3. The pieces: one point check (``is_strict_point``, Legendre symbol by the
   Jacobi algorithm) against the exponentiation RFC 8032's decoding uses.
4. Refusals: ``S >= L``, a small-order key (cached and not), the identity
   attack, a signature of another message.

    .venv/bin/python bench/ed25519.py
    .venv/bin/python bench/ed25519.py --count 5000 --repeat 7
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consensus import ed25519
from consensus.ed25519 import L, P, is_strict_point, verify_strict
from consensus.keys import devnet_keypairs
from consensus.tx import compute_sighash, is_signature_valid, make_transfer


def per_call_us(fn: Callable[[], object], count: int, repeat: int) -> float:
    best = None
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(count):
            fn()
        elapsed = time.perf_counter_ns() - start
        best = elapsed if best is None else min(best, elapsed)
    assert best is not None
    return best / count / 1000


def openssl_alone(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except Exception:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    count, repeat = args.count, args.repeat

    key, other = devnet_keypairs(2)
    tx = make_transfer(key, 1337, 0, other.address, 100, 1000)
    message = compute_sighash(tx.body)
    public_key, signature = key.public_key, tx.signature
    identity = bytes([1]) + bytes(31)
    assert verify_strict(public_key, signature, message) and openssl_alone(public_key, signature, message)

    def uncached() -> bool:
        ed25519._checked_public_key.cache_clear()
        return verify_strict(public_key, signature, message)

    def report(label: str, fn: Callable[[], object]) -> float:
        us = per_call_us(fn, count, repeat)
        print(f"  {label:<58} {us:8.1f} us")
        return us

    print(f"strict Ed25519, best of {repeat} x {count} calls")
    print("1. a valid signature")
    before = report("OpenSSL alone (before)", lambda: openssl_alone(public_key, signature, message))
    cached = report("verify_strict, key cached", lambda: verify_strict(public_key, signature, message))
    fresh = report("verify_strict, key not cached", uncached)
    print(f"  {'strict checks add, key cached':<58} {cached - before:+8.1f} us")
    print(f"  {'strict checks add, key not cached':<58} {fresh - before:+8.1f} us")

    print("2. a transfer")
    report("OpenSSL alone on the sighash (before)", lambda: openssl_alone(public_key, signature,
                                                                            compute_sighash(tx.body)))
    report("is_signature_valid (after)", lambda: is_signature_valid(tx))

    print("3. pieces")
    report("is_strict_point (Legendre symbol, Jacobi algorithm)", lambda: is_strict_point(signature[:32]))
    y = int.from_bytes(signature[:32], "little") & ((1 << 255) - 1)
    report("one pow(x, (p-5)/8, p), as RFC 8032 decoding does", lambda: pow(y, (P - 5) // 8, P))

    print("4. refusals")
    high_s = signature[:32] + (int.from_bytes(signature[32:], "little") + L).to_bytes(32, "little")
    report("S >= L", lambda: verify_strict(public_key, high_s, message))
    report("identity attack (A = R = identity, S = 0), key cached",
           lambda: verify_strict(identity, identity + bytes(32), message))

    def small_fresh() -> bool:
        ed25519._checked_public_key.cache_clear()
        return verify_strict(identity, identity + bytes(32), message)

    report("identity attack, key not cached", small_fresh)
    report("valid signature of another message", lambda: verify_strict(public_key, signature, bytes(32)))


if __name__ == "__main__":
    main()
