"""A hostile libp2p peer against two honest pouwd processes.

The attacker (a real libp2p host in the test process, a fresh identity per
attack) sends malformed and oversized gossip, a block with a broken
certificate, a block with the wrong target, a time-warped block, a long valid
but low-work side chain, and a flood of invalid transactions. The honest nodes
must keep answering RPC quickly, keep their tip, and ban every attacker that
sent something invalid.
"""

import asyncio
import os
import time

import pytest

from consensus.codec import encode_block, encode_tx
from consensus.genesis import make_genesis_block
from consensus.keys import keypair_from_private
from consensus.networks import REGTEST
from consensus.tx import make_transfer
from consensus.types import Tx
from consensus.validation import ParentInfo
from p2p.host import P2PHost
from p2p.protocol import BlockAnnouncement, Status, encode_tx_batch, protocol_ids
from tests.functional.chainbuild import mine_block, parent_info
from tests.functional.harness import wait_until

IDS = protocol_ids(REGTEST.chain_id)
GENESIS = make_genesis_block(REGTEST)
ATTACKER_KEY = keypair_from_private(b"\x07" * 32)


@pytest.fixture
def honest(node_factory):
    a = node_factory("a", p2p=True).start()
    b = node_factory("b", "--bootstrap", a.p2p[0], p2p=True).start()
    wait_until(lambda: len(b.rpc("getpeerinfo")) == 1, timeout=30, what="the honest nodes to peer")
    a.rpc("generatetoaddress", 20, "preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkm")
    wait_until(lambda: b.rpc("getblockcount") == 20, timeout=30, what="b to sync 20 blocks")
    return a, b


def mine_on(parent: ParentInfo, *, time_: int | None = None, target: int | None = None):
    """A block on ``parent`` with a valid certificate for whatever header we choose."""
    return mine_block(parent, ATTACKER_KEY.address, time_=time_, target=target, seed=11)


async def attack(target_node, send, wait_for_ban: float = 20.0):
    """Connect a fresh attacker to ``target_node``, run ``send(host)``, wait for a ban; return its peer id."""
    host = P2PHost(seed=os.urandom(32))
    tip = bytes.fromhex(target_node.rpc("getbestblockhash"))

    async def status(peer, data):
        return Status(REGTEST.chain_id, GENESIS.header.block_id, tip, 0, 1).encode()

    host.set_request_handler(IDS.status, status)
    for topic in (IDS.blocks, IDS.txs, IDS.jobs):
        host.subscribe(topic, _ignore)
    async with host:
        await host.connect(target_node.p2p[0])
        await host.wait_for_mesh(IDS.blocks, min_peers=1, timeout=20)
        await send(host)
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + wait_for_ban  # RPC off the loop: the attacker must keep serving libp2p
        while time.monotonic() < deadline and not await loop.run_in_executor(None, _banned, target_node, host.peer_id):
            await asyncio.sleep(0.05)
        return host.peer_id


def announce(block: bytes) -> bytes:
    return BlockAnnouncement.for_block(block).encode()


async def _ignore(peer, data):
    from p2p.types import Verdict

    return Verdict.IGNORE


def _banned(node, peer_id):
    return any(b.get("peer_id", b.get("id")) == peer_id for b in node.rpc("listbanned"))


def blocks_gossiped(node) -> float:
    """``pouw_gossip_received_total`` of the blocks topic (every gossiped block that reached the handler)."""
    _, body = node.http("GET", "/metrics", headers=node.auth_header())
    prefix = 'pouw_gossip_received_total{topic="blocks"} '
    return sum(float(line[len(prefix):]) for line in body.decode().splitlines() if line.startswith(prefix))


def responsive(node) -> bool:
    start = time.monotonic()
    node.rpc("getblockcount")
    return time.monotonic() - start < 2.0


def test_hostile_peer_is_banned_and_honest_nodes_carry_on(honest):
    a, b = honest
    tip = b.rpc("getbestblockhash")
    info = parent_info(b, tip)

    good = mine_on(info)
    raw = bytearray(encode_block(good))
    raw[212 + 10] ^= 1  # a byte of A_blk: the certificate no longer opens to root_A
    bad_cert = announce(bytes(raw))
    wrong_target = announce(encode_block(mine_on(info, target=info.target * 2)))
    # A time warp into the past (not after the median of the last 11 blocks) is invalid: ban.
    time_warp = announce(encode_block(mine_on(info, time_=sorted(info.recent_times)[len(info.recent_times) // 2])))
    # A block from 3 hours in the future may just be a bad clock: refused for now, not an offence.
    future = announce(encode_block(mine_on(info, time_=int(time.time()) + 3 * 3600)))

    async def run():
        banned = []

        async def gossip(payload, topic=IDS.blocks):
            async def send(host):
                await host.publish(topic, payload)
            return send

        for payload in (bad_cert, wrong_target, time_warp):
            banned.append(await attack(b, await gossip(payload)))
        spared = await attack(b, await gossip(future), wait_for_ban=3.0)

        async def flood(host):  # invalid signatures, batched like honest gossip
            for batch in range(20):  # distinct batches (gossip drops repeats by content)
                txs = [make_transfer(ATTACKER_KEY, REGTEST.chain_id, i, b"\x01" * 20, 1 + batch, 1000)
                       for i in range(50)]
                forged = [encode_tx(Tx(t.body, bytes(64))) for t in txs]
                await host.publish(IDS.txs, encode_tx_batch(forged))
                assert await asyncio.get_running_loop().run_in_executor(None, responsive, b)
        banned.append(await attack(b, flood))

        async def garbage(host):
            await host.publish(IDS.blocks, os.urandom(999_000))  # oversized for a block, malformed
            for _ in range(10):
                await host.publish(IDS.blocks, os.urandom(300))
                await host.publish(IDS.txs, os.urandom(100))
                await host.publish(IDS.jobs, os.urandom(50))
        banned.append(await attack(b, garbage))
        return banned, spared

    banned, spared = asyncio.run(run())
    assert not _banned(b, spared)
    kinds = ["bad certificate", "wrong target", "time warp", "tx flood", "garbage"]
    for kind, peer_id in zip(kinds, banned, strict=True):
        assert _banned(b, peer_id), f"the {kind} attacker {peer_id} was not banned: {b.rpc('listbanned')}"
    assert b.rpc("getbestblockhash") == tip and a.rpc("getbestblockhash") == tip
    assert responsive(a) and responsive(b)
    wait_until(lambda: not {p["id"] for p in b.rpc("getpeerinfo")} & set(banned), timeout=10,
               what="banned attackers to be disconnected")
    assert a.ready["peer_id"] in {p["id"] for p in b.rpc("getpeerinfo")}  # the honest peer stays

    # Bans survive a restart.
    b.stop()
    b.start()
    for peer_id in banned:
        assert _banned(b, peer_id)


def test_long_low_work_side_chain_does_not_move_the_tip(honest):
    a, b = honest
    tip = b.rpc("getbestblockhash")
    genesis = parent_info(b, b.rpc("getblockhash", 0))
    chain, info = [], genesis
    for _ in range(12):  # valid blocks, but fewer than the honest 20
        block = mine_on(info, time_=max(info.recent_times) + 1)
        chain.append(encode_block(block))
        info = ParentInfo(block.header.block_id, block.height, block.header.pre.time, block.header.pre.target,
                          (block.header.pre.time, *info.recent_times[:10]))

    async def send(host):
        for raw in chain:
            await host.publish(IDS.blocks, announce(raw))

    async def run():
        return await attack(b, send)

    before = blocks_gossiped(b)
    peer = asyncio.run(run())
    wait_until(lambda: blocks_gossiped(b) >= before + len(chain), timeout=30, what="the side branch to arrive")
    # 12 blocks against the honest 20 is out of reach (side_branch_margin 6): refused, nothing stored.
    assert [t["status"] for t in b.rpc("getchaintips")] == ["active"]
    assert b.rpc("getbestblockhash") == tip and a.rpc("getbestblockhash") == tip
    assert not _banned(b, peer)  # valid blocks are no offence
    assert b.rpc("verifychain")["ok"]
