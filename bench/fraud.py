"""Size and verify time of a section 11 fraud proof at k = 1024, 4096, 8192 (m = n = 1024 by default).

For each ``k``: fixed int7 matrices (an integer formula, no RNG), their padded
roots and job id, the honest product with one entry changed (computed in
float64 BLAS, exact here: ``|C| <= 64^2 * k < 2^53``), its ``root_C``, and a
fraud transaction naming the wrong tile. Measured, as the median of
``--repeat`` runs:

- ``check``: ``consensus.jobmarket.check_fraud_proof`` (three Merkle paths and
  the ``256 * k_p`` multiply-adds of one tile): what a block's application costs;
- ``decode+validate``: ``consensus.codec.decode_tx`` plus ``consensus.tx.validate_tx``
  (fields, per-byte fee, strict Ed25519 signature): what a relay costs first.

Sizes: the encoded transaction (signature included, what the per-byte fee
counts) and ``compute_fraud_size`` (the bound an offer's bond must cover).

    .venv/bin/python bench/fraud.py [--m 1024] [--n 1024] [--k 1024 4096 8192] [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from consensus.codec import decode_tx, encode_tx
from consensus.jobmarket import check_fraud_proof, compute_fraud_size, padded_dims
from consensus.keys import devnet_keypairs
from consensus.networks import DEVNET
from consensus.tx import compute_min_fee, make_job_tx, validate_tx
from consensus.types import KIND_FRAUD, RECORD_CLAIMED, FraudPayload, JobRecord
from pouw.commit import commit_pair
from pouw.constants import TILE
from pouw.jobs import compute_job_id
from pouw.matrix import pad_pair
from pouw.tiles import commit_product, pad_product, tile_of


def formula(rows: int, cols: int, a: int, b: int) -> np.ndarray:
    """``(a i + b j + 1) mod 128 - 64`` as int8: fixed int7 entries."""
    i, j = np.indices((rows, cols))
    return ((a * i + b * j + 1) % 128 - 64).astype(np.int8)


def build(m: int, k: int, n: int) -> tuple[bytes, JobRecord, dict]:
    """A fraud transaction against a claimed product with one wrong entry, and the record it proves wrong."""
    a, b = formula(m, k, 7, 3), formula(k, n, 5, 11)
    pa, pb = pad_pair(a, b)
    commit = commit_pair(pa, pb)
    m_p, k_p, n_p = padded_dims(m, k, n)
    t0 = time.perf_counter()
    c = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int32)
    c[m // 2, n // 2] += 1
    c_padded = pad_product(c, m_p, n_p)
    product = commit_product(c_padded)
    prep_s = time.perf_counter() - t0
    tile_i, tile_j = (m // 2) // TILE, (n // 2) // TILE
    bt = np.ascontiguousarray(pb.T)
    fraud = FraudPayload(tile_i, tile_j, tile_of(c_padded, tile_i, tile_j), tuple(product.path(tile_i, tile_j)),
                         pa[TILE * tile_i : TILE * (tile_i + 1)].tobytes(), tuple(commit.path_a(tile_i)),
                         bt[TILE * tile_j : TILE * (tile_j + 1)].tobytes(), tuple(commit.path_b(tile_j)))
    key = devnet_keypairs(3)[2]
    job_id = compute_job_id(m, k, n, commit.root_a, commit.root_b)
    draft = make_job_tx(key, DEVNET.chain_id, 0, KIND_FRAUD, bytes(32), fraud, 0)
    tx = make_job_tx(key, DEVNET.chain_id, 0, KIND_FRAUD, bytes(32), fraud,
                     compute_min_fee(draft, DEVNET.min_fee_per_byte))
    bond = 2 * compute_fraud_size(m, k, n)
    record = JobRecord(RECORD_CLAIMED, devnet_keypairs(1)[0].address, job_id, m, k, n, commit.root_a, commit.root_b,
                       bond, bond, bond, 100, devnet_keypairs(2)[1].address, product.root_c, 1)
    return encode_tx(tx), record, {"k_p": k_p, "prepare_s": prep_s}


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(m: int, k: int, n: int, repeat: int) -> dict:
    raw, record, info = build(m, k, n)
    fraud = decode_tx(raw).body.payload
    assert isinstance(fraud, FraudPayload)
    check_fraud_proof(fraud, record)  # proven, or this raises

    def relay() -> None:
        validate_tx(decode_tx(raw), DEVNET)

    return {
        "m": m, "k": k, "n": n, "k_p": info["k_p"],
        "tx_bytes": len(raw), "fraud_size": compute_fraud_size(m, k, n),
        "check_ms": 1e3 * median_s(lambda: check_fraud_proof(fraud, record), repeat),
        "decode_validate_ms": 1e3 * median_s(relay, repeat),
        "prepare_s": info["prepare_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=int, default=1024, help="rows of A (default 1024)")
    parser.add_argument("--n", type=int, default=1024, help="columns of B (default 1024)")
    parser.add_argument("--k", type=int, nargs="+", default=[1024, 4096, 8192], help="inner dimensions")
    parser.add_argument("--repeat", type=int, default=20, help="runs per timing; the median is shown (default 20)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per k instead of a table")
    args = parser.parse_args(argv)
    rows = [measure(args.m, k, args.n, args.repeat) for k in args.k]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"fraud proof, m = {args.m}, n = {args.n}, median of {args.repeat} runs")
    print(f"{'k':>6} {'k_p':>6} {'tx bytes':>9} {'fraud_size':>10} {'check ms':>9} {'decode+validate ms':>19}")
    for r in rows:
        print(f"{r['k']:>6} {r['k_p']:>6} {r['tx_bytes']:>9} {r['fraud_size']:>10} {r['check_ms']:>9.2f} "
              f"{r['decode_validate_ms']:>19.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
