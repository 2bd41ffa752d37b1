"""The chain's bounds on what others make it store: side branches in reach, fork depth, orphans, future blocks.

Each rule is an attack on the code before it (issue 13): low-work side branches
stored and checked without limit, forks down to genesis, orphans held without
any proof-of-work check and evicted oldest first, blocks a little ahead of the
clock recorded as invalid.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from consensus import errors
from consensus.codec import encode_block
from consensus.forkchoice import RunVerdict
from consensus.keys import keypair_from_private
from consensus.tx import make_transfer
from consensus.types import Block
from node.chain import MAX_PRESYNC_IDS, BlockStatus, ChainService
from node.errors import BlockStateInvalid
from tests.support.blockgen import EASY_TARGET, ChainBuilder, easy_params
from tests.support.memstore import MemoryStore

P = easy_params()
NOW = P.genesis_time + 10**6


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_chain(params=P, store=None, **kwargs):
    kwargs.setdefault("clock", lambda: NOW)
    return ChainService(store if store is not None else MemoryStore(), params, **kwargs)


def ids(blocks):
    return [b.header.block_id for b in blocks]


@pytest.fixture(scope="module")
def main12():
    """A synthetic main chain of 12 blocks and a builder for branches off it."""
    builder = ChainBuilder(P, synthetic=True)
    return builder, builder.extend(builder.genesis_id, 12)


def synthetic_chain(main, **kwargs):
    chain = new_chain(check_certificates=False, **kwargs)
    for block in main:
        assert chain.submit_block(block).status == BlockStatus.CONNECTED
    return chain


# --- side branches ---------------------------------------------------------------------------------


def test_a_low_work_side_block_of_unfunded_transfers_is_refused_unstored_and_unchecked(main12):
    """The attack: a side block forking near genesis, full of transfers from keys that own nothing."""
    builder, main = main12
    store = MemoryStore()
    chain = synthetic_chain(main, store=store)
    unfunded = [keypair_from_private(bytes([i + 1]) * 32) for i in range(50)]
    transfers = [make_transfer(k, P.chain_id, 0, bytes(20), 10**6, 1000) for k in unfunded]
    side = builder.child(main[0].header.block_id, transfers, coinbase_to=b"\x01" * 20)
    before, writes = store.snapshot(), store.writes
    result = chain.submit_block(side)
    assert result.status == BlockStatus.LOW_WORK
    assert store.snapshot() == before and store.writes == writes  # nothing written
    assert chain.get_entry(side.header.block_id) is None and not chain.is_invalid(side.header.block_id)
    assert chain.tip_id == main[-1].header.block_id
    assert chain.submit_block(side).status == BlockStatus.LOW_WORK  # not remembered either way


def test_the_refusal_comes_before_validation(main12):
    """A low-work block is refused on its header's claim alone: even one whose signatures are garbage."""
    builder, main = main12
    chain = synthetic_chain(main)
    good = builder.child(main[1].header.block_id, [make_transfer(keypair_from_private(b"\x05" * 32), P.chain_id,
                                                                 0, bytes(20), 1, 1000)])
    tx = good.transactions[1]
    forged = Block(good.header, good.certificate, (good.transactions[0], replace(tx, signature=bytes(64))))
    assert chain.submit_block(forged).status == BlockStatus.LOW_WORK  # no BadSignature, no BadTxRoot


def test_a_side_block_within_the_margin_is_stored(main12):
    builder, main = main12
    chain = synthetic_chain(main)
    margin = P.side_branch_margin  # 6: a block of a fork from height 12 - 6 = 6 is in reach
    fork_ok = builder.child(main[5].header.block_id, coinbase_to=b"\x02" * 20)  # height 7, parent at height 6
    fork_short = builder.child(main[4].header.block_id, coinbase_to=b"\x02" * 20)  # height 6
    assert main[5].height == 12 - margin
    assert chain.submit_block(fork_ok).status == BlockStatus.SIDE_BRANCH
    assert chain.submit_block(fork_short).status == BlockStatus.LOW_WORK
    sibling = builder.child(main[10].header.block_id, coinbase_to=b"\x03" * 20)  # a sibling of the tip
    assert chain.submit_block(sibling).status == BlockStatus.SIDE_BRANCH
    assert chain.tip_id == main[-1].header.block_id


def test_with_no_margin_only_more_work_is_taken(main12):
    builder, main = main12
    chain = ChainService(MemoryStore(), replace(P, side_branch_margin=0), clock=lambda: NOW, check_certificates=False)
    for block in main:
        chain.submit_block(block)
    sibling = builder.child(main[10].header.block_id, coinbase_to=b"\x04" * 20)
    assert chain.submit_block(sibling).status == BlockStatus.LOW_WORK


def test_a_race_within_the_margin_reorganises_when_the_other_branch_overtakes(main12):
    builder, main = main12
    chain = synthetic_chain(main[:8])
    other = builder.extend(main[3].header.block_id, 6, coinbase_to=b"\x05" * 20)  # heights 5..10 from height 4
    for block in other[:4]:  # heights 5..8: each within 6 blocks' work of the tip at 8
        assert chain.submit_block(block).status == BlockStatus.SIDE_BRANCH
    assert chain.submit_block(other[4]).status == BlockStatus.CONNECTED  # height 9: more work
    assert chain.tip_id == other[4].header.block_id and chain.height == 9
    assert chain.verify_chain().ok


def test_a_fork_deeper_than_max_fork_depth_is_refused_even_with_more_work():
    params = replace(P, max_fork_depth=3, side_branch_margin=100)
    builder = ChainBuilder(params, synthetic=True)
    main = builder.extend(builder.genesis_id, 10)
    chain = ChainService(MemoryStore(), params, clock=lambda: NOW, check_certificates=False)
    for block in main:
        chain.submit_block(block)
    deep = builder.extend(main[5].header.block_id, 6, coinbase_to=b"\x06" * 20)  # forks at 6: 4 below the tip
    assert chain.submit_block(deep[0]).status == BlockStatus.FORK_TOO_DEEP
    assert chain.get_entry(deep[0].header.block_id) is None and not chain.is_invalid(deep[0].header.block_id)
    # Vouched for by its headers (more work than the tip), it is still too deep.
    assert chain.check_headers([b.header for b in deep]).verdict == RunVerdict.TOO_DEEP
    assert chain.submit_block(deep[0]).status == BlockStatus.FORK_TOO_DEEP
    ok = builder.extend(main[6].header.block_id, 5, coinbase_to=b"\x07" * 20)  # forks at 7: 3 below
    assert chain.submit_block(ok[0]).status == BlockStatus.SIDE_BRANCH
    # The walk down a stored side branch finds the same fork point.
    assert [chain.submit_block(b).status for b in ok[1:]] == ["side-branch", "side-branch", "connected", "connected"]
    assert chain.height == 12


# --- headers vouch for a branch ---------------------------------------------------------------------


def test_checked_headers_let_the_bodies_of_a_winning_branch_in(main12):
    builder, main = main12
    chain = synthetic_chain(main)
    branch = builder.extend(main[0].header.block_id, 13, coinbase_to=b"\x08" * 20)  # heights 2..14
    assert chain.submit_block(branch[0]).status == BlockStatus.LOW_WORK
    run = chain.check_headers([b.header for b in main[:1] + branch[:5]])  # the locator overlap, then 5 of them
    assert run.verdict == RunVerdict.PRESYNC and run.fork_height == 1 and run.pending == tuple(ids(branch[:5]))
    assert run.fetch == ()
    run = chain.check_headers([b.header for b in branch[5:]], run)
    assert run.verdict == RunVerdict.FETCH and run.fetch == tuple(ids(branch))
    assert run.chain_work == chain.get_entry(main[0].header.block_id).chain_work + 13 * (
        chain.tip.chain_work - chain.get_entry(main[-2].header.block_id).chain_work)
    statuses = [chain.submit_block(b).status for b in branch]
    assert statuses == ["side-branch"] * 11 + ["connected"] * 2
    assert chain.tip_id == branch[-1].header.block_id and chain.verify_chain().ok


def test_header_checks_raise_the_rule_a_header_breaks(main12):
    builder, main = main12
    chain = synthetic_chain(main)
    branch = builder.extend(main[8].header.block_id, 4, coinbase_to=b"\x09" * 20)
    headers = [b.header for b in branch]
    wrong_target = replace(headers[1], pre=replace(headers[1].pre, target=EASY_TARGET // 2))
    with pytest.raises(errors.BadTarget):
        chain.check_headers([headers[0], wrong_target])
    with pytest.raises(errors.BadHeight):
        chain.check_headers([headers[0], headers[2]])
    with pytest.raises(errors.BadLinkage):
        chain.check_headers([headers[0], replace(headers[1], pre=replace(headers[1].pre, prev_id=bytes(32)))])
    with pytest.raises(errors.UnknownParent):
        chain.check_headers(headers[1:])
    future = builder.child(main[-1].header.block_id, time=NOW + P.max_future + 1)
    with pytest.raises(errors.TimeTooNew):
        chain.check_headers([future.header])


def test_a_presync_that_stays_out_of_reach_is_bounded(main12):
    builder, main = main12
    chain = synthetic_chain(main)
    header = builder.child(main[0].header.block_id, coinbase_to=b"\x0a" * 20).header
    run = chain.check_headers([header])
    assert run.verdict == RunVerdict.PRESYNC and len(run.pending) == 1
    stuffed = replace(run, pending=tuple(bytes([i % 256, i // 256]) * 16 for i in range(MAX_PRESYNC_IDS)))
    nxt = builder.child(header.block_id, coinbase_to=b"\x0a" * 20).header
    assert chain.check_headers([nxt], stuffed).verdict == RunVerdict.TOO_LONG


# --- state faults ------------------------------------------------------------------------------------


def test_a_state_fault_found_when_a_branch_connects_is_no_peer_fault():
    """Key 0 pays on both branches: the side branch's payment is fine alone, spent twice once it connects."""
    params = easy_params()
    builder = ChainBuilder(params, synthetic=True)
    key = keypair_from_private(b"\x0b" * 32)  # unfunded: a transfer from it is a balance fault
    main = builder.extend(builder.genesis_id, 3)
    chain = ChainService(MemoryStore(), params, clock=lambda: NOW, check_certificates=False)
    for block in main:
        chain.submit_block(block)
    side1 = builder.child(main[1].header.block_id, [make_transfer(key, params.chain_id, 0, bytes(20), 5, 1000)],
                          coinbase_to=b"\x0b" * 20)
    assert chain.submit_block(side1).status == BlockStatus.SIDE_BRANCH  # state not checked on a side branch
    side2 = builder.child(side1.header.block_id, coinbase_to=b"\x0b" * 20)
    with pytest.raises(BlockStateInvalid) as info:
        chain.submit_block(side2)  # the branch overtakes: side1 is applied and fails
    assert not isinstance(info.value, errors.PeerFault) and info.value.rule == "ancestor-invalid"
    assert isinstance(info.value.__cause__.cause, errors.InsufficientBalance)
    assert chain.is_invalid(side1.header.block_id) and chain.is_invalid(side2.header.block_id)
    assert chain.tip_id == main[-1].header.block_id and chain.verify_chain().ok
    with pytest.raises(BlockStateInvalid):  # its descendants cost nothing to refuse, and are no fault either
        chain.submit_block(builder.child(side2.header.block_id, coinbase_to=b"\x0b" * 20))


# --- orphans -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mined():
    """Real mined blocks (certificates checked): a chain of 4 whose first block is withheld."""
    builder = ChainBuilder(P)
    return builder, builder.extend(builder.genesis_id, 4)


def test_orphans_pass_the_checks_that_need_no_parent(mined):
    builder, blocks = mined
    chain = new_chain()
    orphan = blocks[2]
    cert = orphan.certificate
    bad_cert = Block(orphan.header, replace(cert, a_blk=bytes([cert.a_blk[0] ^ 1]) + cert.a_blk[1:]),
                     orphan.transactions)
    with pytest.raises(errors.BadCertificate):
        chain.submit_block(bad_cert)
    other_body = Block(orphan.header, orphan.certificate, blocks[3].transactions)
    with pytest.raises(errors.BadTxRoot):  # a real header with another body would steal the real block's id
        chain.submit_block(other_body)
    assert chain.orphan_count() == 0
    assert chain.submit_block(orphan).status == BlockStatus.ORPHAN and chain.orphan_count() == 1


def test_an_orphan_easier_than_pow_limit_is_refused():
    params = replace(P, pow_limit=EASY_TARGET)
    builder = ChainBuilder(params, synthetic=True)
    blocks = builder.extend(builder.genesis_id, 2)
    easy = blocks[1]
    easy = Block(replace(easy.header, pre=replace(easy.header.pre, target=EASY_TARGET + 1)), easy.certificate,
                 easy.transactions)
    chain = ChainService(MemoryStore(), params, clock=lambda: NOW)  # certificates checked: the target comes first
    with pytest.raises(errors.BadTarget):
        chain.submit_block(easy)
    assert chain.orphan_count() == 0


def test_oversized_and_overfull_orphans_are_refused_and_the_size_is_measured_when_not_given():
    key = keypair_from_private(b"\x0c" * 32)
    transfers = [make_transfer(key, P.chain_id, i, bytes(20), 1, 1000) for i in range(8)]
    builder = ChainBuilder(P, synthetic=True)
    first = builder.child(builder.genesis_id)
    orphan = builder.child(first.header.block_id, transfers)
    size = len(encode_block(orphan))
    small = new_chain(replace(P, max_block_size=size - 1), check_certificates=False)
    with pytest.raises(errors.BlockTooLarge):
        small.submit_block(orphan)  # no size given: encoded to learn it
    with pytest.raises(errors.BlockTooLarge):
        new_chain(check_certificates=False).submit_block(orphan, P.max_block_size + 1)
    few = new_chain(replace(P, max_tx_count=len(transfers)), check_certificates=False)
    with pytest.raises(errors.TooManyTxs):
        few.submit_block(orphan)
    assert small.orphan_count() == few.orphan_count() == 0


@pytest.fixture(scope="module")
def orphans():
    """300 synthetic orphans: each a child of a block nobody has (every second block of a long chain)."""
    builder = ChainBuilder(P, synthetic=True)
    run = builder.extend(builder.genesis_id, 600)
    return run[1::2]


def test_orphans_are_bounded_per_source(orphans):
    chain = new_chain(check_certificates=False, max_orphans=100, max_orphans_per_source=10)
    for block in orphans[:30]:
        assert chain.submit_block(block, source="flooder").status == BlockStatus.ORPHAN
    for block in orphans[30:35]:
        chain.submit_block(block, source="honest")
    assert chain._orphans.count_of("flooder") == 10 and chain._orphans.count_of("honest") == 5
    assert chain.orphan_count() == 15
    assert all(b.header.block_id in chain._orphans for b in orphans[30:35])  # one source cannot evict another's


def test_a_flood_from_many_sources_evicts_at_random_and_keeps_some_honest_orphans(orphans):
    chain = new_chain(check_certificates=False, max_orphans=100, max_orphans_per_source=25, rng=random.Random(5))
    honest = orphans[:20]
    for block in honest:
        chain.submit_block(block, source="honest")
    for i, block in enumerate(orphans[20:220]):  # 200 more, from 8 sources of 25: twice the pool
        chain.submit_block(block, source=f"sybil-{i // 25}")
    kept = [b for b in honest if b.header.block_id in chain._orphans]
    assert chain.orphan_count() == 100
    # Oldest-first eviction would keep none; at random each keeps about e^-2 of a chance.
    assert 0 < len(kept) < len(honest)
    assert all(chain._orphans.count_of(f"sybil-{i}") <= 25 for i in range(8))


def test_orphan_bytes_are_bounded_in_total(orphans):
    size = len(encode_block(orphans[0]))
    chain = new_chain(check_certificates=False, max_orphans=100, max_orphan_bytes=10 * size + 5,
                      max_orphans_per_source=100)
    for i, block in enumerate(orphans[:40]):
        chain.submit_block(block, source=f"s{i}")
    assert chain.orphan_count() == 10 and chain._orphans.bytes <= 10 * size + 5


# --- blocks from the future --------------------------------------------------------------------------


def test_a_block_ahead_of_the_clock_is_held_not_invalid_and_taken_when_its_time_comes():
    clock = Clock()
    builder = ChainBuilder(P, synthetic=True)
    base = builder.extend(builder.genesis_id, 2)
    chain = new_chain(check_certificates=False, clock=clock)
    for block in base:
        chain.submit_block(block)
    ahead = builder.child(base[-1].header.block_id, time=NOW + P.max_future + 60)
    child = builder.child(ahead.header.block_id)
    with pytest.raises(errors.TimeTooNew) as info:
        chain.submit_block(ahead, source="peer-x")
    assert not isinstance(info.value, errors.PeerFault)  # netadapter: transient, no penalty
    assert not chain.is_invalid(ahead.header.block_id) and chain.get_entry(ahead.header.block_id) is None
    assert chain.future_count() == 1
    assert chain.submit_block(ahead).status == BlockStatus.DUPLICATE  # held: not checked again
    assert chain.submit_block(child).status == BlockStatus.ORPHAN  # its descendants are not invalid either
    assert not chain.is_invalid(child.header.block_id)
    clock.now += 59
    assert chain.retry_future_blocks() == [] and chain.future_count() == 1  # a second early still
    clock.now += 1
    other = builder.child(base[0].header.block_id, coinbase_to=b"\x0d" * 20)  # any later submission retries
    result = chain.submit_block(other)
    assert result.status == BlockStatus.SIDE_BRANCH
    assert result.orphans_accepted == (ahead.header.block_id,)
    assert result.tip_change is not None and result.tip_change.connected == (ahead.header.block_id,)
    # The orphan came out behind it, but it is 5 s later still: ahead of the clock itself, so held in turn.
    assert chain.orphan_count() == 0 and chain.future_count() == 1 and not chain.is_invalid(child.header.block_id)
    clock.now += 5
    again = chain.submit_block(child)  # sent again once its time came: taken as new, not a duplicate
    assert again.status == BlockStatus.CONNECTED and again.orphans_accepted == ()
    assert chain.tip_id == child.header.block_id and chain.future_count() == 0 and chain.height == 4


def test_a_future_block_costs_no_certificate_check_and_is_dropped_at_its_retry_if_invalid():
    clock = Clock()
    builder = ChainBuilder(P, synthetic=True)  # zero certificates: invalid once checked
    base = builder.child(builder.genesis_id)
    chain = new_chain(clock=clock)  # certificates checked
    checks = []
    chain.on_certificate_checked = checks.append
    with pytest.raises(errors.BadCertificate):
        chain.submit_block(base)
    assert len(checks) == 1
    ahead = builder.child(builder.genesis_id, time=NOW + P.max_future + 60)
    with pytest.raises(errors.TimeTooNew):
        chain.submit_block(ahead)
    assert len(checks) == 1 and chain.future_count() == 1  # held without a certificate check
    clock.now += 60
    assert chain.retry_future_blocks() == []  # checked in full now: the certificate fails, it is dropped
    assert len(checks) == 2 and chain.future_count() == 0
    assert chain.get_entry(ahead.header.block_id) is None and not chain.is_invalid(ahead.header.block_id)
    far = builder.child(builder.genesis_id, time=NOW + 100 * P.max_future)
    with pytest.raises(errors.TimeTooNew):
        chain.submit_block(far)
    assert chain.future_count() == 0  # a clock days off is not worth a slot
