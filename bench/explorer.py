"""Explorer costs: the address index at connect, and the explorer's views on a long chain (LevelDB).

1. ``addrindex.connect_ops`` of a block of 1,000 transfers (ten devnet keys,
   100 each): the extra work the index adds to every connect, next to the
   block's ``submit_block`` with certificate checks off (signatures, state
   transition, one write batch), index on and off.
2. On a chain of 2,000 synthetic blocks whose coinbases all pay one address:
   ``home_view`` of 20 blocks (cold and with cached summaries), address pages
   at several depths (the cost must not grow with the depth), a block page.

    .venv/bin/python bench/explorer.py
    .venv/bin/python bench/explorer.py --json --chain-blocks 500
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consensus.keys import devnet_keypairs
from consensus.tx import make_transfer
from node import addrindex
from node.api.explorer import ChainView, SummaryCache, address_history, block_view, home_view
from node.api.views import Addresses
from node.chain import ChainService
from node.snapshot import take_snapshot
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.memstore import MemoryStore

P = easy_params()
KEYS = devnet_keypairs(10)
NOW = P.genesis_time + 10**8


def emit(args, name: str, ms: float, **extra) -> None:
    if args.json:
        print(json.dumps({"bench": name, "ms": round(ms, 3), **extra}), flush=True)
    else:
        print(f"{name}: {ms:.2f} ms " + " ".join(f"{k}={v}" for k, v in extra.items()), flush=True)


def median_ms(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def transfer_blocks(count: int) -> list:
    builder = ChainBuilder(P, synthetic=True, coinbase_to=KEYS[0].address)
    out, parent = [], builder.genesis_id
    for i in range(count):
        txs = [make_transfer(k, P.chain_id, i * 100 + j, KEYS[(n + 1) % 10].address, 1, 1000)
               for n, k in enumerate(KEYS) for j in range(100)]
        out.append(builder.child(parent, txs))
        parent = out[-1].header.block_id
    return out


def connect_ms(blocks: list, indexed: bool) -> float:
    real = addrindex.connect_ops
    if not indexed:
        addrindex.connect_ops = lambda *a, **k: []
    try:
        with tempfile.TemporaryDirectory() as d:
            chain = ChainService.open(d, P, check_certificates=False, clock=lambda: NOW)
            times = []
            for block in blocks:
                start = time.perf_counter()
                chain.submit_block(block)
                times.append(time.perf_counter() - start)
            chain.close()
    finally:
        addrindex.connect_ops = real
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument("--chain-blocks", type=int, default=2000, help="length of the chain for the views")
    args = parser.parse_args()

    blocks = transfer_blocks(4)
    emit(args, "index_records_1000_transfers", median_ms(lambda: addrindex.connect_ops(MemoryStore(), None,
                                                                                          blocks[0]), 10))
    for indexed in (False, True):
        emit(args, f"connect_1000_transfers_index_{'on' if indexed else 'off'}", connect_ms(blocks, indexed))

    with tempfile.TemporaryDirectory() as d:
        chain = ChainService.open(d, P, check_certificates=False, clock=lambda: NOW)
        builder = ChainBuilder(P, synthetic=True, coinbase_to=KEYS[1].address)
        for block in builder.extend(builder.genesis_id, args.chain_blocks, transfers=[]):
            chain.submit_block(block)
        snap = take_snapshot(chain)
        names = Addresses(P.hrp)
        cache = SummaryCache()
        miner = KEYS[1].address
        emit(args, "home_20_cold", median_ms(lambda: home_view(ChainView(snap, names), 20), 20))
        emit(args, "home_20_cached", median_ms(lambda: home_view(ChainView(snap, names, cache), 20), 20))
        pages: list[tuple[int | None, int]] = [(None, 25), (100, 25), (args.chain_blocks // 2, 25),
                                               (args.chain_blocks // 2, 100)]
        for cursor, limit in pages:
            def page(c: int | None = cursor, n: int = limit) -> dict:
                return address_history(ChainView(snap, names), miner, c, n)
            emit(args, f"address_page_{limit}", median_ms(page, 20), cursor=cursor, entries=args.chain_blocks)
        emit(args, "block_page", median_ms(lambda: block_view(ChainView(snap, names), "1", 0, 50), 20))
        chain.close()


if __name__ == "__main__":
    main()
