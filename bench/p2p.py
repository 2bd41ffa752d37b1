"""Peer-to-peer figures on loopback: block propagation, initial sync, transaction gossip.

Three nodes in one process (each a ``P2PHost`` in its own trio thread, a
``PeerNetwork`` and a ``ChainService`` on a ``MemoryStore``), fully connected
on 127.0.0.1:

- propagation: node 0 mines a real block (easy devnet shape, certificate
  checked by every receiver), publishes it; the latency is the time from the
  publish call until the last other node has validated and connected it.
  One block at a time; p50 and p90 over ``--blocks`` blocks.
- sync: nodes 0 and 1 hold a ``--chain``-block chain; a fresh node connects to
  both and syncs headers first; blocks per second from its first status poll
  to its tip. Twice: synthetic blocks with ``check_certificates=False`` (the
  network path alone), and real mined blocks whose certificates are checked.
- txs: node 0 announces ``--txs`` signed transfers one call each (the batcher
  groups them); transactions per second until both others hold all of them.

    .venv/bin/python bench/p2p.py
    .venv/bin/python bench/p2p.py --json --blocks 100 --chain 2000 --txs 10000

Targets (issue 5): propagation p50 < 200 ms, sync >= 50 blocks/s, >= 1,000 tx/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consensus.codec import decode_block, encode_block, encode_tx
from consensus.keys import devnet_keypairs
from consensus.networks import DEVNET
from consensus.tx import make_transfer
from node.chain import ChainService
from p2p.host import P2PHost
from p2p.network import PeerNetwork
from p2p.protocol import protocol_ids
from p2p.scoring import ScoreBook
from tests.support.blockgen import BlockMaker, ChainBuilder, easy_params
from tests.support.chainaccess import ChainServiceAccess
from tests.support.memstore import MemoryStore

PARAMS = easy_params(DEVNET)
IDS = protocol_ids(PARAMS.chain_id)


class BenchNode:
    def __init__(self, *, check_certificates: bool) -> None:
        self.chain = ChainService(MemoryStore(), PARAMS, check_certificates=check_certificates)
        self.access = ChainServiceAccess(self.chain)
        self.accepted_at: dict[bytes, float] = {}
        self.access.accept_listeners.append(lambda block_id: self.accepted_at.setdefault(block_id, time.perf_counter()))
        self.host = P2PHost()
        self.net = PeerNetwork(self.host, self.access, chain_id=PARAMS.chain_id, genesis_id=self.chain.genesis_id,
                               scoring=ScoreBook(), status_interval=3600.0)


async def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def connect_all(nodes: list[BenchNode], topics: tuple[str, ...]) -> None:
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            await b.net.connect(a.host.listen_addrs[0])
    for a in nodes:
        for topic in topics:
            await a.host.wait_for_mesh(topic, [b.host.peer_id for b in nodes if b is not a])
    await wait_for(lambda: all(p["height"] is not None for n in nodes for p in n.net.peer_info()), 30, "handshakes")


async def bench_propagation(count: int) -> dict:
    nodes = [BenchNode(check_certificates=True) for _ in range(3)]
    builder = ChainBuilder(PARAMS, maker=BlockMaker(PARAMS))
    latencies = []
    async with nodes[0].net, nodes[1].net, nodes[2].net:
        await connect_all(nodes, (IDS.blocks,))
        for _ in range(count + 3):  # the first few warm up the paths
            block = builder.child(nodes[0].chain.tip_id)
            raw = encode_block(block)
            block_id = block.header.block_id
            await nodes[0].access.submit_block(raw, "local")
            start = time.perf_counter()
            await nodes[0].net.announce_block(raw)
            await wait_for(lambda b=block_id: all(b in n.accepted_at for n in nodes[1:]), 30, "propagation")
            latencies.append(max(n.accepted_at[block_id] for n in nodes[1:]) - start)
    latencies = latencies[3:]
    q = statistics.quantiles(latencies, n=10)
    return {"bench": "block_propagation", "blocks": count, "block_bytes": len(raw),
            "p50_ms": round(1000 * statistics.median(latencies), 2), "p90_ms": round(1000 * q[8], 2),
            "max_ms": round(1000 * max(latencies), 2), "target_p50_ms": 200}


async def bench_sync(length: int, *, certificates: bool) -> dict:
    nodes = [BenchNode(check_certificates=certificates) for _ in range(3)]
    builder = ChainBuilder(PARAMS, synthetic=not certificates)
    blocks = [encode_block(b) for b in builder.extend(builder.genesis_id, length)]
    late = nodes[2]
    async with nodes[0].net, nodes[1].net, late.net:
        for n in nodes[:2]:
            await late.net.connect(n.host.listen_addrs[0])
        await wait_for(lambda: all(p["height"] is not None for p in late.net.peer_info()) and
                       len(late.net.peer_info()) == 2, 30, "handshakes")
        for n in nodes[:2]:
            for raw in blocks:
                n.chain.submit_block(decode_block(raw), len(raw))
        start = time.perf_counter()
        await late.net.poll_status()
        await wait_for(lambda: late.chain.tip_id == nodes[0].chain.tip_id, 600, "sync")
        elapsed = time.perf_counter() - start
    sources = {}
    for _, _, peer in late.access.submitted:
        sources[peer] = sources.get(peer, 0) + 1
    return {"bench": "initial_sync", "certificates_checked": certificates, "blocks": length,
            "block_bytes": len(blocks[-1]), "seconds": round(elapsed, 3),
            "blocks_per_s": round(length / elapsed, 1), "bodies_per_peer": sorted(sources.values()),
            "target_blocks_per_s": 50}


async def bench_txs(count: int) -> dict:
    nodes = [BenchNode(check_certificates=False) for _ in range(3)]
    key = devnet_keypairs(1)[0]
    txs = [encode_tx(make_transfer(key, PARAMS.chain_id, i, bytes(20), 1, 1000)) for i in range(count)]
    async with nodes[0].net, nodes[1].net, nodes[2].net:
        await connect_all(nodes, (IDS.txs,))
        start = time.perf_counter()
        for tx in txs:
            await nodes[0].net.announce_txs([tx])
        await wait_for(lambda: all(len(n.access.txs) == count for n in nodes[1:]), 600, "tx gossip")
        elapsed = time.perf_counter() - start
        messages = nodes[0].net.stats.published.get(IDS.txs, 0)
    return {"bench": "tx_gossip", "txs": count, "tx_bytes": len(txs[0]), "seconds": round(elapsed, 3),
            "tx_per_s": round(count / elapsed, 1), "gossip_messages": messages, "target_tx_per_s": 1000}


async def run(args) -> list[dict]:
    return [await bench_propagation(args.blocks), await bench_sync(args.chain, certificates=False),
            await bench_sync(args.chain, certificates=True), await bench_txs(args.txs)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=50, help="blocks timed for propagation")
    ap.add_argument("--chain", type=int, default=500, help="length of the chain a fresh node syncs")
    ap.add_argument("--txs", type=int, default=5000, help="transactions gossiped")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(run(args))
    for r in results:
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(", ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    print(f"# machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
