"""Headers-first sync believes the headers it receives, not the work a peer claims.

``HeadersFirstSync`` runs against a real ``ChainService`` (ours, through
``ChainServiceAccess``) and a fake requester that serves another real chain
(theirs) page by page, recording what was asked and whom it punished.
"""

from __future__ import annotations

from dataclasses import replace

from consensus.codec import decode_header, encode_block, encode_header
from node.chain import ChainService
from node.netadapter import chain_headers_after
from p2p.headersync import HeadersFirstSync
from p2p.peers import NetworkStats, PeerState
from p2p.protocol import Status
from p2p.scoring import Offence
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.chainaccess import ChainServiceAccess
from tests.support.memstore import MemoryStore

P = easy_params()
NOW = P.genesis_time + 10**6
PEER = "peer-1"


class Requests:
    """``PeerRequester`` over another chain: headers and blocks from it; punishments recorded."""

    def __init__(self, theirs: ChainService, *, edit_headers=None) -> None:
        self.theirs = theirs
        self.edit_headers = edit_headers
        self.log: list[tuple[str, int]] = []
        """``("headers", count)`` and ``("blocks", count)`` in the order they were asked."""
        self.fetched: list[bytes] = []
        self.punished: list[tuple[str, Offence, str]] = []

    async def headers(self, peer, locator, max_count):
        headers = chain_headers_after(self.theirs, locator, max_count)
        if self.edit_headers is not None:
            headers = self.edit_headers(len([e for e in self.log if e[0] == "headers"]), headers)
        self.log.append(("headers", len(headers)))
        return headers

    async def blocks(self, ids, sources):
        self.log.append(("blocks", len(ids)))
        self.fetched += ids
        return {i: (encode_block(self.theirs.get_block(i)), sources[0]) for i in ids
                if self.theirs.get_block(i) is not None}

    def punish(self, peer, offence, detail=""):
        self.punished.append((peer, offence, detail))
        return offence.points is None


def chain(params=P, *, certificates=False):
    return ChainService(MemoryStore(), params, clock=lambda: NOW, check_certificates=certificates)


def make_sync(ours: ChainService, requests: Requests, *, claimed_work: int = 1 << 200, per_page: int = 2000):
    state = PeerState(PEER, "outbound", 0.0, status=Status(P.chain_id, ours.genesis_id, bytes(32), 1, claimed_work))

    async def noop(*args):
        return None

    return HeadersFirstSync(ChainServiceAccess(ours), requests, {PEER: state}, NetworkStats(),
                            after_accept=lambda block_id: None, announce_block=noop, refresh_status=noop,
                            headers_per_page=per_page)


async def fruitless_round(sync: HeadersFirstSync) -> None:
    """One sync round with the peer (as the sync task runs it) that must make no progress."""
    state = sync.peers[PEER]
    await sync._round(state)
    assert state.tried_work == state.status.work  # not tried again until its status changes


def grow(target: ChainService, blocks) -> None:
    for block in blocks:
        target.submit_block(block)


async def test_a_claim_of_more_work_than_the_headers_show_fetches_no_body_and_costs_nothing():
    builder = ChainBuilder(P, synthetic=True)
    ours, theirs = chain(), chain()
    grow(ours, builder.extend(builder.genesis_id, 12))
    grow(theirs, builder.extend(builder.genesis_id, 4, coinbase_to=b"\x01" * 20))  # a short branch from genesis
    requests = Requests(theirs)
    tip = ours.tip_id
    assert await make_sync(ours, requests, claimed_work=1 << 250).sync_from(PEER) is False
    assert requests.fetched == [] and requests.punished == []
    assert ours.tip_id == tip and len(ours.entries()) == 13


async def test_a_longer_branch_from_far_below_is_weighed_page_by_page_then_fetched_and_connected():
    builder = ChainBuilder(P, synthetic=True)
    ours, theirs = chain(), chain()
    grow(ours, builder.extend(builder.genesis_id, 16))
    branch = builder.extend(builder.genesis_id, 24, coinbase_to=b"\x02" * 20)
    grow(theirs, branch)
    requests = Requests(theirs)
    assert await make_sync(ours, requests, per_page=4).sync_from(PEER) is True
    # Heights 1..4 and 5..8 of their branch are out of reach of our 16 blocks (margin 6): nothing fetched.
    # The page that brings it in reach (9..12) brings the first body request, from height 1.
    assert requests.log[:4] == [("headers", 4), ("headers", 4), ("headers", 4), ("blocks", 12)]
    assert requests.fetched == [b.header.block_id for b in branch]
    assert ours.tip_id == theirs.tip_id and ours.height == 24 and requests.punished == []
    assert ours.verify_chain().ok


async def test_a_branch_that_ends_out_of_reach_after_several_pages_fetches_nothing():
    builder = ChainBuilder(P, synthetic=True)
    ours, theirs = chain(), chain()
    grow(ours, builder.extend(builder.genesis_id, 30))
    grow(theirs, builder.extend(builder.genesis_id, 10, coinbase_to=b"\x03" * 20))
    requests = Requests(theirs)
    assert await make_sync(ours, requests, per_page=3).sync_from(PEER) is False
    assert [kind for kind, _ in requests.log] == ["headers"] * 4 and requests.fetched == []
    assert requests.punished == []


async def test_a_fork_deeper_than_max_fork_depth_is_refused_without_penalty():
    params = replace(P, max_fork_depth=5, side_branch_margin=100)
    builder = ChainBuilder(params, synthetic=True)
    ours, theirs = chain(params), chain(params)
    common = builder.extend(builder.genesis_id, 2)
    grow(ours, common + builder.extend(common[-1].header.block_id, 10))
    grow(theirs, common + builder.extend(common[-1].header.block_id, 30, coinbase_to=b"\x04" * 20))
    requests = Requests(theirs)
    await fruitless_round(make_sync(ours, requests))
    assert requests.fetched == [] and requests.punished == [] and ours.height == 12


async def test_headers_with_a_wrong_target_for_their_parent_ban_the_peer():
    builder = ChainBuilder(P, synthetic=True)
    ours, theirs = chain(), chain()
    grow(theirs, builder.extend(builder.genesis_id, 5))

    def wrong_target(page, headers):  # the last header (so the page still links) claims 3x the work
        h = decode_header(headers[-1])
        return [*headers[:-1], encode_header(replace(h, pre=replace(h.pre, target=h.pre.target // 3)))]

    requests = Requests(theirs, edit_headers=wrong_target)
    await fruitless_round(make_sync(ours, requests))
    assert [(p, o) for p, o, _ in requests.punished] == [(PEER, Offence.INVALID_BLOCK)]
    assert "target" in requests.punished[0][2] and requests.fetched == [] and ours.height == 0


async def test_pages_that_do_not_continue_each_other_are_a_bad_response():
    builder = ChainBuilder(P, synthetic=True)
    ours, theirs = chain(), chain()
    blocks = builder.extend(builder.genesis_id, 8)
    grow(theirs, blocks)

    def skip_one(page, headers):  # the second page leaves out its first header: linked, but not to page one
        return headers[1:] if page == 1 else headers

    requests = Requests(theirs, edit_headers=skip_one)
    sync = make_sync(ours, requests, per_page=4)
    await sync._round(sync.peers[PEER])
    assert requests.punished == [(PEER, Offence.BAD_RESPONSE, "headers do not continue the page before")]
    assert ours.height == 4  # page one was in reach of our genesis tip: its bodies were taken


async def test_fabricated_headers_in_reach_are_found_out_at_the_first_body():
    """Headers prove no work here: a peer can send any with the right targets. Its first body's certificate fails."""
    builder = ChainBuilder(P, synthetic=True)  # zero certificates: what a forger can afford
    ours, theirs = chain(certificates=True), chain()
    grow(theirs, builder.extend(builder.genesis_id, 6))
    requests = Requests(theirs)
    await fruitless_round(make_sync(ours, requests))
    assert [(p, o) for p, o, _ in requests.punished] == [(PEER, Offence.INVALID_BLOCK)]
    assert "certificate" in requests.punished[0][2]
    assert ours.height == 0 and len(ours.entries()) == 1
