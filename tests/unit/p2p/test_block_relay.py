"""What ``PeerNetwork`` forwards and whom it charges for a gossiped block (docs/p2p.md sections 8.3 and 9).

Only a block the chain fully validated (``Intake.ACCEPTED``) is forwarded. A
side-branch block (``STORED``) and a block refused for a fault that depends on
state (``IGNORED``) are neither forwarded nor charged; a ``PeerFault`` bans. A
block whose parent is unknown is checked on its own (``check_orphan``) before
it is held, never handed to the chain while its parent is missing, and
submitted once the parent is stored: announced only if it then connected.
"""

from __future__ import annotations

import asyncio

from consensus.codec import decode_block, encode_block
from consensus.errors import BadCertificate, BadTarget
from p2p.access import Intake
from p2p.network import ORPHAN_POOL, PeerNetwork
from p2p.orphans import MAX_ORPHAN_CHECKS_PER_PEER as MAX_PER_PEER
from p2p.protocol import BlockAnnouncement
from p2p.scoring import ScoreBook
from p2p.types import Verdict
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.stubhost import RecordingHost

P = easy_params()


class ScriptedChain:
    """A ``ChainAccess`` whose answer to each submitted block is set by the test (default ``ACCEPTED``)."""

    def __init__(self, stored: set[bytes]) -> None:
        self.stored = set(stored)
        self.answers: dict[bytes, Intake | Exception] = {}
        self.bad_orphans: dict[bytes, Exception] = {}
        self.submitted: list[tuple[bytes, str]] = []
        self.checked: list[bytes] = []

    def status(self):
        return bytes(32), 0, 0

    async def missing_blocks(self, ids):
        return [i for i in ids if i not in self.stored]

    async def submit_block(self, block, peer):
        block_id = decode_block(block).header.block_id
        self.submitted.append((block_id, peer))
        answer = self.answers.get(block_id, Intake.ACCEPTED)
        if isinstance(answer, Exception):
            raise answer
        if answer in (Intake.ACCEPTED, Intake.STORED):
            self.stored.add(block_id)
        return answer

    async def check_orphan(self, block):
        block_id = decode_block(block).header.block_id
        self.checked.append(block_id)
        if block_id in self.bad_orphans:
            raise self.bad_orphans[block_id]


def setup(count: int = 3):
    builder = ChainBuilder(P, synthetic=True)
    blocks = builder.extend(builder.genesis_id, count)
    chain = ScriptedChain({builder.genesis_id})
    scoring = ScoreBook()
    host = RecordingHost()
    net = PeerNetwork(host, chain, chain_id=P.chain_id, genesis_id=builder.genesis_id, scoring=scoring)
    return builder, blocks, chain, scoring, host, net


def gossip(block) -> bytes:
    return BlockAnnouncement.for_block(encode_block(block)).encode()


def bid(block) -> bytes:
    return block.header.block_id


async def settle(net: PeerNetwork) -> None:
    """Let the tasks the network spawned (held orphans being submitted) finish."""
    while net._tasks:
        await asyncio.gather(*list(net._tasks), return_exceptions=True)


async def test_only_a_fully_validated_block_is_forwarded_and_nothing_else_costs_the_sender():
    builder, (b1, _, _), chain, scoring, _, net = setup()
    side = [builder.child(builder.genesis_id, coinbase_to=bytes([i]) * 20) for i in range(1, 4)]
    chain.answers[bid(side[0])] = Intake.STORED  # a side branch: state not checked yet
    chain.answers[bid(side[1])] = Intake.IGNORED  # a nonce or balance fault: not the relay's to know
    chain.answers[bid(side[2])] = RuntimeError("the chain is busy")  # transient
    assert await net._on_block_gossip("relay", gossip(b1)) == Verdict.ACCEPT
    for block in side:
        assert await net._on_block_gossip("relay", gossip(block)) == Verdict.IGNORE
    assert scoring.score("relay") == 0 and not scoring.is_banned("relay")
    assert net.stats.blocks_accepted == 1


async def test_a_peer_fault_still_bans_at_once():
    builder, (b1, _, _), chain, scoring, _, net = setup()
    chain.answers[bid(b1)] = BadTarget("expected 0x1, found 0x2")
    assert await net._on_block_gossip("liar", gossip(b1)) == Verdict.REJECT
    assert scoring.is_banned("liar")
    assert scoring.list_banned()[0].reason.startswith("invalid-block")


async def test_a_copy_of_a_stored_side_block_is_free_for_a_while():
    builder, _, chain, scoring, _, net = setup()
    side = builder.child(builder.genesis_id, coinbase_to=b"\x05" * 20)
    chain.answers[bid(side)] = Intake.STORED
    assert await net._on_block_gossip("a", gossip(side)) == Verdict.IGNORE
    # For another node it connected and was forwarded: its copy crossed ours, no charge.
    assert await net._on_block_gossip("b", gossip(side)) == Verdict.IGNORE
    assert scoring.score("b") == 0


async def test_an_orphan_is_checked_held_and_never_handed_to_the_chain_before_its_parent():
    _, (b1, b2, b3), chain, scoring, host, net = setup()
    assert await net._on_block_gossip("peer", gossip(b3)) == Verdict.IGNORE
    assert await net._on_block_gossip("peer", gossip(b2)) == Verdict.IGNORE
    assert chain.checked == [bid(b3), bid(b2)] and chain.submitted == []
    assert len(net._orphans) == 2 and scoring.score("peer") == 0
    assert await net._on_block_gossip("other", gossip(b3)) == Verdict.IGNORE  # a copy of a held one: free
    assert scoring.score("other") == 0 and chain.checked == [bid(b3), bid(b2)]

    assert await net._on_block_gossip("peer", gossip(b1)) == Verdict.ACCEPT
    await settle(net)
    assert chain.submitted == [(bid(b1), "peer"), (bid(b2), ORPHAN_POOL), (bid(b3), ORPHAN_POOL)]
    assert len(net._orphans) == 0
    # The adopted orphans were never forwarded by gossip: the node announces them itself.
    announced = [BlockAnnouncement.decode(data).header for _, data in host.published]
    assert announced == [encode_block(b)[:212] for b in (b2, b3)]
    assert net.stats.blocks_accepted == 3


async def test_an_orphan_that_fails_its_own_checks_bans_and_is_not_held():
    _, (_, b2, b3), chain, scoring, _, net = setup()
    chain.bad_orphans[bid(b2)] = BadCertificate("no winning tile", "ticket")
    assert await net._on_block_gossip("forger", gossip(b2)) == Verdict.REJECT
    assert scoring.is_banned("forger") and len(net._orphans) == 0 and chain.submitted == []
    assert await net._on_block_gossip("honest", gossip(b3)) == Verdict.IGNORE
    assert len(net._orphans) == 1


async def test_children_of_a_side_branch_block_are_submitted_and_announced_only_if_they_connect():
    builder, _, chain, scoring, host, net = setup()
    s1 = builder.child(builder.genesis_id, coinbase_to=b"\x01" * 20)
    s2, s3 = builder.extend(bid(s1), 2, coinbase_to=b"\x02" * 20)
    chain.answers[bid(s1)] = Intake.STORED
    chain.answers[bid(s2)] = Intake.STORED
    chain.answers[bid(s3)] = Intake.ACCEPTED  # the branch overtakes with s3
    for block in (s3, s2):
        assert await net._on_block_gossip("peer", gossip(block)) == Verdict.IGNORE
    assert await net._on_block_gossip("peer", gossip(s1)) == Verdict.IGNORE  # stored: not forwarded
    await settle(net)
    assert [i for i, _ in chain.submitted] == [bid(s1), bid(s2), bid(s3)]
    announced = [BlockAnnouncement.decode(data).header for _, data in host.published]
    assert announced == [encode_block(s3)[:212]]  # s2 is still on a side branch: not announced
    assert scoring.score("peer") == 0


async def test_a_held_orphan_that_fails_against_its_parent_bans_its_sender_and_a_state_fault_does_not():
    builder, (b1, b2, _), chain, scoring, host, net = setup()
    other = builder.child(bid(b1), coinbase_to=b"\x09" * 20)
    chain.answers[bid(b2)] = BadTarget("wrong target for its parent")
    chain.answers[bid(other)] = Intake.IGNORED
    assert await net._on_block_gossip("liar", gossip(b2)) == Verdict.IGNORE  # looks fine on its own
    assert await net._on_block_gossip("relay", gossip(other)) == Verdict.IGNORE
    assert await net._on_block_gossip("honest", gossip(b1)) == Verdict.ACCEPT
    await settle(net)
    assert scoring.is_banned("liar")
    assert not scoring.is_banned("relay") and scoring.score("relay") == 0
    assert host.published == []


async def test_an_orphan_whose_parent_arrived_during_its_check_is_submitted_at_once():
    _, (b1, b2, _), chain, _, host, net = setup()

    async def parent_arrives(block):
        chain.stored.add(bid(b1))  # stored by another path (sync) while b2 was being checked

    chain.check_orphan = parent_arrives
    assert await net._on_block_gossip("peer", gossip(b2)) == Verdict.IGNORE
    await settle(net)
    assert chain.submitted == [(bid(b2), ORPHAN_POOL)] and len(net._orphans) == 0
    assert len(host.published) == 1


async def test_a_peer_holds_at_most_its_share_and_a_ban_drops_what_it_holds():
    builder, _, chain, scoring, _, net = setup()
    missing = builder.child(builder.genesis_id, coinbase_to=b"\x07" * 20)
    orphans = [builder.child(bid(missing), coinbase_to=bytes([i]) * 20) for i in range(20)]
    for block in orphans:
        await net._on_block_gossip("flooder", gossip(block))
    assert net._orphans.held_by("flooder")[0] == net._orphans.per_peer_count < 20
    honest = builder.child(bid(missing), coinbase_to=b"\x99" * 20)
    assert await net._on_block_gossip("honest", gossip(honest)) == Verdict.IGNORE
    assert net._orphans.held_by("honest")[0] == 1  # the flood only ever displaced itself
    net._on_ban(scoring.ban("flooder", reason="test"))
    assert net._orphans.held_by("flooder") == (0, 0) and net._orphans.held_by("honest")[0] >= 1


async def test_orphans_beyond_the_check_bounds_are_dropped_unread_and_cost_nothing():
    builder, _, chain, scoring, _, net = setup()
    missing = builder.child(builder.genesis_id, coinbase_to=b"\x08" * 20)
    orphans = [builder.child(bid(missing), coinbase_to=bytes([i]) * 20) for i in range(4)]
    release = asyncio.Event()
    checked = []

    async def slow_check(block):
        checked.append(decode_block(block).header.block_id)
        await release.wait()

    chain.check_orphan = slow_check
    first = [asyncio.ensure_future(net._on_block_gossip("flooder", gossip(b))) for b in orphans[:MAX_PER_PEER]]
    await asyncio.sleep(0)
    while len(checked) < MAX_PER_PEER:
        await asyncio.sleep(0)
    assert await net._on_block_gossip("flooder", gossip(orphans[-1])) == Verdict.IGNORE  # over its bound
    assert len(checked) == MAX_PER_PEER and scoring.score("flooder") == 0
    release.set()
    assert await asyncio.gather(*first) == [Verdict.IGNORE] * MAX_PER_PEER
    assert net._orphans.held_by("flooder")[0] == MAX_PER_PEER and not net._checking


async def test_an_orphan_of_a_block_the_node_announces_itself_is_submitted():
    _, (b1, b2, _), chain, _, host, net = setup()
    assert await net._on_block_gossip("peer", gossip(b2)) == Verdict.IGNORE
    chain.stored.add(bid(b1))  # mined here, or taken over RPC: it reaches the network by announce_block
    await net.announce_block(encode_block(b1))
    await settle(net)
    assert chain.submitted == [(bid(b2), ORPHAN_POOL)]
    assert [BlockAnnouncement.decode(d).header for _, d in host.published] == [encode_block(b)[:212] for b in (b1, b2)]
