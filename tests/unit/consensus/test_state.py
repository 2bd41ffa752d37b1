"""State transition with undo data: apply, then undo, restores the state exactly."""

from __future__ import annotations

import pytest

from consensus.errors import AmountOverflow, BadNonce, BlockTxInvalid, InsufficientBalance
from consensus.keys import devnet_keypairs
from consensus.state import apply_block, check_transfer
from consensus.tx import make_transfer
from consensus.types import Account, Block, Coinbase, Header, HeaderPre

KEYS = devnet_keypairs(3)
A, B, C = (k.address for k in KEYS)
CHAIN = 1337
# Fees here are at least the minimum (1 base unit per byte, 147 bytes for an empty memo), as a valid block's are.


class View:
    def __init__(self, accounts):
        self.accounts = dict(accounts)

    def get_account(self, address):
        return self.accounts.get(address)

    def apply(self, pairs):
        for address, account in pairs:
            if account is None:
                self.accounts.pop(address, None)
            else:
                self.accounts[address] = account


def block(*transfers, miner=C, amount=50, height=1):
    pre = HeaderPre(1, height, bytes(32), bytes(32), 0, 1, 0, 16, 16, 256)
    return Block(Header(pre, bytes(32), bytes(32), 0, 0), None, (Coinbase(1, height, miner, amount), *transfers))


def test_transfers_then_coinbase_and_undo_restores():
    view = View({A: Account(10_000, 0)})
    before = dict(view.accounts)
    t1 = make_transfer(KEYS[0], CHAIN, 0, B, 100, 300)
    t2 = make_transfer(KEYS[0], CHAIN, 1, B, 200, 400)
    change = apply_block(view, block(t1, t2, amount=757))
    after = dict(change.accounts)
    assert after == {A: Account(9_000, 2), B: Account(300, 0), C: Account(757, 0)}
    assert dict(change.undo.entries) == {A: Account(10_000, 0), B: None, C: None}
    view.apply(change.accounts)
    view.apply(change.undo.entries)
    assert view.accounts == before


def test_transfer_to_self_costs_only_the_fee():
    view = View({A: Account(1000, 0)})
    change = apply_block(view, block(make_transfer(KEYS[0], CHAIN, 0, A, 400, 500), miner=C, amount=0))
    assert dict(change.accounts)[A] == Account(500, 1)


def test_later_transfer_sees_earlier_one():
    view = View({A: Account(1000, 0)})
    t1 = make_transfer(KEYS[0], CHAIN, 0, B, 600, 200)
    t2 = make_transfer(KEYS[1], CHAIN, 0, C, 400, 200)  # B can spend what A just sent
    change = apply_block(view, block(t1, t2, amount=0))
    assert dict(change.accounts)[C] == Account(400, 0)


def test_coinbase_is_not_spendable_in_its_own_block():
    view = View({})
    spend = make_transfer(KEYS[2], CHAIN, 0, A, 10, 200)
    with pytest.raises(BlockTxInvalid) as info:
        apply_block(view, block(spend, miner=C, amount=50))
    assert isinstance(info.value.cause, InsufficientBalance) and info.value.index == 1


def test_wrong_nonce_names_expected_and_found():
    with pytest.raises(BadNonce) as info:
        check_transfer(make_transfer(KEYS[0], CHAIN, 5, B, 1, 200), Account(1000, 2))
    assert (info.value.expected, info.value.found) == (2, 5)


def test_recipient_overflow_is_refused():
    view = View({A: Account(1000, 0), B: Account((1 << 64) - 5, 0)})
    with pytest.raises(BlockTxInvalid) as info:
        apply_block(view, block(make_transfer(KEYS[0], CHAIN, 0, B, 10, 200), amount=0))
    assert isinstance(info.value.cause, AmountOverflow)


def test_undo_lists_every_touched_address_sorted():
    view = View({A: Account(1000, 0), B: Account(1, 1)})
    change = apply_block(view, block(make_transfer(KEYS[0], CHAIN, 0, B, 1, 200), amount=1))
    addresses = [a for a, _ in change.undo.entries]
    assert addresses == sorted(addresses) == sorted({A, B, C})
