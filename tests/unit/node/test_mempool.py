"""Mempool: nonce order, fee priority, replacement, limits with eviction, revalidation after a tip change."""

import pytest

from consensus.errors import BadNonce, BadSignature, InsufficientBalance, WrongChainId
from consensus.keys import devnet_keypairs
from consensus.tx import make_transfer
from consensus.types import Account, Tx
from node.mempool import Mempool, MempoolError

CHAIN = 1337
KEYS = devnet_keypairs(4)
TO = b"\x42" * 20


class Accounts(dict):
    def get_account(self, address):
        return self.get(address, Account())


@pytest.fixture
def state():
    return Accounts({k.address: Account(1_000_000, 0) for k in KEYS})


def pool(state, **kw):
    return Mempool(CHAIN, 256, state.get_account, **kw)


def tx(key, nonce, fee=10, amount=100, chain=CHAIN, memo=b""):
    return make_transfer(key, chain, nonce, TO, amount, fee, memo)


def test_accepts_contiguous_nonces_and_rejects_gaps(state):
    mp = pool(state)
    mp.add(tx(KEYS[0], 0))
    mp.add(tx(KEYS[0], 1))
    with pytest.raises(BadNonce, match="gap"):
        mp.add(tx(KEYS[0], 3))
    assert mp.pending_nonce(KEYS[0].address) == 2
    state[KEYS[1].address] = Account(1_000_000, 5)
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


def test_balance_covers_the_whole_queue(state):
    state[KEYS[0].address] = Account(250, 0)
    mp = pool(state)
    mp.add(tx(KEYS[0], 0, fee=10, amount=100))
    mp.add(tx(KEYS[0], 1, fee=10, amount=100))
    with pytest.raises(InsufficientBalance):
        mp.add(tx(KEYS[0], 2, fee=10, amount=100))


def test_replacement_needs_a_higher_fee(state):
    mp = pool(state)
    first = mp.add(tx(KEYS[0], 0, fee=10))
    with pytest.raises(MempoolError) as e:
        mp.add(tx(KEYS[0], 0, fee=10, amount=99))
    assert e.value.reason == "replacement-fee-too-low"
    better = mp.add(tx(KEYS[0], 0, fee=20, amount=99))
    assert first.tx_id not in mp and better.tx_id in mp and len(mp) == 1


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
    assert e.value.reason == "mempool-full"
    assert len(mp) == 2


def test_tip_change_drops_mined_and_readmits_disconnected(state):
    mp = pool(state)
    t0, t1 = tx(KEYS[0], 0), tx(KEYS[0], 1)
    mp.add(t0)
    mp.add(t1)
    # t0 gets mined: the sender's nonce moves on.
    state[KEYS[0].address] = Account(1_000_000 - 110, 1)
    dropped = mp.on_tip_change(mined=[t0], returned=[])
    assert dropped == [] and len(mp) == 1 and mp.select(10, 10**9) == [t1]
    # The block is disconnected again: t0 comes back before t1.
    state[KEYS[0].address] = Account(1_000_000, 0)
    mp.on_tip_change(mined=[], returned=[t0])
    assert mp.select(10, 10**9) == [t0, t1]


def test_revalidation_drops_transfers_made_invalid(state):
    mp = pool(state)
    t0 = tx(KEYS[0], 0)
    mp.add(t0)
    # A competing transfer with the same nonce got mined elsewhere.
    state[KEYS[0].address] = Account(1_000_000, 1)
    dropped = mp.on_tip_change(mined=[], returned=[])
    assert dropped == [t0] and len(mp) == 0 and mp.bytes == 0


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


def test_held_transfers_are_admitted_when_a_block_closes_the_gap(state):
    mp = pool(state)
    t0, t1 = tx(KEYS[0], 0), tx(KEYS[0], 1)
    mp.add_or_hold(t1)
    state[KEYS[0].address] = Account(1_000_000 - 110, 1)  # t0 was mined elsewhere
    mp.on_tip_change(mined=[t0], returned=[])
    assert mp.select(10, 10**9) == [t1] and mp.held_count() == 0
