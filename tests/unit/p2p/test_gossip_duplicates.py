"""Copies of a gossiped block: free while the first is being checked, a small charge once it is known."""

from __future__ import annotations

import asyncio
import time

from consensus.codec import decode_block, encode_block, encode_tx
from p2p.access import Intake, TxOutcome
from p2p.network import FREE_DUPLICATE_SECONDS, PeerNetwork
from p2p.protocol import BlockAnnouncement
from p2p.scoring import ScoreBook
from p2p.types import Verdict
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.stubhost import StubHost

P = easy_params()


class SlowChain:
    """A chain whose block check takes until ``release`` is set."""

    def __init__(self, stored: frozenset[bytes] = frozenset()) -> None:
        self.release = asyncio.Event()
        self.stored: set[bytes] = set(stored)
        """Ids it holds (a block whose parent is not among them is an orphan)."""
        self.submitted = 0

    def status(self):
        return bytes(32), 0, 0

    async def missing_blocks(self, ids):
        return [i for i in ids if i not in self.stored]

    async def submit_block(self, block, peer):
        self.submitted += 1
        await self.release.wait()
        self.stored.add(decode_block(block).header.block_id)
        return Intake.ACCEPTED


async def test_copies_during_the_check_are_free_and_later_ones_cost_a_point():
    builder = ChainBuilder(P, synthetic=True)
    block = encode_block(builder.child(builder.genesis_id))
    gossip = BlockAnnouncement.for_block(block).encode()
    chain = SlowChain(frozenset({builder.genesis_id}))
    scoring = ScoreBook()
    net = PeerNetwork(StubHost(), chain, chain_id=P.chain_id, genesis_id=builder.genesis_id, scoring=scoring)
    first = asyncio.ensure_future(net._on_block_gossip("relay-a", gossip))
    await asyncio.sleep(0)
    copies = [await net._on_block_gossip(f"relay-{i}", gossip) for i in "bcd"]  # while the first is checked
    assert copies == [Verdict.IGNORE] * 3
    assert all(scoring.score(f"relay-{i}") == 0 for i in "bcd")
    chain.release.set()
    assert await first == Verdict.ACCEPT and chain.submitted == 1
    assert await net._on_block_gossip("relay-e", gossip) == Verdict.IGNORE  # accepted a moment ago: free
    assert scoring.score("relay-e") == 0


async def test_a_copy_of_a_block_known_for_a_while_costs_a_point(monkeypatch):
    builder = ChainBuilder(P, synthetic=True)
    old, recent = (encode_block(b) for b in builder.extend(builder.genesis_id, 2))
    chain = SlowChain(frozenset({builder.genesis_id}))
    chain.release.set()
    chain.stored |= {decode_block(old).header.block_id}  # stored long ago (before this process)
    scoring = ScoreBook()
    net = PeerNetwork(StubHost(), chain, chain_id=P.chain_id, genesis_id=builder.genesis_id, scoring=scoring)
    assert await net._on_block_gossip("a", BlockAnnouncement.for_block(old).encode()) == Verdict.IGNORE
    assert scoring.score("a") < 0
    assert await net._on_block_gossip("b", BlockAnnouncement.for_block(recent).encode()) == Verdict.ACCEPT
    clock = [time.monotonic() + FREE_DUPLICATE_SECONDS + 1]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    assert await net._on_block_gossip("c", BlockAnnouncement.for_block(recent).encode()) == Verdict.IGNORE
    assert scoring.score("c") < 0


class TxChain(SlowChain):
    def __init__(self, recent: bool) -> None:
        super().__init__()
        self.recent = recent

    async def submit_txs(self, txs, peer):
        return [TxOutcome(Intake.DUPLICATE, recent=self.recent) for _ in txs]


async def test_a_batch_of_duplicates_costs_a_point_only_when_they_are_old():
    from consensus.keys import devnet_keypairs
    from consensus.tx import make_transfer
    from p2p.protocol import encode_tx_batch

    batch = encode_tx_batch([encode_tx(make_transfer(devnet_keypairs(1)[0], P.chain_id, 0, bytes(20), 1, 1000))])
    for recent, charged in ((True, False), (False, True)):
        scoring = ScoreBook()
        net = PeerNetwork(StubHost(), TxChain(recent), chain_id=P.chain_id, genesis_id=bytes(32), scoring=scoring)
        assert await net._on_tx_gossip("relay", batch) == Verdict.IGNORE  # queued, never forwarded as is
        (peer, txs), = net._tx_backlog
        await net._admit_tx_batch(peer, txs)
        assert (scoring.score("relay") < 0) == charged


class CountingChain(SlowChain):
    """Admits every transfer, and says when it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def submit_txs(self, txs, peer):
        self.batches.append(len(txs))
        return [TxOutcome(Intake.ACCEPTED) for _ in txs]


async def test_transfer_batches_wait_in_a_bounded_queue_not_in_a_validator(monkeypatch):
    from consensus.keys import devnet_keypairs
    from consensus.tx import make_transfer
    from p2p import network
    from p2p.protocol import encode_tx_batch

    monkeypatch.setattr(network, "MAX_TX_BACKLOG", 12)
    monkeypatch.setattr(network, "MAX_TX_BACKLOG_PER_PEER", 6)
    key = devnet_keypairs(1)[0]
    batch = encode_tx_batch([encode_tx(make_transfer(key, P.chain_id, n, bytes(20), 1, 1000)) for n in range(2)])
    chain = CountingChain()
    scoring = ScoreBook()
    net = PeerNetwork(StubHost(), chain, chain_id=P.chain_id, genesis_id=bytes(32), scoring=scoring)
    # The validator answers at once, before any admission: blocks never wait behind transfers.
    verdicts = [await net._on_tx_gossip("a", batch) for _ in range(5)]
    assert verdicts == [Verdict.IGNORE] * 5 and chain.batches == []
    assert len(net._tx_backlog) == 3 and net.stats.tx_batches_dropped == 2  # 6 transfers of "a" wait
    for p in ("b", "c", "d", "e"):
        await net._on_tx_gossip(p, batch)
    assert len(net._tx_backlog) == 6 and net.stats.tx_batches_dropped == 3  # 12 in all: "e" is dropped
    assert scoring.score("a") == 0 and scoring.score("e") == 0  # overload costs the sender nothing
    worker = asyncio.create_task(net._admit_tx_batches())
    deadline = time.monotonic() + 10
    while net._tx_backlog and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    worker.cancel()
    assert not net._tx_backlog and chain.batches == [2] * 6 and net.stats.txs_accepted == 12
    await net._on_tx_gossip("e", batch)  # room again
    assert len(net._tx_backlog) == 1


async def test_the_transaction_queue_is_bounded_in_bytes_too(monkeypatch):
    """Fraud proofs are up to ~530 KB: a count bound alone would let one peer queue gigabytes."""
    from consensus.keys import devnet_keypairs
    from consensus.tx import make_transfer
    from p2p import network
    from p2p.protocol import encode_tx_batch

    key = devnet_keypairs(1)[0]
    batch = encode_tx_batch([encode_tx(make_transfer(key, P.chain_id, n, bytes(20), 1, 1000)) for n in range(2)])
    per_batch = 2 * len(encode_tx(make_transfer(key, P.chain_id, 0, bytes(20), 1, 1000)))
    monkeypatch.setattr(network, "MAX_TX_BACKLOG_BYTES", 5 * per_batch)
    monkeypatch.setattr(network, "MAX_TX_BACKLOG_BYTES_PER_PEER", 3 * per_batch)
    chain = CountingChain()
    scoring = ScoreBook()
    net = PeerNetwork(StubHost(), chain, chain_id=P.chain_id, genesis_id=bytes(32), scoring=scoring)
    for _ in range(4):
        await net._on_tx_gossip("a", batch)
    assert len(net._tx_backlog) == 3 and net.stats.tx_batches_dropped == 1  # "a" holds 3 batches' bytes
    for _ in range(3):
        await net._on_tx_gossip("b", batch)
    assert len(net._tx_backlog) == 5 and net.stats.tx_batches_dropped == 2  # 5 batches' bytes in all
    assert scoring.score("a") == 0 and scoring.score("b") == 0
    worker = asyncio.create_task(net._admit_tx_batches())
    deadline = time.monotonic() + 10
    while net._tx_backlog and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    worker.cancel()
    assert not net._tx_backlog and not net._tx_backlog_bytes_of
    await net._on_tx_gossip("a", batch)  # room again
    assert len(net._tx_backlog) == 1
