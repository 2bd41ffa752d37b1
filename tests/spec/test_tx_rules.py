"""Transaction rules of revision 2 (PROTOCOL.md section 10): minimum fee, kind byte, exact amounts.

- ``fee >= min_fee_per_byte * len(Tx)``, ``len(Tx)`` = TxBody plus the 64-byte
  signature (no block length prefix). So every sender must hold funds, and an
  unfunded key cannot create state: the attack of 200 free 0-amount transfers
  that created 410 permanent account records is refused.
- The first byte is the kind: 1 a transfer; 2 to 8 the job transactions of
  section 11 (their own layouts, ``tests/spec/test_job_market.py``); any other
  byte ``BadTxKind``.
- Sums of amounts are exact: a total above ``2^64 - 1`` makes the transaction or
  block invalid, never wraps.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus import errors
from consensus.codec import TX_MIN_SIZE, decode_tx, encode_tx
from consensus.genesis import make_genesis_block
from consensus.keys import devnet_keypairs, keypair_from_private
from consensus.networks import NETWORKS
from consensus.state import apply_block
from consensus.tx import U64_MAX, compute_min_fee, compute_tx_id, compute_tx_root, make_transfer, sign_tx, validate_tx
from consensus.types import JOB_TX_KINDS, Account, Block, Coinbase
from consensus.validation import make_parent_info, validate_block
from node.chain import ChainService
from node.errors import BlockStateInvalid
from tests.support.blockgen import BlockMaker, easy_params
from tests.support.memstore import MemoryStore

P = easy_params()
KEYS = devnet_keypairs(3)
MINER = KEYS[2].address
MAKER = BlockMaker(P)
GENESIS = make_genesis_block(P)
G_INFO = make_parent_info(GENESIS.header)
NOW = P.genesis_time + 10**6
MIN_FEE = P.min_fee_per_byte * TX_MIN_SIZE  # an empty memo


def transfer(key=None, nonce=0, to=None, amount=10, fee=MIN_FEE, memo=b"", kind=None):
    key = key or KEYS[0]
    tx = make_transfer(key, P.chain_id, nonce, to if to is not None else KEYS[1].address, amount, fee, memo)
    return tx if kind is None else sign_tx(replace(tx.body, kind=kind), key)


def stateless(tx, params=P):
    validate_tx(tx, params)


def block_of(transactions, parent=G_INFO):
    """A synthetic block (zero certificate) holding exactly ``transactions``, coinbase first."""
    base = MAKER.synthetic(parent, parent.time + 10, MINER)
    pre = replace(base.header.pre, tx_root=compute_tx_root([compute_tx_id(t) for t in transactions]))
    return Block(replace(base.header, pre=pre), base.certificate, tuple(transactions))


def check(block, params=P):
    validate_block(block, G_INFO, params, NOW, check_certificate=False)


class View:
    def __init__(self, accounts=()):
        self.accounts = dict(accounts)

    def get_account(self, address):
        return self.accounts.get(address)


# --- minimum fee -------------------------------------------------------------------------------


@pytest.mark.parametrize("memo", [b"", b"x", bytes(256)])
def test_fee_at_the_minimum_passes_one_below_fails(memo):
    size = TX_MIN_SIZE + len(memo)
    at = transfer(fee=size, memo=memo)
    assert len(encode_tx(at)) == size and compute_min_fee(at, 1) == size
    stateless(at)
    with pytest.raises(errors.FeeTooLow) as info:
        stateless(transfer(fee=size - 1, memo=memo))
    assert info.value.rule == "tx-fee"


def test_minimum_scales_with_min_fee_per_byte():
    steep = replace(P, min_fee_per_byte=3)
    stateless(transfer(fee=3 * TX_MIN_SIZE), steep)
    with pytest.raises(errors.FeeTooLow):
        stateless(transfer(fee=3 * TX_MIN_SIZE - 1), steep)


def test_the_block_length_prefix_is_not_counted():
    tx = transfer(fee=TX_MIN_SIZE)
    block = block_of((Coinbase(1, 1, MINER, 0), tx))
    check(block)  # the u32 prefix before the transfer in the block does not raise its minimum


def test_every_preset_has_a_minimum_of_at_least_one_per_byte():
    assert all(p.min_fee_per_byte >= 1 for p in NETWORKS.values())


def test_wallet_default_fee_covers_a_full_memo_transfer():
    """``pouw-wallet send`` pays 0.00001 coin by default: enough for the largest transfer (403 bytes)."""
    from wallet.amounts import parse_amount
    from wallet.cli import build_parser

    args = build_parser().parse_args(["send", "pdev1qqqq", "1"])
    fee = parse_amount(args.fee, allow_zero=True, what="fee")
    assert fee == 1000
    for params in NETWORKS.values():
        tx = make_transfer(KEYS[0], params.chain_id, 0, KEYS[1].address, 1, fee, bytes(params.max_memo))
        assert len(encode_tx(tx)) == 403
        validate_tx(tx, params)


# --- the unfunded-key attack ---------------------------------------------------------------------


def unfunded_key(i):
    return keypair_from_private(bytes([0xA5, i % 256, i // 256]) + bytes(29))


def test_zero_fee_transfer_from_an_unfunded_key_is_invalid_stateless_and_in_a_block():
    key = unfunded_key(0)
    free = transfer(key, amount=0, fee=0)
    with pytest.raises(errors.FeeTooLow):
        stateless(free)
    with pytest.raises(errors.BlockTxInvalid) as info:
        check(block_of((Coinbase(1, 1, MINER, 0), free)))
    assert isinstance(info.value.cause, errors.FeeTooLow) and info.value.index == 1


def test_unfunded_key_cannot_pay_the_minimum_so_creates_no_state():
    """At the state level: with the minimum fee the transfer passes the stateless checks, then fails on balance."""
    key = unfunded_key(1)
    paying = transfer(key, amount=0, fee=MIN_FEE)
    stateless(paying)
    view = View({KEYS[0].address: Account(10**9, 0)})
    with pytest.raises(errors.BlockTxInvalid) as info:
        apply_block(view, block_of((Coinbase(1, 1, MINER, 0), paying)))
    assert isinstance(info.value.cause, errors.InsufficientBalance)
    assert set(view.accounts) == {KEYS[0].address}


@pytest.mark.parametrize("fee", [0, MIN_FEE], ids=["free", "minimum-fee"])
def test_two_hundred_transfers_from_unfunded_keys_create_no_account_record(fee):
    """The attack: 200 unfunded keys each send 0 coins to a fresh address, in one block.

    For free the block is refused by the fee rule; paying the minimum they fail on
    balance. Either way the store is untouched: no sender or recipient record.
    """
    store = MemoryStore()
    chain = ChainService(store, P, clock=lambda: NOW)
    before, writes = store.snapshot(), store.writes
    senders = [unfunded_key(i) for i in range(200)]
    txs = [transfer(k, amount=0, fee=fee, to=bytes([0xEE, i]) + bytes(18)) for i, k in enumerate(senders)]
    block = MAKER.mine_template(MAKER.template(G_INFO, G_INFO.time + 10, MINER, txs))
    with pytest.raises((errors.BlockTxInvalid, BlockStateInvalid)) as info:  # the chain may wrap a state fault
        chain.submit_block(block)
    cause = info.value
    while not isinstance(cause, errors.BlockTxInvalid):
        cause = cause.__cause__
    assert isinstance(cause.cause, errors.FeeTooLow if fee == 0 else errors.InsufficientBalance)
    assert chain.height == 0
    assert store.snapshot() == before and store.writes == writes
    assert all(chain.get_account(k.address) == Account() for k in senders)


# --- kind ----------------------------------------------------------------------------------------


def test_kind_1_is_a_transfer():
    tx = transfer()
    assert tx.body.kind == 1 and encode_tx(tx)[0] == 1
    stateless(tx)


@pytest.mark.parametrize("kind", range(2, 9))
def test_a_transfer_layout_with_a_job_kind_is_invalid(kind):
    """Kinds 2 to 8 have their own layouts: transfer bytes with such a kind decode as nothing valid."""
    tx = transfer(kind=kind)
    with pytest.raises(errors.BadTxKind, match=f"a transfer cannot carry kind {kind}"):
        stateless(tx)
    with pytest.raises(errors.DecodeError):
        decode_tx(encode_tx(tx))
    with pytest.raises(errors.BlockTxInvalid) as block_info:
        check(block_of((Coinbase(1, 1, MINER, 0), tx)))
    assert isinstance(block_info.value.cause, errors.BadTxKind)


def test_job_kind_names_follow_the_spec():
    assert JOB_TX_KINDS == ("offer", "claim", "accept", "reject", "settle", "refund", "fraud")


@pytest.mark.parametrize("kind", [0, 9, 10, 127, 255])
def test_any_other_kind_is_invalid(kind):
    tx = transfer(kind=kind)
    with pytest.raises(errors.BadTxKind, match="kind"):
        stateless(tx)
    with pytest.raises(errors.BadTxKind):
        decode_tx(encode_tx(tx))


def test_the_kind_is_read_before_the_length():
    """A job transaction's bytes need not fit the transfer layout: the kind decides first."""
    with pytest.raises(errors.DecodeError, match="a job transaction needs at least 149 bytes"):
        decode_tx(bytes([3]) + bytes(40))
    with pytest.raises(errors.BadTxKind):
        decode_tx(bytes([9]))


# --- exact amounts -------------------------------------------------------------------------------


def test_amount_plus_fee_above_u64_is_invalid():
    with pytest.raises(errors.AmountOverflow):
        stateless(transfer(amount=U64_MAX - MIN_FEE + 1))
    stateless(transfer(amount=U64_MAX - MIN_FEE))


def test_block_fee_sum_above_u64_is_invalid():
    half = 1 << 63
    big = [transfer(KEYS[0], amount=0, fee=half), transfer(KEYS[1], amount=0, fee=half)]
    with pytest.raises(errors.BlockAmountOverflow, match="fees"):
        check(block_of((Coinbase(1, 1, MINER, 0), *big)))


def test_subsidy_plus_fees_above_u64_is_invalid():
    subsidy = P.subsidy(1)
    fees = U64_MAX - subsidy + 1
    over = [transfer(KEYS[0], amount=0, fee=fees // 2), transfer(KEYS[1], amount=0, fee=fees - fees // 2)]
    with pytest.raises(errors.BlockAmountOverflow, match="subsidy"):
        check(block_of((Coinbase(1, 1, MINER, 0), *over)))
    fit = [transfer(KEYS[0], amount=0, fee=fees // 2), transfer(KEYS[1], amount=0, fee=fees - fees // 2 - 1)]
    check(block_of((Coinbase(1, 1, MINER, U64_MAX), *fit)))


def test_recipient_credit_above_u64_is_invalid():
    view = View({KEYS[0].address: Account(10**6, 0), KEYS[1].address: Account(U64_MAX - 9, 0)})
    with pytest.raises(errors.BlockTxInvalid) as info:
        apply_block(view, block_of((Coinbase(1, 1, MINER, 0), transfer(amount=10))))
    assert isinstance(info.value.cause, errors.AmountOverflow)
    apply_block(view, block_of((Coinbase(1, 1, MINER, 0), transfer(amount=9))))


def test_coinbase_credit_above_u64_is_invalid():
    view = View({MINER: Account(U64_MAX - 4, 0)})
    with pytest.raises(errors.BlockTxInvalid) as info:
        apply_block(view, block_of((Coinbase(1, 1, MINER, 5),)))
    assert isinstance(info.value.cause, errors.AmountOverflow) and info.value.index == 0
    apply_block(view, block_of((Coinbase(1, 1, MINER, 4),)))
