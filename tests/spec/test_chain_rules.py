"""One test per chain rule of docs/protocol.md sections 4, 8 and 10, named after the rule.

Blocks are really mined (NumPy backend, ``m = n = 16``, ``k = 256``, a target
whose win threshold saturates, so every nonce wins). A faulty block is mined
from a deliberately faulty template, so the fault under test is the only one.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus import errors
from consensus.assemble import BlockTemplate
from consensus.codec import encode_block
from consensus.genesis import make_genesis_block
from consensus.keys import devnet_keypairs
from consensus.networks import COIN
from consensus.tx import compute_tx_id, compute_tx_root, make_transfer
from consensus.types import Block, Coinbase, Header
from consensus.validation import compute_expected_target, make_parent_info, validate_block
from node.chain import ChainService
from node.errors import BlockStateInvalid
from tests.support.blockgen import BlockMaker, ChainBuilder, easy_params
from tests.support.memstore import MemoryStore

P = easy_params()
KEYS = devnet_keypairs(4)
MINER = KEYS[3].address
MAKER = BlockMaker(P)
GENESIS = make_genesis_block(P)
G_INFO = make_parent_info(GENESIS.header)
T0 = P.genesis_time
NOW = T0 + 10**6


def template(parent=G_INFO, time=None, transfers=(), params=P, **pre_changes) -> BlockTemplate:
    t = MAKER.template(parent, time if time is not None else parent.time + 10, MINER, transfers)
    if params is not P:
        t = BlockTemplate(replace(t.pre, target=compute_expected_target(parent, params)), t.transactions)
    return BlockTemplate(replace(t.pre, **pre_changes), t.transactions)


def with_transactions(t: BlockTemplate, transactions) -> BlockTemplate:
    """Replace the transactions and recompute the root, so only the transactions are at fault."""
    root = compute_tx_root([compute_tx_id(x) for x in transactions])
    return BlockTemplate(replace(t.pre, tx_root=root), tuple(transactions))


def mine(t: BlockTemplate) -> Block:
    return MAKER.mine_template(t)


def check(block, parent=G_INFO, params=P, now=NOW):
    validate_block(block, parent, params, now)


FEE = 500
"""Above the minimum fee (1 base unit per byte) of any transfer these tests build."""


def tx(key=0, nonce=0, to=1, amount=10, fee=FEE, memo=b"", chain_id=None):
    return make_transfer(KEYS[key], P.chain_id if chain_id is None else chain_id, nonce, KEYS[to].address,
                         amount, fee, memo)


def test_valid_block_passes():
    check(mine(template(transfers=[tx()])))


# --- section 4 / 10: header ------------------------------------------------------------------


def test_rule_header_version():
    with pytest.raises(errors.BadHeaderVersion):
        check(mine(template(version=2)))


def test_rule_linkage_height_is_parent_plus_one():
    with pytest.raises(errors.BadHeight):
        check(mine(template(height=2)))


def test_rule_linkage_prev_id_is_parent_id():
    with pytest.raises(errors.BadLinkage):
        check(mine(template(prev_id=bytes(32))))


def test_rule_time_above_median_of_previous_11():
    builder = ChainBuilder(P, maker=MAKER)
    times = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11, 12]  # offsets from genesis for heights 1..12
    parent = builder.genesis_id
    for t in times:
        parent = builder.child(parent, time=T0 + 100 + t).header.block_id
    info = builder.infos[parent]
    median = sorted(info.recent_times)[5]
    assert len(info.recent_times) == 11 and median == T0 + 100 + 7
    with pytest.raises(errors.TimeTooOld):
        check(mine(template(info, time=median)), parent=info)
    check(mine(template(info, time=median + 1)), parent=info)


def test_rule_time_at_most_max_future_ahead_is_transient():
    block = mine(template(time=T0 + 100))
    check(block, now=T0 + 100 - P.max_future)
    with pytest.raises(errors.TimeTooNew) as info:
        check(block, now=T0 + 100 - P.max_future - 1)
    assert isinstance(info.value, errors.Transient) and not isinstance(info.value, errors.PeerFault)


def test_rule_target_is_asert_from_parent():
    """A parent one half-life behind schedule doubles the target of every child, whatever the child's time."""
    params = easy_params(retarget=True)
    g_info = make_parent_info(make_genesis_block(params).header)
    assert compute_expected_target(g_info, params) == params.initial_target
    late = g_info.time + params.block_spacing + params.halflife
    first = mine(template(g_info, time=late, params=params))
    assert first.header.pre.target == params.initial_target
    check(first, parent=g_info, params=params)
    info = make_parent_info(first.header, g_info)
    expected = compute_expected_target(info, params)
    assert expected == 2 * params.initial_target
    for child_time in (late + 1, late + 10_000):
        good = mine(template(info, time=child_time, params=params))
        assert good.header.pre.target == expected
        check(good, parent=info, params=params)
    with pytest.raises(errors.BadTarget):
        check(mine(template(info, time=late + 1, params=params, target=info.target)), parent=info, params=params)


def test_rule_target_fixed_on_no_retarget_network():
    assert P.no_retarget
    with pytest.raises(errors.BadTarget):
        check(mine(template(target=P.initial_target - 1)))


# --- section 8: certificate ------------------------------------------------------------------


def test_rule_certificate_required():
    block = mine(template())
    with pytest.raises(errors.BadCertificate):
        check(replace(block, certificate=None))


def test_rule_certificate_verified_merkle():
    block = mine(template())
    cert = block.certificate
    tampered = replace(cert, a_blk=bytes([cert.a_blk[0] ^ 1]) + cert.a_blk[1:])
    with pytest.raises(errors.BadCertificate) as info:
        check(replace(block, certificate=tampered))
    assert info.value.pouw_rule == "merkle-a"


def test_rule_certificate_verified_against_expected_target():
    """A ticket that wins at an easy target does not win at the chain's hard one."""
    hard = replace(P, initial_target=1 << 180)
    info = make_parent_info(make_genesis_block(hard).header)
    easy_block = mine(template(info))
    pre = replace(easy_block.header.pre, target=hard.initial_target)
    block = replace(easy_block, header=replace(easy_block.header, pre=pre))
    with pytest.raises(errors.BadCertificate) as exc:
        check(block, parent=info, params=hard)
    assert exc.value.pouw_rule == "ticket"


# --- section 10: coinbase, transactions, limits ----------------------------------------------


def test_rule_coinbase_amount_at_most_subsidy_plus_fees():
    transfers = [tx(fee=700), tx(key=1, to=0, fee=500)]
    base = template(transfers=transfers)
    limit = P.subsidy(1) + 1200
    exact = with_transactions(base, (Coinbase(1, 1, MINER, limit), *transfers))
    check(mine(exact))
    over = with_transactions(base, (Coinbase(1, 1, MINER, limit + 1), *transfers))
    with pytest.raises(errors.BadCoinbase, match="subsidy"):
        check(mine(over))


def test_rule_coinbase_may_pay_less():
    check(mine(with_transactions(template(), (Coinbase(1, 1, MINER, 0),))))


def test_rule_coinbase_height_matches_block():
    with pytest.raises(errors.BadCoinbase, match="height"):
        check(mine(with_transactions(template(), (Coinbase(1, 2, MINER, 1),))))


def test_rule_coinbase_version():
    with pytest.raises(errors.BadCoinbase, match="version"):
        check(mine(with_transactions(template(), (Coinbase(2, 1, MINER, 1),))))


def test_rule_coinbase_only_first():
    cb = Coinbase(1, 1, MINER, 1)
    with pytest.raises(errors.BadCoinbase):
        check(mine(with_transactions(template(), (cb, replace(cb, to=KEYS[0].address)))))


def test_rule_tx_root():
    with pytest.raises(errors.BadTxRoot):
        check(mine(template(transfers=[tx()], tx_root=bytes(32))))


def test_rule_tx_root_orders_coinbase_first():
    t = template(transfers=[tx()])
    ids = [compute_tx_id(x) for x in t.transactions]
    assert t.pre.tx_root == compute_tx_root(ids) != compute_tx_root(ids[::-1])


def test_rule_no_duplicate_transactions():
    t = tx()
    with pytest.raises(errors.DuplicateTx):
        check(mine(template(transfers=[t, t])))


def test_rule_block_size_limit():
    small = replace(P, max_block_size=len(encode_block(mine(template(transfers=[tx()])))) - 1)
    block = mine(template(transfers=[tx()]))
    with pytest.raises(errors.BlockTooLarge):
        check(block, params=small)


def test_rule_tx_count_limit():
    limited = replace(P, max_tx_count=2)
    with pytest.raises(errors.TooManyTxs):
        check(mine(template(transfers=[tx(), tx(nonce=1)])), params=limited)


@pytest.mark.parametrize("bad,cause", [
    (lambda: tx(chain_id=1), errors.WrongChainId),
    (lambda: tx(memo=bytes(257)), errors.MemoTooLong),
    (lambda: tx(amount=(1 << 64) - FEE, fee=FEE), errors.AmountOverflow),
    (lambda: tx(fee=146), errors.FeeTooLow),
    (lambda: replace(tx(), signature=bytes(64)), errors.BadSignature),
])
def test_rule_transfer_stateless_checks(bad, cause):
    with pytest.raises(errors.BlockTxInvalid) as info:
        check(mine(template(transfers=[tx(key=1), bad()])))
    assert isinstance(info.value.cause, cause) and info.value.index == 2


def test_rule_subsidy_halves_every_interval():
    p = replace(P, halving_interval=2)
    assert [p.subsidy(h) for h in range(1, 7)] == [50 * COIN, 25 * COIN, 25 * COIN, 12.5 * COIN, 12.5 * COIN,
                                                     6.25 * COIN]


# --- section 10: state, via the chain service ------------------------------------------------


def fresh_chain():
    return ChainService(MemoryStore(), P, clock=lambda: NOW)


def tx_fault(error: BaseException):
    """The transfer's own error inside what the chain service raised (``BlockTxInvalid``, maybe wrapped)."""
    e: BaseException | None = error
    while e is not None and not isinstance(e, errors.BlockTxInvalid):
        e = e.__cause__
    assert e is not None, f"no BlockTxInvalid behind {error!r}"
    return e.cause


STATE_FAULTS = (errors.BlockTxInvalid, BlockStateInvalid)
"""What submitting a block with a nonce or balance fault raises (the chain may wrap the consensus error)."""


def test_rule_transfer_nonce_is_senders_next():
    chain = fresh_chain()
    with pytest.raises(STATE_FAULTS) as info:
        chain.submit_block(mine(template(transfers=[tx(nonce=1)])))
    assert isinstance(tx_fault(info.value), errors.BadNonce)
    chain.submit_block(mine(template(transfers=[tx(nonce=0)])))
    assert chain.get_account(KEYS[0].address).nonce == 1


def test_rule_transfer_balance_covers_amount_plus_fee():
    chain = fresh_chain()
    balance = chain.get_account(KEYS[0].address).balance
    with pytest.raises(STATE_FAULTS) as info:
        chain.submit_block(mine(template(transfers=[tx(amount=balance - FEE + 1)])))
    assert isinstance(tx_fault(info.value), errors.InsufficientBalance)
    chain.submit_block(mine(template(transfers=[tx(amount=balance - FEE)])))
    assert chain.get_account(KEYS[0].address).balance == 0


def test_rule_genesis_is_fixed_by_preset():
    chain = fresh_chain()
    assert chain.genesis_id == GENESIS.header.block_id
    other = make_genesis_block(replace(P, genesis_time=T0 + 1))
    with pytest.raises(errors.BadLinkage):
        chain.submit_block(other)


def test_rule_fork_choice_most_work_ties_keep_first_seen():
    chain = fresh_chain()
    builder = ChainBuilder(P, maker=MAKER)
    a1 = builder.child(builder.genesis_id, coinbase_to=KEYS[0].address)
    b1 = builder.child(builder.genesis_id, coinbase_to=KEYS[1].address)
    assert chain.submit_block(a1).status == "connected"
    assert chain.submit_block(b1).status == "side-branch"  # equal work: first seen stays
    assert chain.tip_id == a1.header.block_id
    b2 = builder.child(b1.header.block_id)
    result = chain.submit_block(b2)
    assert result.status == "connected" and chain.tip_id == b2.header.block_id
    assert result.tip_change.disconnected == (a1.header.block_id,)


def test_rule_invalid_block_changes_nothing():
    store = MemoryStore()
    chain = ChainService(store, P, clock=lambda: NOW)
    before, writes = store.snapshot(), store.writes
    for bad in [mine(template(transfers=[tx(nonce=3)])), mine(template(tx_root=bytes(32))),
                mine(template(height=5))]:
        with pytest.raises((errors.InvalidBlock, BlockStateInvalid)):
            chain.submit_block(bad)
    assert store.snapshot() == before and store.writes == writes
    assert chain.height == 0


def test_error_hierarchy_separates_peer_faults_from_transient():
    assert issubclass(errors.InvalidBlock, errors.PeerFault)
    assert issubclass(errors.InvalidTx, errors.PeerFault)
    assert issubclass(errors.DecodeError, errors.PeerFault)
    assert issubclass(errors.TimeTooNew, errors.Transient)
    assert issubclass(errors.UnknownParent, errors.Transient)
    assert not issubclass(errors.Transient, errors.PeerFault)


def test_genesis_header_is_not_a_mined_header():
    assert GENESIS.certificate is None
    assert isinstance(GENESIS.header, Header) and GENESIS.header.pre.prev_id == bytes(32)
