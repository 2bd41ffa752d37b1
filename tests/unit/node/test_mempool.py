"""Mempool: nonce order, fee priority, replacement, limits and eviction, incremental revalidation on tip changes."""

import asyncio
import random
from collections import Counter
from dataclasses import replace

import pytest

from consensus.codec import encode_tx
from consensus.errors import BadNonce, BadSignature, FeeTooLow, InsufficientBalance, WrongChainId
from consensus.keys import devnet_keypairs
from consensus.networks import DEVNET
from consensus.tx import compute_tx_id, make_transfer
from consensus.types import Account, Tx
from node.mempool import MAX_PER_SENDER, Mempool, MempoolError

CHAIN = 1337
KEYS = devnet_keypairs(8)
TO = b"\x42" * 20
U = 1000
"""Fees, amounts and balances below are in units of 1000 base units, so the smallest fee a test uses (1 unit)
is above the minimum fee of the largest transfer here (1 base unit per byte, 147 + memo bytes)."""


class Accounts(dict):
    """Account state by address, counting the reads per address."""

    def __init__(self, *args):
        super().__init__(*args)
        self.reads = Counter()

    def get_account(self, address):
        self.reads[address] += 1
        return self.get(address, Account())


@pytest.fixture
def state():
    return Accounts({k.address: Account(1_000_000 * U, 0) for k in KEYS})


def pool(state, min_fee_per_byte=1, **kw):
    return Mempool(replace(DEVNET, min_fee_per_byte=min_fee_per_byte), state.get_account, **kw)


def tx(key, nonce, fee=10, amount=100, chain=CHAIN, memo=b"", to=TO):
    """A transfer paying ``fee`` and moving ``amount``, both in units of ``U``."""
    return make_transfer(key, chain, nonce, to, amount * U, fee * U, memo)


def mine(state, *txs):
    """Apply ``txs`` to ``state`` as a block would (senders pay, recipients get)."""
    for t in txs:
        sender = next(k.address for k in KEYS if k.public_key == t.body.pubkey)
        acct = state.get(sender, Account())
        assert acct.nonce == t.body.nonce
        state[sender] = Account(acct.balance - t.body.amount - t.body.fee, acct.nonce + 1)
        to = state.get(t.body.to, Account())
        state[t.body.to] = Account(to.balance + t.body.amount, to.nonce)


def check_consistent(mp, state):
    """The invariants the incremental bookkeeping must keep, checked the slow way."""
    total_bytes = 0
    count = 0
    tails = {id(item[2]) for item in mp._tails}
    for sender, queue in mp._queues.items():
        nonces = sorted(queue.entries)
        assert nonces == list(range(state.get(sender, Account()).nonce, state.get(sender, Account()).nonce
                                    + len(nonces)))
        assert queue.first == nonces[0]
        assert queue.spent == sum(e.tx.body.amount + e.fee for e in queue.entries.values())
        assert mp.pending_cost(sender) <= state.get(sender, Account()).balance
        assert len(queue) <= mp.max_per_sender
        assert id(queue.tail()) in tails  # every last transfer can be found for eviction
        total_bytes += sum(e.size for e in queue.entries.values())
        count += len(queue)
    assert count == len(mp) and total_bytes == mp.bytes
    assert len(mp) <= mp.max_count and mp.bytes <= mp.max_bytes


def test_accepts_contiguous_nonces_and_rejects_gaps(state):
    mp = pool(state)
    mp.add(tx(KEYS[0], 0))
    mp.add(tx(KEYS[0], 1))
    with pytest.raises(BadNonce, match="gap"):
        mp.add(tx(KEYS[0], 3))
    assert mp.pending_nonce(KEYS[0].address) == 2
    state[KEYS[1].address] = Account(1_000_000 * U, 5)
    with pytest.raises(BadNonce, match="already used"):
        mp.add(tx(KEYS[1], 4))


def test_stateless_checks(state):
    mp = pool(state)
    with pytest.raises(WrongChainId):
        mp.add(tx(KEYS[0], 0, chain=1))
    good = tx(KEYS[0], 0)
    forged = Tx(good.body, bytes(64))
    with pytest.raises(BadSignature):
        mp.add(forged)
    mp.add(good)
    with pytest.raises(MempoolError) as e:
        mp.add(good)
    assert e.value.reason == "duplicate"


def test_fee_below_the_minimum_is_refused_before_anything_else(state):
    mp = pool(state)
    cheap = make_transfer(KEYS[0], CHAIN, 0, TO, 1, 146)  # 147 bytes: one base unit short
    with pytest.raises(FeeTooLow):
        mp.add(cheap)
    with pytest.raises(FeeTooLow):
        mp.add_or_hold(make_transfer(KEYS[0], CHAIN, 2, TO, 1, 146))  # not held either
    assert len(mp) == 0 and mp.held_count() == 0
    mp.add(make_transfer(KEYS[0], CHAIN, 0, TO, 1, 147))
    steep = pool(state, min_fee_per_byte=2)
    with pytest.raises(FeeTooLow):
        steep.add(make_transfer(KEYS[1], CHAIN, 0, TO, 1, 293))
    steep.add(make_transfer(KEYS[1], CHAIN, 0, TO, 1, 294))


def test_balance_covers_the_whole_queue(state):
    state[KEYS[0].address] = Account(250 * U, 0)
    mp = pool(state)
    mp.add(tx(KEYS[0], 0, fee=10, amount=100))
    mp.add(tx(KEYS[0], 1, fee=10, amount=100))
    with pytest.raises(InsufficientBalance):
        mp.add(tx(KEYS[0], 2, fee=10, amount=100))


def test_running_totals_follow_every_change(state):
    mp = pool(state)
    a = KEYS[0].address
    mp.add(tx(KEYS[0], 0, fee=10, amount=100))
    mp.add(tx(KEYS[0], 1, fee=20, amount=200))
    assert mp.pending_cost(a) == 330 * U and mp.pending_count(a) == 2
    mp.add(tx(KEYS[0], 1, fee=25, amount=5))  # replacement
    assert mp.pending_cost(a) == 140 * U
    state[a] = Account(300 * U, 0)  # the balance check uses the total, not a re-sum
    with pytest.raises(InsufficientBalance, match=r"pending transactions \(140000\)"):
        mp.add(tx(KEYS[0], 2, fee=10, amount=151))
    mp.add(tx(KEYS[0], 2, fee=10, amount=150))
    assert mp.pending_cost(a) == 300 * U
    # A replacement is checked against the total without the transfer it replaces.
    with pytest.raises(InsufficientBalance):
        mp.add(tx(KEYS[0], 0, fee=11, amount=101))
    mp.add(tx(KEYS[0], 0, fee=11, amount=99))
    assert mp.pending_cost(a) == 300 * U
    check_consistent(mp, state)


def test_running_totals_match_a_recount_after_random_traffic(state):
    rng = random.Random(7)
    mp = pool(state, max_count=40, max_per_sender=12)
    for k in KEYS:
        state[k.address] = Account(rng.randrange(2_000, 6_000) * U, 0)
    for _ in range(400):
        k = rng.choice(KEYS)
        nonce = mp.pending_nonce(k.address) - rng.choice([0, 0, 0, 1, 2])
        try:
            mp.add(tx(k, max(nonce, 0), fee=rng.randrange(1, 200), amount=rng.randrange(1, 400)))
        except (MempoolError, BadNonce, InsufficientBalance):
            pass
        check_consistent(mp, state)


async def test_bookkeeping_stays_exact_through_random_blocks_and_reorgs(state):
    rng = random.Random(11)
    mp = pool(state, max_count=30, max_per_sender=8)
    for k in KEYS:
        state[k.address] = Account(rng.randrange(1_000, 4_000) * U, 0)
    blocks = []  # (block, state before it)
    for step in range(300):
        k = rng.choice(KEYS)
        nonce = max(mp.pending_nonce(k.address) - rng.choice([0, 0, 1]), 0)
        to = rng.choice([TO, rng.choice(KEYS).address])
        try:
            mp.add(tx(k, nonce, fee=rng.randrange(1, 100), amount=rng.randrange(1, 300), to=to))
        except (MempoolError, BadNonce, InsufficientBalance):
            pass
        if step % 10 == 9:
            if blocks and rng.random() < 0.3:  # disconnect the tip block
                block, before = blocks.pop()
                state.clear()
                state.update(before)
                coinbase_to = rng.choice(KEYS).address
                await mp.on_tip_change(mined=[], returned=block, touched=[coinbase_to])
            else:
                block = mp.select(rng.randrange(1, 12), 10**9)
                blocks.append((block, dict(state)))
                mine(state, *block)
                await mp.on_tip_change(mined=block, returned=[])
                assert all(compute_tx_id(t) not in mp for t in block)
        check_consistent(mp, state)


def test_replacement_needs_a_higher_fee(state):
    mp = pool(state)
    first = mp.add(tx(KEYS[0], 0, fee=10))
    with pytest.raises(MempoolError) as e:
        mp.add(tx(KEYS[0], 0, fee=10, amount=99))
    assert e.value.reason == "replacement-fee-too-low"
    better = mp.add(tx(KEYS[0], 0, fee=20, amount=99))
    assert first.tx_id not in mp and better.tx_id in mp and len(mp) == 1


def test_a_replacement_that_does_not_fit_leaves_the_old_transfer_and_the_pool_as_they_were(state):
    plain = len(encode_tx(tx(KEYS[0], 0)))
    mp = pool(state, max_bytes=2 * plain)
    old = mp.add(tx(KEYS[0], 0, fee=10))
    other = mp.add(tx(KEYS[1], 0, fee=10_000))  # pays far more per byte: cannot be evicted for it
    before = (mp.entries(), mp.bytes, mp.pending_cost(KEYS[0].address), mp.select(10, 10**9))
    bigger = tx(KEYS[0], 0, fee=11, memo=b"m" * 50)  # a higher fee, but 50 more bytes
    with pytest.raises(MempoolError) as e:
        mp.add(bigger)
    assert e.value.reason == "mempool-full"
    assert old.tx_id in mp and other.tx_id in mp and compute_tx_id(bigger) not in mp
    assert (mp.entries(), mp.bytes, mp.pending_cost(KEYS[0].address), mp.select(10, 10**9)) == before
    check_consistent(mp, state)
    # A replacement the balance cannot cover with the rest of the queue also leaves it.
    mp2 = pool(state)
    state[KEYS[2].address] = Account(500 * U, 0)
    kept = mp2.add(tx(KEYS[2], 0, fee=10, amount=100))
    mp2.add(tx(KEYS[2], 1, fee=10, amount=100))
    with pytest.raises(InsufficientBalance):
        mp2.add(tx(KEYS[2], 0, fee=20, amount=400))  # 420 + 110 > 500
    assert kept.tx_id in mp2 and mp2.pending_cost(KEYS[2].address) == 220 * U and len(mp2) == 2


def test_a_replacement_that_needs_room_evicts_a_cheaper_tail_only_when_it_succeeds(state):
    plain = len(encode_tx(tx(KEYS[0], 0)))
    mp = pool(state, max_bytes=2 * plain)
    mp.add(tx(KEYS[0], 0, fee=100))
    cheap = mp.add(tx(KEYS[1], 0, fee=1))
    better = mp.add(tx(KEYS[0], 0, fee=200, memo=b"m" * 50))
    assert better.tx_id in mp and cheap.tx_id not in mp and len(mp) == 1
    check_consistent(mp, state)


def test_select_orders_by_fee_rate_but_keeps_nonce_order(state):
    mp = pool(state)
    a0 = tx(KEYS[0], 0, fee=1)
    a1 = tx(KEYS[0], 1, fee=1000)
    b0 = tx(KEYS[1], 0, fee=50)
    for t in (a0, a1, b0):
        mp.add(t)
    chosen = mp.select(10, 10**9)
    assert chosen == [b0, a0, a1]
    assert mp.select(1, 10**9) == [b0]


def test_full_pool_evicts_the_cheapest_tail_or_refuses(state):
    mp = pool(state, max_count=2)
    cheap = mp.add(tx(KEYS[0], 0, fee=1))
    mp.add(tx(KEYS[1], 0, fee=100))
    rich = mp.add(tx(KEYS[2], 0, fee=50))
    assert cheap.tx_id not in mp and rich.tx_id in mp and len(mp) == 2
    with pytest.raises(MempoolError) as e:
        mp.add(tx(KEYS[3], 0, fee=2))
    assert e.value.reason == "mempool-full" and "fee rate" in str(e.value)
    assert len(mp) == 2


def test_eviction_takes_tails_in_rate_order_and_never_the_newcomers_own(state):
    mp = pool(state, max_count=4)
    a0 = mp.add(tx(KEYS[0], 0, fee=5))
    a1 = mp.add(tx(KEYS[0], 1, fee=3))  # the cheapest tail
    b0 = mp.add(tx(KEYS[1], 0, fee=4))
    c0 = mp.add(tx(KEYS[2], 0, fee=1))  # cheaper, but its sender is the newcomer's
    c1 = mp.add(tx(KEYS[2], 1, fee=50))
    assert a1.tx_id not in mp and {a0.tx_id, b0.tx_id, c0.tx_id, c1.tx_id} <= set(e.tx_id for e in mp.entries())
    d0 = mp.add(tx(KEYS[3], 0, fee=60))  # the tails are now a0 (5), b0 (4) and c1 (50): b0 goes
    assert b0.tx_id not in mp and d0.tx_id in mp
    check_consistent(mp, state)


def test_each_sender_has_a_limit_of_pending_transfers(state):
    assert MAX_PER_SENDER == 1_000 and pool(state).max_per_sender == MAX_PER_SENDER
    mp = pool(state, max_per_sender=3)
    for n in range(3):
        mp.add(tx(KEYS[0], n))
    with pytest.raises(MempoolError) as e:
        mp.add(tx(KEYS[0], 3))
    assert e.value.reason == "sender-limit" and "3" in str(e.value)
    mp.add(tx(KEYS[0], 2, fee=99))  # a replacement does not add one
    mp.add(tx(KEYS[1], 0))  # other senders are not affected
    assert mp.pending_count(KEYS[0].address) == 3 and len(mp) == 4


async def test_tip_change_drops_mined_and_readmits_disconnected(state):
    mp = pool(state)
    t0, t1 = tx(KEYS[0], 0), tx(KEYS[0], 1)
    mp.add(t0)
    mp.add(t1)
    # t0 gets mined: the sender's nonce moves on.
    mine(state, t0)
    dropped = await mp.on_tip_change(mined=[t0], returned=[])
    assert dropped == [] and len(mp) == 1 and mp.select(10, 10**9) == [t1]
    assert mp.pending_cost(KEYS[0].address) == 110 * U
    # The block is disconnected again: t0 comes back before t1.
    state[KEYS[0].address] = Account(1_000_000 * U, 0)
    state[TO] = Account()
    await mp.on_tip_change(mined=[], returned=[t0])
    assert mp.select(10, 10**9) == [t0, t1] and mp.pending_cost(KEYS[0].address) == 220 * U
    check_consistent(mp, state)


async def test_a_competing_transfer_mined_elsewhere_drops_the_pending_one(state):
    mp = pool(state)
    t0 = tx(KEYS[0], 0)
    t1 = tx(KEYS[0], 1)
    mp.add(t0)
    mp.add(t1)
    rival = tx(KEYS[0], 0, fee=11)
    mine(state, rival)
    dropped = await mp.on_tip_change(mined=[rival], returned=[])
    assert dropped == [t0] and [e.tx for e in mp.entries()] == [t1]
    check_consistent(mp, state)


async def test_the_new_snapshot_replaces_the_old_one(state):
    mp = pool(state)
    t0 = tx(KEYS[0], 0)
    mp.add(t0)
    after = Accounts(state)
    mine(after, t0)
    await mp.on_tip_change(mined=[t0], returned=[], get_account=after.get_account)
    assert len(mp) == 0 and mp.get_account == after.get_account
    assert mp.pending_nonce(KEYS[0].address) == 1


async def test_a_disconnect_that_lowers_a_balance_evicts_exactly_the_unfunded_transfers(state):
    a = KEYS[0].address
    state[a] = Account(1_000 * U, 0)  # 600 of it came from the coinbase of the block that goes away
    mp = pool(state)
    queue = [mp.add(tx(KEYS[0], n, fee=10, amount=100)).tx for n in range(6)]  # 660 in all
    others = [mp.add(tx(KEYS[1], n)).tx for n in range(3)]
    state[a] = Account(400 * U, 0)
    state.reads.clear()
    dropped = await mp.on_tip_change(mined=[], returned=[], touched=[a])
    assert dropped == queue[3:]  # 3 * 110 = 330 fits in 400; the fourth would not
    assert [e.tx for e in sorted(mp.entries(), key=lambda e: (e.sender, e.nonce)) if e.sender == a] == queue[:3]
    assert mp.pending_cost(a) == 330 * U and all(compute_tx_id(t) in mp for t in others)
    assert state.reads == Counter({a: 1})  # KEYS[1] was not revalidated
    check_consistent(mp, state)


async def test_a_disconnected_transfer_lowers_its_recipients_balance(state):
    payer, payee = KEYS[0], KEYS[1]
    gift = tx(payer, 0, amount=900_000, to=payee.address)
    mine(state, gift)  # payee now has 1_900_000
    mp = pool(state)
    spends = [mp.add(tx(payee, n, fee=1, amount=400_000)).tx for n in range(3)]  # 1_200_003
    state[payer.address] = Account(1_000_000 * U, 0)
    state[payee.address] = Account(1_000_000 * U, 0)
    state.reads.clear()
    dropped = await mp.on_tip_change(mined=[], returned=[gift])
    assert dropped == spends[2:]  # 800_002 of the 1_000_000 left stays funded
    assert all(compute_tx_id(t) in mp for t in [gift, *spends[:2]])
    assert set(state.reads) == {payer.address, payee.address}
    check_consistent(mp, state)


async def test_only_the_senders_a_block_touched_are_revalidated(state):
    mp = pool(state)
    pending = {k.address: [mp.add(tx(k, n)).tx for n in range(5)] for k in KEYS}
    block = [pending[KEYS[0].address][0], pending[KEYS[0].address][1], pending[KEYS[3].address][0]]
    mine(state, *block)
    state.reads.clear()
    dropped = await mp.on_tip_change(mined=block, returned=[])
    assert dropped == [] and len(mp) == 5 * len(KEYS) - 3
    assert state.reads == Counter({KEYS[0].address: 1, KEYS[3].address: 1})  # TO holds nothing here
    assert all(compute_tx_id(t) not in mp for t in block)
    check_consistent(mp, state)


async def test_a_reorg_takes_back_transfers_and_drops_the_ones_mined_again(state):
    mp = pool(state)
    t0, t1, t2 = (tx(KEYS[0], n) for n in range(3))
    u0 = tx(KEYS[1], 0)
    mine(state, t0, t1, u0)  # the old branch had t0, t1, u0
    mp.add(t2)
    # The new branch has only t0: t1 and u0 come back, t0 does not.
    state[KEYS[0].address] = Account((1_000_000 - 110) * U, 1)
    state[KEYS[1].address] = Account(1_000_000 * U, 0)
    state[TO] = Account(100 * U, 0)
    dropped = await mp.on_tip_change(mined=[t0], returned=[t1, t0, u0])
    assert dropped == []
    chosen = mp.select(10, 10**9)
    assert sorted(chosen, key=lambda t: (t.body.pubkey, t.body.nonce)) == sorted([t1, t2, u0], key=lambda t: (
        t.body.pubkey, t.body.nonce)) and chosen.index(t1) < chosen.index(t2)
    assert compute_tx_id(t0) not in mp and len(mp) == 3
    check_consistent(mp, state)


async def test_taken_back_transfers_respect_the_limits(state):
    mp = pool(state, max_per_sender=2, max_count=3)
    block = [tx(KEYS[0], n, fee=5) for n in range(3)]
    mine(state, *block)
    mp.add(tx(KEYS[0], 3, fee=5))
    rich = mp.add(tx(KEYS[1], 0, fee=500))
    mp.add(tx(KEYS[1], 1, fee=1))
    state[KEYS[0].address] = Account(1_000_000 * U, 0)
    state[TO] = Account()
    dropped = await mp.on_tip_change(mined=[], returned=block)
    # KEYS[0]: only two of its four fit the per-sender limit; then the cheapest tail makes room.
    assert mp.pending_count(KEYS[0].address) == 2 and len(mp) == 3 and rich.tx_id in mp
    assert len(dropped) == 3
    check_consistent(mp, state)


async def test_the_loop_runs_while_a_tip_change_is_applied(state):
    mp = pool(state, slice_seconds=0.0)  # yield after every sender
    pending = {k.address: [mp.add(tx(k, n)).tx for n in range(3)] for k in KEYS}
    block = [p[0] for p in pending.values()]
    mine(state, *block)
    task = asyncio.ensure_future(mp.on_tip_change(mined=block, returned=[]))
    await asyncio.sleep(0)
    assert 0 < mp.settling() < len(KEYS)  # part done: the loop got control back
    dirty = [k for k in KEYS if k.address in mp._dirty]
    assert all(t.body.pubkey != dirty[0].public_key for t in mp.select(100, 10**9))  # not offered unsettled
    late = mp.add(tx(dirty[0], 3))  # an admission settles its sender first
    assert mp.pending_nonce(dirty[-1].address) == 3
    assert await task == [] and mp.settling() == 0
    assert late.tx_id in mp and len(mp) == 2 * len(KEYS) + 1 and len(mp.select(100, 10**9)) == len(mp)
    check_consistent(mp, state)


def test_out_of_order_gossip_is_held_until_the_gap_closes(state):
    mp = pool(state)
    t0, t1, t2 = tx(KEYS[0], 0), tx(KEYS[0], 1), tx(KEYS[0], 2)
    assert mp.add_or_hold(t2) == [] and mp.add_or_hold(t1) == [] and len(mp) == 0 and mp.held_count() == 2
    admitted = mp.add_or_hold(t0)
    assert [e.tx for e in admitted] == [t0, t1, t2] and mp.held_count() == 0
    assert mp.select(10, 10**9) == [t0, t1, t2]
    with pytest.raises(BadNonce):  # too far ahead to hold
        mp.add_or_hold(tx(KEYS[1], 500))
    forged = Tx(tx(KEYS[1], 1).body, bytes(64))
    with pytest.raises(BadSignature):  # held transfers are checked first
        mp.add_or_hold(forged)


async def test_held_transfers_are_admitted_when_a_block_closes_the_gap(state):
    mp = pool(state)
    t0, t1 = tx(KEYS[0], 0), tx(KEYS[0], 1)
    mp.add_or_hold(t1)
    mine(state, t0)  # t0 was mined elsewhere
    await mp.on_tip_change(mined=[t0], returned=[])
    assert mp.select(10, 10**9) == [t1] and mp.held_count() == 0
