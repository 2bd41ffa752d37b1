"""The chain service on the in-memory store: connect, side branches, reorgs, orphans, restart, recovery."""

from __future__ import annotations

import pytest

from consensus import errors
from consensus.keys import devnet_keypairs
from consensus.tx import make_transfer
from consensus.types import Account, Tx
from node import schema
from node.chain import ChainService
from node.errors import BlockStateInvalid
from node.store import WriteBatch
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.memstore import MemoryStore

P = easy_params()
KEYS = devnet_keypairs(6)
ADDR = [k.address for k in KEYS]
NOW = P.genesis_time + 10**6


def new_chain(store=None, **kwargs):
    return ChainService(store if store is not None else MemoryStore(), P, clock=lambda: NOW, **kwargs)


def pay(sender, nonce, to, amount, fee=200):
    return make_transfer(KEYS[sender], P.chain_id, nonce, ADDR[to], amount, fee)


def model_state(blocks):
    """Accounts after genesis and ``blocks``, computed by hand (independent of consensus.state)."""
    accounts = {a.address: [a.amount, 0] for a in P.allocations}
    for block in blocks:
        for tx in block.transactions[1:]:
            sender = next(k.address for k in KEYS if k.public_key == tx.body.pubkey)
            accounts[sender][0] -= tx.body.amount + tx.body.fee
            accounts[sender][1] += 1
            accounts.setdefault(tx.body.to, [0, 0])[0] += tx.body.amount
        cb = block.transactions[0]
        accounts.setdefault(cb.to, [0, 0])[0] += cb.amount
    return {a: Account(b, n) for a, (b, n) in accounts.items()}


def stored_accounts(store):
    return {k[1:]: schema.decode_account(v) for k, v in store.iterate(schema.ACCOUNT)}


def assert_state(chain, store, blocks):
    assert stored_accounts(store) == model_state(blocks)
    assert chain.tip_id == (blocks[-1].header.block_id if blocks else chain.genesis_id)
    report = chain.verify_chain()
    assert report.ok, report.problems


@pytest.fixture(scope="module")
def branches():
    """Branch A (3 blocks, key0 pays key1) and branch B (4 blocks, key0 pays key2, key1 pays key3), from genesis."""
    builder = ChainBuilder(P, coinbase_to=ADDR[5])
    g = builder.genesis_id
    a = []
    parent = g
    for i in range(3):
        a.append(builder.child(parent, [pay(0, i, 1, 1000 + i)], coinbase_to=ADDR[4]))
        parent = a[-1].header.block_id
    b = []
    parent = g
    for i in range(4):
        txs = [pay(0, i, 2, 500 + i, fee=300)] + ([pay(1, i - 1, 3, 7)] if i else [])
        b.append(builder.child(parent, txs, spacing=7))
        parent = b[-1].header.block_id
    a += builder.extend(a[-1].header.block_id, 2, transfers=[])  # A grows to 5 later
    return builder, a, b


def test_genesis_state(branches):
    store = MemoryStore()
    chain = new_chain(store)
    assert chain.height == 0
    assert_state(chain, store, [])


def test_connect_in_order(branches):
    _, a, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:3]:
        assert chain.submit_block(block).status == "connected"
    assert_state(chain, store, a[:3])
    assert chain.get_account(ADDR[0]).nonce == 3


def test_reorg_back_and_forth_exact_state(branches):
    _, a, b = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:3]:
        chain.submit_block(block)
    for block in b[:3]:
        assert chain.submit_block(block).status == "side-branch"
    assert_state(chain, store, a[:3])
    result = chain.submit_block(b[3])
    assert result.status == "connected"
    assert result.tip_change.disconnected == tuple(x.header.block_id for x in reversed(a[:3]))
    assert result.tip_change.connected == tuple(x.header.block_id for x in b)
    assert_state(chain, store, b)
    assert chain.get_account(ADDR[0]).nonce == 4 and chain.get_account(ADDR[1]).nonce == 3
    assert chain.submit_block(a[3]).status == "side-branch"  # 4 vs 4 blocks: the tie keeps B
    assert_state(chain, store, b)
    assert chain.submit_block(a[4]).status == "connected"
    assert_state(chain, store, a)
    assert chain.get_account(ADDR[2]) == Account(P.allocations[2].amount, 0)  # B's payments to key2 undone
    # Undo records exist exactly for main-chain blocks above genesis.
    undo_ids = {k[1:] for k, _ in store.iterate(schema.UNDO)}
    assert undo_ids == {x.header.block_id for x in a}


def test_deep_reorg_more_than_ten_blocks():
    builder = ChainBuilder(P, coinbase_to=ADDR[4])
    g = builder.genesis_id
    main = builder.extend(g, 12, transfers=[])
    # The other branch forks at height 1 and spends differently at every height.
    side = [builder.child(main[0].header.block_id, [pay(0, 0, 3, 99)], coinbase_to=ADDR[5])]
    for i in range(1, 13):
        side.append(builder.child(side[-1].header.block_id, [pay(0, i, 3, 99 + i)], coinbase_to=ADDR[5]))
    store = MemoryStore()
    chain = new_chain(store)
    for block in main:
        chain.submit_block(block)
    # Alone, side[0] (height 2) is far out of reach of the tip (height 12): headers-first sync weighs the
    # branch's headers first, and the chain then takes the bodies it vouched for.
    assert chain.submit_block(side[0]).status == "low-work"
    assert chain.check_headers([x.header for x in side]).verdict == "fetch"
    for block in side[:11]:  # heights 2..12; the last one ties with the main chain, which stays
        assert chain.submit_block(block).status == "side-branch"
    result = chain.submit_block(side[11])  # height 13: more work
    assert len(result.tip_change.disconnected) == 11 and len(result.tip_change.connected) == 12
    assert chain.submit_block(side[12]).tip_change.disconnected == ()
    assert_state(chain, store, [main[0]] + side)
    assert chain.get_account(ADDR[0]).nonce == 13


def test_blocks_in_any_order_via_orphan_pool(branches):
    _, _, b = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in reversed(b[1:]):
        assert chain.submit_block(block).status == "orphan"
    assert chain.orphan_count() == 3 and chain.height == 0
    result = chain.submit_block(b[0])
    assert result.status == "connected"
    assert set(result.orphans_accepted) == {x.header.block_id for x in b[1:]}
    assert chain.orphan_count() == 0
    assert_state(chain, store, b)


def test_orphan_pool_is_bounded(branches):
    _, _, b = branches
    chain = new_chain(max_orphans=2, max_orphans_per_source=2)
    for block in b[1:]:
        chain.submit_block(block)
    assert chain.orphan_count() == 2  # one of the three was evicted (at random)
    chain.submit_block(b[0])
    for block in b[1:]:  # sent again: whatever was evicted is taken now, the rest connects behind it
        chain.submit_block(block)
    assert chain.height == 4 and chain.orphan_count() == 0


def test_duplicates_are_reported_not_reapplied(branches):
    _, a, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    chain.submit_block(a[0])
    writes = store.writes
    assert chain.submit_block(a[0]).status == "duplicate"
    assert chain.submit_block(chain.genesis).status == "duplicate"
    assert store.writes == writes


def test_invalid_branch_block_found_during_reorg_changes_nothing(branches):
    """A stored side-branch block whose transfer is state-invalid is caught when its branch would win."""
    builder, a, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:3]:
        chain.submit_block(block)
    # Side branch: block 1 fine, block 2 spends more than key2 has (only checkable against state).
    s1 = builder.child(builder.genesis_id, [pay(1, 0, 0, 5)], spacing=11)
    s2 = builder.child(s1.header.block_id, [pay(2, 0, 0, 10**18)], spacing=11)
    s3 = builder.child(s2.header.block_id, spacing=11)
    s4 = builder.child(s3.header.block_id, spacing=11)
    for block in (s1, s2, s3):
        assert chain.submit_block(block).status == "side-branch"
    before = store.snapshot()
    with pytest.raises(BlockStateInvalid) as info:  # a state fault: not the sender's (no PeerFault)
        chain.submit_block(s4)
    assert info.value.rule == "ancestor-invalid" and isinstance(info.value.__cause__, errors.BlockTxInvalid)
    assert not isinstance(info.value, errors.PeerFault)
    assert store.snapshot() == before
    assert chain.is_invalid(s2.header.block_id) and chain.is_invalid(s3.header.block_id)
    assert chain.is_invalid(s4.header.block_id)  # the block that revealed it descends from it
    assert not chain.is_invalid(s1.header.block_id)
    assert_state(chain, store, a[:3])
    with pytest.raises(BlockStateInvalid) as info:
        chain.submit_block(builder.child(s3.header.block_id, spacing=3))
    assert isinstance(info.value.__cause__, errors.AncestorInvalid)


def test_state_invalid_new_tip_changes_nothing(branches):
    builder, a, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    chain.submit_block(a[0])
    before = store.snapshot()
    bad = builder.child(a[0].header.block_id, [pay(0, 0, 1, 5)])  # nonce 0 was spent in a[0]
    with pytest.raises(BlockStateInvalid) as info:
        chain.submit_block(bad)
    assert info.value.rule == "block-tx" and isinstance(info.value.__cause__.cause, errors.BadNonce)
    assert store.snapshot() == before
    assert chain.get_entry(bad.header.block_id) is None
    assert chain.is_invalid(bad.header.block_id)  # marked, so it is not checked again


def test_one_batch_per_connect_and_disconnect(branches):
    _, a, b = branches
    store = MemoryStore()
    chain = new_chain(store)
    writes = store.writes
    for block in a[:3]:
        chain.submit_block(block)
    assert store.writes - writes == 3
    for block in b[:3]:
        chain.submit_block(block)
    assert store.writes - writes == 6  # one batch per side-branch block
    chain.submit_block(b[3])
    assert store.writes - writes == 6 + 3 + 4  # 3 disconnects, 4 connects


def test_restart_reloads_everything(branches):
    _, a, b = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:3] + b:
        chain.submit_block(block)
    again = new_chain(store)
    assert again.tip_id == chain.tip_id and again.height == 4
    assert again.get_entry(a[2].header.block_id).chain_work == chain.get_entry(a[2].header.block_id).chain_work
    assert again.get_block(a[1].header.block_id) == a[1]
    assert_state(again, store, b)
    assert again.submit_block(a[3]).status == "side-branch"
    assert again.submit_block(a[4]).status == "connected"
    assert_state(again, store, a)


class CrashingStore(MemoryStore):
    """Raises (like a killed process would stop) before applying batch number ``crash_at``."""

    def __init__(self, inner: MemoryStore, crash_at: int) -> None:
        super().__init__()
        self.data, self._keys, self.inner_writes = inner.data, inner._keys, 0
        self.crash_at = crash_at

    def write(self, batch: WriteBatch) -> None:
        self.inner_writes += 1
        if self.inner_writes == self.crash_at:
            raise SystemExit("simulated crash")
        super().write(batch)


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4, 5, 6, 7])
def test_crash_in_the_middle_of_a_reorg_recovers_on_open(branches, crash_at):
    """Stop after any number of the reorg's 7 batches: reopening finishes it (most work wins) and state == replay."""
    _, a, b = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:3] + b[:3]:
        chain.submit_block(block)
    crashing = CrashingStore(store, crash_at)
    chain = new_chain(crashing)
    with pytest.raises(SystemExit):
        chain.submit_block(b[3])
    reopened = new_chain(store)
    report = reopened.verify_chain()
    assert report.ok, report.problems
    if crash_at == 7:
        # Everything but the last batch (the one that also stores b[3]) happened: the tip is b[2],
        # whose chain ties with A's; a tie keeps the current tip, so no reorg on open.
        assert_state(reopened, store, b[:3])
    else:
        # Some disconnects (and maybe connects) happened: the tip's chain is shorter than A's,
        # so opening moves back to A, the most-work chain stored (b[3] was never stored).
        assert_state(reopened, store, a[:3])
    assert reopened.get_entry(b[3].header.block_id) is None


def test_unknown_parent_is_an_orphan_not_an_error(branches):
    _, a, _ = branches
    chain = new_chain()
    assert chain.submit_block(a[2]).status == "orphan"


def test_verify_chain_detects_tampering(branches):
    _, a, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:3]:
        chain.submit_block(block)
    batch = WriteBatch()
    batch.put(schema.account_key(ADDR[1]), schema.encode_account(Account(1, 0)))
    store.write(batch)
    report = chain.verify_chain()
    assert not report.ok and "differ" in report.problems[0]


def test_wrong_network_database_is_refused():
    from dataclasses import replace

    from node.errors import WrongDatabaseError

    store = MemoryStore()
    new_chain(store)
    with pytest.raises(WrongDatabaseError):
        ChainService(store, replace(P, genesis_time=P.genesis_time + 1))


def test_transfer_helpers_are_signed():
    assert isinstance(pay(0, 0, 1, 1), Tx)
