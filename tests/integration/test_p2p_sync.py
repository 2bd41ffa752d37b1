"""PeerNetwork over real libp2p hosts on 127.0.0.1, with real ChainServices (MemoryStore, no certificate checks).

Scenarios: gossip convergence, a late joiner's headers-first sync, a healed
partition, a misbehaving peer, a burst of 1,000 transactions, a peer on another
chain, a job whose matrices are fetched from the node that announced it, and
blob fetches that are bounded by the size expected and charge a lying server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from consensus.codec import decode_block, decode_header, encode_block, encode_tx
from consensus.keys import devnet_keypairs
from consensus.networks import DEVNET
from consensus.tx import make_transfer
from consensus.types import Block
from node.chain import ChainService
from node.netadapter import chain_headers_after, chain_locator
from p2p.access import Intake
from p2p.errors import ConnectFailed
from p2p.host import P2PHost
from p2p.network import PeerNetwork
from p2p.protocol import JobAnnouncement, Status, protocol_ids
from p2p.requests import BlobFetch
from p2p.scoring import ScoreBook
from p2p.types import Verdict
from pouw.hashing import H
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.chainaccess import ChainServiceAccess
from tests.support.memstore import MemoryStore

pytestmark = pytest.mark.timeout(120)

PARAMS = easy_params(DEVNET)
IDS = protocol_ids(PARAMS.chain_id)


async def wait_for(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Node:
    """A chain, its ChainAccess, a score book, a host and the PeerNetwork over them."""

    def __init__(self, name: str, params=PARAMS, **options) -> None:
        self.name = name
        self.chain = ChainService(MemoryStore(), params, check_certificates=False)
        self.access = ChainServiceAccess(self.chain)
        self.scoring = ScoreBook()
        self.host = P2PHost()
        options.setdefault("status_interval", 5.0)
        self.net = PeerNetwork(self.host, self.access, chain_id=params.chain_id,
                               genesis_id=self.chain.genesis_id, scoring=self.scoring, **options)

    @property
    def peer_id(self) -> str:
        return self.host.peer_id

    @property
    def addr(self) -> str:
        return self.host.listen_addrs[0]

    @property
    def tip(self) -> bytes:
        return self.chain.tip_id

    async def mine(self, builder: ChainBuilder, count: int, *, coinbase_to: bytes = bytes(20),
                   announce: bool = True) -> list[Block]:
        """Build ``count`` blocks on our tip, take each, and gossip it."""
        blocks = []
        for _ in range(count):
            block = builder.child(self.tip, coinbase_to=coinbase_to)
            raw = encode_block(block)
            assert await self.access.submit_block(raw, "local") == Intake.ACCEPTED
            if announce:
                await self.net.announce_block(raw)
            blocks.append(block)
        return blocks


async def link(a: Node, b: Node, topics=(IDS.blocks,)) -> None:
    """Connect b to a, wait for both handshakes and for the gossip mesh on ``topics``."""
    await b.net.connect(a.addr)
    for topic in topics:
        await a.host.wait_for_mesh(topic, [b.peer_id])
        await b.host.wait_for_mesh(topic, [a.peer_id])
    await wait_for(lambda: _handshaken(a, b) and _handshaken(b, a), what="status handshake")


def _handshaken(a: Node, b: Node) -> bool:
    return any(p["id"] == b.peer_id and p["height"] is not None for p in a.net.peer_info())


async def test_three_nodes_converge_while_one_produces_blocks():
    a, b, c = Node("a"), Node("b"), Node("c")
    builder = ChainBuilder(PARAMS, synthetic=True)
    async with a.net, b.net, c.net:
        await link(a, b)
        await link(b, c)  # a - b - c: c hears of a's blocks only through b's forwarding
        await a.mine(builder, 30)
        await wait_for(lambda: b.tip == c.tip == a.tip, what="b and c on a's tip")
        assert a.chain.height == b.chain.height == c.chain.height == 30
        assert b.net.stats.blocks_accepted > 0 and c.net.stats.blocks_accepted > 0  # by gossip
        assert not a.scoring.list_banned() and not b.scoring.list_banned() and not c.scoring.list_banned()
        info = {p["id"]: p for p in b.net.peer_info()}
        assert set(info) == {a.peer_id, c.peer_id}
        assert info[c.peer_id]["direction"] == "inbound" and info[a.peer_id]["direction"] == "outbound"
        assert info[a.peer_id]["score"] == 0 and info[a.peer_id]["conntime"] >= 0


async def test_a_late_joiner_syncs_500_blocks_from_several_peers():
    # Small pages so the test walks several header pages and many body requests.
    a, b, late = Node("a"), Node("b"), Node("late", status_interval=60.0, headers_per_page=128, body_chunk=40)
    builder = ChainBuilder(PARAMS, synthetic=True)
    blocks = [encode_block(x) for x in builder.extend(builder.genesis_id, 500)]
    async with a.net, b.net, late.net:
        await link(a, late)
        await link(b, late)
        for node in (a, b):  # the chain grows where late cannot see it (no gossip)
            for raw in blocks:
                node.chain.submit_block(decode_block(raw), len(raw))
        started = time.monotonic()
        await late.net.poll_status()  # now late learns that both have more work
        await wait_for(lambda: late.tip == a.tip, timeout=60, what="late joiner synced")
        elapsed = time.monotonic() - started
        assert late.chain.height == 500
        assert late.net.stats.blocks_synced == 500
        served_by = {peer for _, result, peer in late.access.submitted if result == Intake.ACCEPTED}
        assert served_by == {a.peer_id, b.peer_id}  # bodies came from both peers
        assert late.chain.verify_chain().ok
        print(f"synced 500 blocks in {elapsed:.2f} s")


async def test_two_halves_converge_on_the_most_work_chain_when_connected():
    a, b, c, d = (Node(n) for n in "abcd")
    builder = ChainBuilder(PARAMS, synthetic=True)
    async with a.net, b.net, c.net, d.net:
        await link(a, b)
        await link(c, d)
        await a.mine(builder, 10, coinbase_to=b"\x0a" * 20)
        await c.mine(builder, 15, coinbase_to=b"\x0c" * 20)  # more work (same target, more blocks)
        await wait_for(lambda: b.tip == a.tip and d.tip == c.tip, what="each half agrees")
        assert a.tip != c.tip and a.chain.height == 10
        await link(b, c)  # the partition heals between b and c
        await wait_for(lambda: a.tip == b.tip == c.tip == d.tip, what="all four converge")
        assert a.chain.height == 15 and a.tip == c.tip
        assert all(n.chain.verify_chain().ok for n in (a, b, c, d))


def _invalid_child(builder: ChainBuilder, parent: bytes) -> bytes:
    """A block on ``parent`` whose header claims the wrong height (invalid, well-formed)."""
    good = builder.child(parent)
    header = replace(good.header, pre=replace(good.header.pre, height=good.header.pre.height + 5))
    return encode_block(Block(header, good.certificate, good.transactions))


async def test_a_peer_gossiping_an_invalid_block_is_banned_and_the_rest_carry_on():
    a, b = Node("a"), Node("b")
    builder = ChainBuilder(PARAMS, synthetic=True)
    bad = P2PHost()
    seen_by_bad: list[bytes] = []

    async def bad_status(peer: str, data: bytes) -> bytes:
        return Status(PARAMS.chain_id, a.chain.genesis_id, a.chain.genesis_id, 0, 1).encode()

    async def bad_listener(peer: str, data: bytes) -> Verdict:
        seen_by_bad.append(data)
        return Verdict.ACCEPT

    bad.set_request_handler(IDS.status, bad_status)
    bad.subscribe(IDS.blocks, bad_listener)
    async with a.net, b.net, bad:
        await link(a, b)
        await bad.connect(a.addr)
        await bad.wait_for_mesh(IDS.blocks, [a.peer_id])
        await a.host.wait_for_mesh(IDS.blocks, [bad.peer_id])

        await bad.publish(IDS.blocks, b"\x07 not an announcement")
        await wait_for(lambda: a.scoring.score(bad.peer_id) < 0, what="malformed gossip costs score")
        assert not a.scoring.is_banned(bad.peer_id)

        invalid = _invalid_child(builder, a.chain.genesis_id)
        await bad.publish(IDS.blocks, b"\x00" + invalid)
        await wait_for(lambda: a.scoring.is_banned(bad.peer_id), what="a bans the bad peer")
        await wait_for(lambda: not a.host.is_connected(bad.peer_id), what="a drops the bad peer")
        assert a.scoring.list_banned()[0].reason.startswith("invalid-block")
        assert not b.access.submitted  # never forwarded to b
        with pytest.raises(ConnectFailed):
            await bad.connect(a.addr)

        await a.mine(builder, 3)
        await wait_for(lambda: b.tip == a.tip, what="honest nodes carry on")
        assert b.chain.height == 3 and not b.scoring.list_banned()


async def test_a_burst_of_1000_transactions_reaches_every_subscriber():
    a, b, c = Node("a"), Node("b"), Node("c")
    key = devnet_keypairs(1)[0]
    txs = [encode_tx(make_transfer(key, PARAMS.chain_id, i, bytes(20), 1, 1000, b"memo %d" % i))
           for i in range(1000)]
    async with a.net, b.net, c.net:
        await link(a, b, topics=(IDS.txs,))
        await link(b, c, topics=(IDS.txs,))
        for tx in txs:  # one call per transaction: the batcher groups them
            await a.net.announce_txs([tx])
        await a.net.flush_txs()
        await wait_for(lambda: len(b.access.txs) == len(c.access.txs) == 1000, what="1000 txs everywhere")
        assert set(b.access.txs) == set(c.access.txs) == set(txs)
        assert a.net.stats.published[IDS.txs] <= 10  # batched, not 1000 messages
        assert not b.scoring.list_banned() and not c.scoring.list_banned()


async def test_a_peer_on_another_chain_is_banned_at_the_handshake():
    ours = Node("ours")
    other = Node("other", params=replace(PARAMS, genesis_time=PARAMS.genesis_time + 1))
    assert ours.chain.genesis_id != other.chain.genesis_id
    async with ours.net, other.net:
        try:
            await other.net.connect(ours.addr)
        except ConnectFailed:
            pass  # the ban may already close the connection while it is being set up
        await wait_for(lambda: ours.scoring.is_banned(other.peer_id), what="ban of the other chain's peer")
        await wait_for(lambda: other.scoring.is_banned(ours.peer_id), what="and the other way round")
        await wait_for(lambda: not ours.host.is_connected(other.peer_id), what="disconnect")
        assert ours.scoring.list_banned()[0].reason.startswith("wrong-chain")


async def test_a_job_is_announced_and_its_matrices_fetched_from_the_announcer():
    a, b = Node("a"), Node("b")
    blob = bytes(range(256)) * 30_000  # 7.68 MB: several response pages
    digest = H(blob)
    a.access.blobs[digest.hex()] = blob
    job = JobAnnouncement(H(b"job"), digest, digest, 16, 256, 16).encode()
    async with a.net, b.net:
        await link(a, b, topics=(IDS.jobs,))
        assert await a.net.announce_job(job)
        await wait_for(lambda: b.access.jobs, what="job announcement")
        assert b.access.jobs == [(job, a.peer_id)]
        assert await b.net.fetch_blob(digest.hex()) == blob
        assert await b.net.fetch_blob(H(b"nothing").hex()) is None
        assert b.scoring.score(a.peer_id) == 0


async def test_blob_fetches_are_bounded_streamed_and_a_lying_server_pays():
    a, b = Node("a"), Node("b")
    blob = bytes(range(256)) * 30_000  # 7.68 MB: three pages
    digest = H(blob)
    a.access.blobs[digest.hex()] = blob
    liar = H(b"what b asks for")
    a.access.blobs[liar.hex()] = blob  # bytes that do not hash to the name they are served under
    async with a.net, b.net:
        await link(a, b)
        pages: list[bytes] = []

        async def keep(data: bytes) -> None:
            pages.append(data)

        # Over the size the caller expects (an announced shape): refused after the first page's header.
        assert await b.net.requests.blob_into(a.peer_id, digest, keep, max_bytes=1 << 20) == BlobFetch.TOO_LARGE
        assert pages == [] and b.scoring.score(a.peer_id) == 0
        assert await b.net.fetch_blob(digest.hex(), max_bytes=1 << 20) is None
        assert await b.net.requests.blob_into(a.peer_id, digest, keep, max_bytes=len(blob)) == BlobFetch.OK
        assert b"".join(pages) == blob and len(pages) == 3
        assert await b.net.requests.blob_into(a.peer_id, liar, keep) == BlobFetch.BAD
        assert b.scoring.score(a.peer_id) < -19


async def test_bootstrap_peers_are_kept_connected_and_bans_are_managed():
    a = Node("a")
    async with a.net:
        b = Node("b", bootstrap=[a.addr])
        async with b.net:
            await wait_for(lambda: a.host.is_connected(b.peer_id), what="bootstrap dial")
            await a.host.disconnect(b.peer_id)
            await wait_for(lambda: not b.host.is_connected(a.peer_id), what="dropped")
            await wait_for(lambda: a.host.is_connected(b.peer_id), what="redial after a drop")

            await a.net.setban(b.peer_id, "add", 600, "testing")
            assert [e["peer_id"] for e in a.net.listbanned()] == [b.peer_id]
            assert a.net.listbanned()[0]["reason"] == "testing"
            await wait_for(lambda: not a.host.is_connected(b.peer_id), what="banned peer dropped")
            await a.net.setban(b.peer_id, "remove")
            assert a.net.listbanned() == []
            await b.net.addnode(a.addr, "onetry")
            await wait_for(lambda: a.host.is_connected(b.peer_id), what="reconnect after unban")


def test_headers_after_a_locator_follow_the_fork_point():
    builder = ChainBuilder(PARAMS, synthetic=True)
    ours = ChainServiceAccess(ChainService(MemoryStore(), PARAMS, check_certificates=False))
    theirs = ChainServiceAccess(ChainService(MemoryStore(), PARAMS, check_certificates=False))
    common = builder.extend(builder.genesis_id, 20)
    mine = builder.extend(common[-1].header.block_id, 5, coinbase_to=b"\x01" * 20)
    other = builder.extend(common[-1].header.block_id, 30, coinbase_to=b"\x02" * 20)
    for b in common + mine:
        ours.chain.submit_block(b)
    for b in common + other:
        theirs.chain.submit_block(b)
    locator = chain_locator(ours.chain)
    assert locator[0] == mine[-1].header.block_id and locator[-1] == builder.genesis_id
    headers = chain_headers_after(theirs.chain, locator, 2000)
    assert [decode_header(h).block_id for h in headers] == [b.header.block_id for b in other]
    assert len(chain_headers_after(theirs.chain, locator, 7)) == 7
    assert len(chain_headers_after(theirs.chain, [bytes(32)], 2000)) == 50  # nothing known: from genesis
    assert chain_headers_after(theirs.chain, [theirs.chain.tip_id], 2000) == []
