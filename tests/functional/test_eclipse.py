"""Eclipse attack against a pouwd process: fresh keys cannot fill its connection slots.

The attacker is a set of real libp2p hosts in the test process, each with a fresh key, all on
127.0.0.1. The node runs with ``--limit-loopback`` where the per-address rules are under test
(on loopback they are off by default: every devnet node is 127.0.0.1). Checked end to end, from
the flags to the host: the per-address limit closes extra connections, a ``setban`` covers the
banned peer's address (``listbanned`` shows it) so a fresh key from there is refused, and with
every inbound slot taken the node still dials an honest peer.
"""

import asyncio
import time

import pytest

from consensus.genesis import make_genesis_block
from consensus.networks import REGTEST
from p2p.errors import ConnectFailed
from p2p.host import P2PHost
from p2p.protocol import Status, protocol_ids

IDS = protocol_ids(REGTEST.chain_id)
GENESIS = make_genesis_block(REGTEST)

pytestmark = pytest.mark.timeout(120)


def peer(tip: bytes) -> P2PHost:
    """A host with a fresh key that answers the status handshake like a node at genesis (no offence)."""
    host = P2PHost()

    async def status(peer_id: str, data: bytes) -> bytes:
        return Status(REGTEST.chain_id, GENESIS.header.block_id, tip, 0, 0).encode()

    host.set_request_handler(IDS.status, status)
    return host


async def rpc(node, method, *params):
    return await asyncio.to_thread(node.rpc, method, *params)  # off the loop: the hosts' handlers run on it


async def until(node, predicate, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        peers = await rpc(node, "getpeerinfo")
        if predicate(peers):
            return peers
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {peers}")
        await asyncio.sleep(0.05)


def test_per_address_limit_and_address_bans(node_factory):
    node = node_factory("a", "--limit-loopback", "--max-inbound-per-ip", "3", p2p=True).start()
    tip = bytes.fromhex(node.rpc("getbestblockhash"))

    async def run():
        hosts = [peer(tip) for _ in range(5)]
        for h in hosts:
            await h.start()
        try:
            first, second, third, extra, fresh = hosts
            for h in (first, second, third):
                await h.connect(node.p2p[0])
            await until(node, lambda p: len(p) == 3, "three inbound peers")
            with pytest.raises(ConnectFailed):  # a fourth connection from the same address
                await extra.connect(node.p2p[0], timeout=5.0)
            await until(node, lambda p: len(p) == 3 and extra.peer_id not in {x["id"] for x in p},
                        "the fourth to stay out")

            await rpc(node, "setban", first.peer_id, "add", 3600)
            (ban,) = await rpc(node, "listbanned")
            assert ban["peer_id"] == first.peer_id and ban["address"] == "127.0.0.1"
            await until(node, lambda p: first.peer_id not in {x["id"] for x in p}, "the banned peer to go")
            # Two inbound connections from 127.0.0.1 now, under the limit of 3: only the address ban refuses.
            with pytest.raises(ConnectFailed):
                await fresh.connect(node.p2p[0], timeout=5.0)
            await rpc(node, "setban", first.peer_id, "remove")
            assert await fresh.connect(node.p2p[0]) == node.ready["peer_id"]
        finally:
            for h in hosts:
                await h.stop()

    asyncio.run(run())


def test_attackers_filling_every_inbound_slot_do_not_stop_the_node_dialing_out(node_factory):
    # 3 connections, 1 of them kept for outbound: 2 inbound slots. No --limit-loopback: slots always apply.
    node = node_factory("a", "--max-connections", "3", "--outbound-slots", "1", p2p=True).start()
    tip = bytes.fromhex(node.rpc("getbestblockhash"))

    async def run():
        attackers = [peer(tip) for _ in range(3)]
        honest = peer(tip)
        for h in (*attackers, honest):
            await h.start()
        try:
            for a in attackers[:2]:
                await a.connect(node.p2p[0])
            await until(node, lambda p: len(p) == 2, "two inbound attackers")
            with pytest.raises(ConnectFailed):  # every inbound slot is taken
                await attackers[2].connect(node.p2p[0], timeout=5.0)

            await rpc(node, "addnode", honest.listen_addrs[0], "onetry")
            peers = await until(node, lambda p: honest.peer_id in {x["id"] for x in p}, "the honest peer")
            directions = {x["id"]: x["direction"] for x in peers}
            assert directions[honest.peer_id] == "outbound"
            assert sorted(directions.values()) == ["inbound", "inbound", "outbound"]
        finally:
            for h in (*attackers, honest):
                await h.stop()

    asyncio.run(run())
