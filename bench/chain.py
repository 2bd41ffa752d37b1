"""Chain throughput: transfer validation, block connect, and reopening a long chain.

1. Transfer validation on one core: decode + stateless checks (signature
   included) + nonce/balance check against an account, in transfers per second.
2. Connecting blocks of 1,000 transfers to LevelDB (ten devnet keys, 100
   transfers each per block). Real devnet blocks, mined with the NumPy backend
   at the devnet shape and target. Timed in two parts: the certificate check
   alone (``pouw.verify`` against the expected target), and ``submit_block`` of
   the raw bytes with certificate checks off (decode, header rules, 1,000
   signatures, state transition, one write batch).
3. Reopening a chain of 10,000 blocks (default): built on LevelDB from
   synthetic blocks (zero certificates) through ``ChainService`` with
   ``check_certificates=False``, the test-only path; then closed and reopened.

    .venv/bin/python bench/chain.py
    .venv/bin/python bench/chain.py --json
    .venv/bin/python bench/chain.py --reopen-blocks 2000 --connect-blocks 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consensus.codec import decode_block, decode_tx, encode_block, encode_tx
from consensus.keys import devnet_keypairs
from consensus.networks import DEVNET
from consensus.state import check_transfer
from consensus.tx import get_sender, make_transfer, validate_tx
from consensus.types import Account
from consensus.validation import validate_certificate
from node.chain import ChainService
from tests.support.blockgen import ChainBuilder, easy_params

TRANSFERS_PER_BLOCK = 1000


def emit(args, name: str, text: str, **figures) -> None:
    if args.json:
        print(json.dumps({"bench": name, **figures}), flush=True)
    else:
        print(f"{name}: {text}", flush=True)


def bench_validation(args) -> None:
    keys = devnet_keypairs(10)
    raws = [encode_tx(make_transfer(keys[i % 10], DEVNET.chain_id, i // 10, keys[(i + 1) % 10].address, 5, 1000))
            for i in range(args.validate_count)]
    accounts = {k.address: Account(10**15, 0) for k in keys}
    start = time.perf_counter()
    for raw in raws:
        tx = decode_tx(raw)
        validate_tx(tx, DEVNET)
        sender = get_sender(tx)
        account = accounts[sender]
        check_transfer(tx, account)
        accounts[sender] = Account(account.balance - 1005, account.nonce + 1)
    elapsed = time.perf_counter() - start
    rate = len(raws) / elapsed
    emit(args, "transfer_validation", f"{rate:,.0f} transfers/s on one core ({len(raws)} transfers, "
         f"decode + signature + stateless + nonce/balance checks)",
         tx_per_s=round(rate), count=len(raws), seconds=round(elapsed, 4), target_tx_per_s=3000)


def bench_connect(args, workdir: Path) -> None:
    params = DEVNET
    keys = devnet_keypairs(10)
    builder = ChainBuilder(params, coinbase_to=keys[0].address)
    clock = lambda: params.genesis_time + 10**7  # noqa: E731
    blocks = []
    parent = builder.genesis_id
    mine_start = time.perf_counter()
    for b in range(args.connect_blocks):
        transfers = [make_transfer(keys[i % 10], params.chain_id, b * 100 + i // 10, keys[(i + 3) % 10].address, 7,
                                   1000) for i in range(TRANSFERS_PER_BLOCK)]
        blocks.append(builder.child(parent, transfers))
        parent = blocks[-1].header.block_id
    mine_s = time.perf_counter() - mine_start
    raws = [encode_block(block) for block in blocks]

    cert_times = []
    for block in blocks:
        start = time.perf_counter()
        validate_certificate(block, block.header.pre.target)
        cert_times.append(time.perf_counter() - start)

    chain = ChainService.open(str(workdir / "connect"), params, clock=clock, check_certificates=False)
    connect_times = []
    for raw in raws:
        start = time.perf_counter()
        result = chain.submit_block(decode_block(raw), len(raw))  # decoding included, as from a peer
        connect_times.append(time.perf_counter() - start)
        assert result.status == "connected", result
    assert chain.verify_chain().ok
    chain.close()
    m, n, k = params.mining_shape
    connect = statistics.median(connect_times)
    cert = statistics.median(cert_times)
    emit(args, "block_connect",
         f"median {connect * 1000:.1f} ms per block of {TRANSFERS_PER_BLOCK} transfers excluding the certificate "
         f"(max {max(connect_times) * 1000:.1f} ms, {len(raws)} blocks of ~{len(raws[0]) // 1000} kB, LevelDB); "
         f"certificate check {cert * 1000:.2f} ms at k={k}; signing + mining the blocks took {mine_s:.1f} s",
         connect_median_s=round(connect, 4), connect_max_s=round(max(connect_times), 4),
         certificate_median_s=round(cert, 5), transfers_per_block=TRANSFERS_PER_BLOCK, blocks=len(raws),
         block_bytes=len(raws[0]), shape=[m, n, k], target_connect_s=0.5)


def bench_reopen(args, workdir: Path) -> None:
    params = easy_params()
    builder = ChainBuilder(params, synthetic=True)
    clock = lambda: params.genesis_time + 10**8  # noqa: E731
    path = str(workdir / "reopen")
    chain = ChainService.open(path, params, clock=clock, check_certificates=False)
    start = time.perf_counter()
    parent = builder.genesis_id
    for _ in range(args.reopen_blocks):
        block = builder.child(parent)
        chain.submit_block(block)
        parent = block.header.block_id
        del builder.infos[block.prev_id]  # keep memory flat
    build_s = time.perf_counter() - start
    chain.close()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        chain = ChainService.open(path, params, clock=clock, check_certificates=False)
        times.append(time.perf_counter() - start)
        height = chain.height
        chain.close()
    assert height == args.reopen_blocks
    reopen = statistics.median(times)
    emit(args, "reopen",
         f"{reopen:.3f} s to reopen a {height}-block chain (median of 3; built in {build_s:.1f} s from synthetic "
         f"blocks with check_certificates=False, the test-only path)",
         reopen_s=round(reopen, 4), blocks=height, build_s=round(build_s, 2), synthetic=True,
         check_certificates=False, target_reopen_s=2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--validate-count", type=int, default=5000)
    parser.add_argument("--connect-blocks", type=int, default=5)
    parser.add_argument("--reopen-blocks", type=int, default=10_000)
    parser.add_argument("--only", choices=["validation", "connect", "reopen"])
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    workdir = Path(tempfile.mkdtemp(prefix="pouw-bench-chain-"))
    try:
        if args.only in (None, "validation"):
            bench_validation(args)
        if args.only in (None, "connect"):
            bench_connect(args, workdir)
        if args.only in (None, "reopen"):
            bench_reopen(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
