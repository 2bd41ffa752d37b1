"""The standalone protocol command line: ``python -m pouw mine`` and ``python -m pouw verify``.

Exit codes: ``mine`` 0 found / 1 bad input / 2 gave up after ``--max-nonces``;
``verify`` 0 valid / 1 invalid (the failed rule is printed) / 2 unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pouw.constants import K_MIN, MAX_U256, MN_MIN, TILE, R
from pouw.errors import DecodeError, InvalidMatrixError, VerificationError
from pouw.header import HeaderPre
from pouw.jobs import product_hash
from pouw.matrix import pad_pair
from pouw.verify import verify

from .base import BackendError, prepare
from .select import get_backend

PAD_RULE = f"m and n up to multiples of {TILE}, at least {MN_MIN}; k up to a multiple of {R}, at least {K_MIN}"


def parse_int(text: str) -> int:
    """A decimal or 0x-hex non-negative integer."""
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a decimal or 0x-hex integer, found {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, found {text}")
    return value


def parse_target(text: str) -> int:
    value = parse_int(text)
    if value > MAX_U256:
        raise argparse.ArgumentTypeError("the target is a 256-bit unsigned integer")
    return value


def parse_hash(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 64 hex digits, found {text!r}") from None
    if len(raw) != 32:
        raise argparse.ArgumentTypeError(f"expected 32 bytes (64 hex digits), found {len(raw)} bytes")
    return raw


def load_matrix(path: str, name: str) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InvalidMatrixError(f"{name}: cannot read {path} as .npy: {e}") from e
    if x.dtype != np.int8:
        raise InvalidMatrixError(f"{name}: {path} has dtype {x.dtype}; .npy inputs must be int8 in [-64, 63]")
    return x


def cmd_mine(args: argparse.Namespace) -> int:
    try:
        a = load_matrix(args.a, "A")
        b = load_matrix(args.b, "B")
        # Zero-padded to the shape rules exactly as a job is (pouw.matrix.pad_pair): the mined header is over
        # the padded shape, and the product's top-left m x n block is A @ B.
        pa, pb = pad_pair(a, b)
        (sub_m, sub_k), sub_n = a.shape, b.shape[1]
        prepared = prepare(pa, pb)
        backend = get_backend(args.backend)
    except (InvalidMatrixError, BackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    m, k, n = prepared.shape
    padded = (m, k, n) != (sub_m, sub_k, sub_n)
    if padded:
        print(f"padded A {sub_m}x{sub_k} and B {sub_k}x{sub_n} with zeros to {m}x{k} and {k}x{n}, as a job is "
              f"({PAD_RULE}); the header is over the padded shape, the product is the {sub_m}x{sub_n} A @ B",
              file=sys.stderr)
    template = HeaderPre(1, args.height, args.prev, args.tx_root,
                         args.time if args.time is not None else int(time.time()),
                         args.target, 0, m, n, k)
    nonce = args.start_nonce
    tried = 0
    product = None
    while args.max_nonces is None or tried < args.max_nonces:
        result = backend.mine(prepared, template, nonce, want_product=product is None)
        if product is None and result.product is not None:
            product = result.product[:sub_m, :sub_n]  # the zero rows and columns of the padding contribute nothing
        tried += 1
        if result.winners:
            assert product is not None  # the first mine() asked for it (want_product=True), and backends honour that
            w = result.winners[0]
            header = result.header(prepared, w)
            out = {
                "header": header.encode().hex(),
                "certificate": result.certificate(prepared, w).encode().hex(),
                "block_id": header.block_id.hex(),
                "nonce": nonce,
                "tile": [w.tile_i, w.tile_j],
                "ticket": w.ticket.hex(),
                "target": hex(args.target),
                "backend": backend.name,
                "nonces_tried": tried,
                "shape": {"m": sub_m, "k": sub_k, "n": sub_n},
                "padded_shape": {"m": m, "k": k, "n": n},
                "product_blake3": product_hash(product).hex(),
            }
            Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
            if args.product:
                np.save(args.product, product)
            print(f"found block {out['block_id']} at nonce {nonce}, tile {w.tile_i},{w.tile_j} -> {args.out}"
                  + (f" (mined over the zero-padded {m}x{k} @ {k}x{n})" if padded else ""))
            return 0
        nonce = (nonce + 1) % (1 << 64)
    print(f"no winning tile after {tried} nonces", file=sys.stderr)
    return 2


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        if args.result:
            data = json.loads(Path(args.result).read_text())
            header_hex, cert_hex = data["header"], data["certificate"]
        elif args.header and args.certificate:
            header_hex, cert_hex = args.header, args.certificate
        else:
            print("error: give RESULT.json or both --header and --certificate", file=sys.stderr)
            return 2
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"error: cannot read the result: {e}", file=sys.stderr)
        return 2
    try:
        header = bytes.fromhex(header_hex)
        cert = bytes.fromhex(cert_hex)
    except (ValueError, TypeError):
        print("invalid: hex (header and certificate must be hex strings)")
        return 1
    try:
        v = verify(header, cert, args.expected_target)
    except VerificationError as e:
        print(f"invalid: {e.rule} ({e.detail})")
        return 1
    except DecodeError as e:
        print(f"invalid: decode ({e})")
        return 1
    print("valid")
    print(f"block_id {v.block_id.hex()}")
    if not v.target_checked:
        print("note: no --expected-target given: only internal consistency was checked, not difficulty")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pouw", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mine", help="mine a header over two int7 matrices until a tile wins",
                       description="Mine a header over A @ B until a tile wins. A and B of any shape within the "
                                   f"limits are zero-padded as a job is ({PAD_RULE}); the header carries the padded "
                                   "shape, the product and its hash are the unpadded A @ B.")
    m.add_argument("--a", required=True, help="A (m x k) as .npy, int8 in [-64, 63]; zero-padded like a job")
    m.add_argument("--b", required=True, help="B (k x n) as .npy, int8 in [-64, 63]; zero-padded like a job")
    m.add_argument("--height", type=parse_int, default=1)
    m.add_argument("--prev", type=parse_hash, default=bytes(32), help="parent block id (hex)")
    m.add_argument("--tx-root", type=parse_hash, default=bytes(32), help="transaction root (hex)")
    m.add_argument("--time", type=parse_int, default=None, help="unix seconds (default: now)")
    m.add_argument("--target", type=parse_target, required=True, help="decimal or 0x-hex 256-bit target")
    m.add_argument("--start-nonce", type=parse_int, default=0)
    m.add_argument("--max-nonces", type=parse_int, default=None, help="give up (exit 2) after N nonces")
    m.add_argument("--backend", choices=("auto", "numpy", "cupy"), default="auto")
    m.add_argument("--out", required=True, help="where to write RESULT.json")
    m.add_argument("--product", help="also save the exact product C = A @ B (.npy, int32, m x n as given)")
    m.set_defaults(func=cmd_mine)
    v = sub.add_parser("verify", help="verify a header and certificate")
    v.add_argument("result", nargs="?", help="RESULT.json written by mine")
    v.add_argument("--header", help="header hex (212 bytes)")
    v.add_argument("--certificate", help="certificate hex")
    v.add_argument("--expected-target", type=parse_target, default=None,
                   help="the target the chain expects; without it only internal consistency is checked")
    v.set_defaults(func=cmd_verify)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
