"""The chain service on a real LevelDB: reorgs, reopen, and invalid blocks leave the files' contents unchanged."""

from __future__ import annotations

import time

import pytest

from consensus import errors
from consensus.codec import decode_block, encode_block
from consensus.keys import devnet_keypairs
from consensus.tx import make_transfer
from consensus.types import Account
from node import schema
from node.chain import ChainService
from node.errors import BlockStateInvalid, StorageError
from node.store import LevelDBStore
from tests.support.blockgen import ChainBuilder, easy_params

P = easy_params()
KEYS = devnet_keypairs(5)
ADDR = [k.address for k in KEYS]
NOW = P.genesis_time + 10**6


def open_chain(path, **kwargs):
    return ChainService(LevelDBStore(str(path)), P, clock=lambda: NOW, **kwargs)


def dump(path_or_store):
    return list(path_or_store.iterate(b""))


def pay(sender, nonce, to, amount, fee=200):
    return make_transfer(KEYS[sender], P.chain_id, nonce, ADDR[to], amount, fee)


@pytest.fixture(scope="module")
def blocks():
    builder = ChainBuilder(P, coinbase_to=ADDR[4])
    a = [builder.child(builder.genesis_id, [pay(0, 0, 1, 10)])]
    for i in range(1, 12):
        a.append(builder.child(a[-1].header.block_id, [pay(0, i, 1, 10 + i), pay(1, i - 1, 2, 3)]))
    b = [builder.child(a[0].header.block_id, [pay(0, 1, 3, 77)], spacing=3, coinbase_to=ADDR[3])]
    for i in range(2, 14):
        b.append(builder.child(b[-1].header.block_id, [pay(0, i, 3, 77 + i)], spacing=3, coinbase_to=ADDR[3]))
    return builder, a, b


def test_deep_reorgs_on_leveldb_and_reopen(tmp_path, blocks):
    _, a, b = blocks
    chain = open_chain(tmp_path / "db")
    for block in a:
        assert chain.submit_block(block).status == "connected"
    a_balances = {x: chain.get_account(x) for x in ADDR}
    chain.check_headers([x.header for x in b])  # as headers-first sync does: B's headers vouch for its bodies
    for block in b[:11]:
        assert chain.submit_block(block).status == "side-branch"
    change = chain.submit_block(b[11]).tip_change
    assert len(change.disconnected) == 11 and len(change.connected) == 12  # a reorg 11 blocks deep
    assert chain.get_account(ADDR[0]).nonce == 13
    assert chain.get_account(ADDR[1]).nonce == 0
    assert chain.verify_chain().ok
    chain.close()

    chain = open_chain(tmp_path / "db")
    assert chain.tip_id == b[11].header.block_id and chain.height == 13
    assert chain.verify_chain().ok
    chain.submit_block(b[12])
    # Back to A: extend it past B (A has 12 blocks above genesis, B 13 + the shared first one).
    builder = blocks[0]
    more = builder.extend(a[-1].header.block_id, 3, transfers=[])
    for block in more[:2]:
        assert chain.submit_block(block).status == "side-branch"
    assert chain.submit_block(more[2]).status == "connected"
    assert chain.verify_chain().ok
    for x in ADDR[:3]:
        assert chain.get_account(x) == a_balances[x]
    chain.close()


def test_invalid_blocks_leave_the_database_unchanged(tmp_path, blocks):
    builder, a, b = blocks
    chain = open_chain(tmp_path / "db")
    for block in a[:4]:
        chain.submit_block(block)
    store = chain._store
    before = dump(store)
    bad_root = encode_block(a[4])
    bad_root = bad_root[:48] + bytes([bad_root[48] ^ 1]) + bad_root[49:]  # a bit of tx_root
    double_spend = builder.child(a[3].header.block_id, [pay(0, 2, 1, 5)])  # nonce 2 already used on A
    too_new = builder.child(a[3].header.block_id, time=NOW + 7201)
    for bad, error in [
        (b"\x01" * 500, errors.DecodeError),
        (bad_root, errors.InvalidBlock),
        (encode_block(double_spend), BlockStateInvalid),  # a state fault (no PeerFault: not the sender's)
        (encode_block(too_new), errors.TimeTooNew),
    ]:
        with pytest.raises(error):  # the node's path: decode what a peer sent, submit with its size
            chain.submit_block(decode_block(bad), len(bad))
        assert dump(store) == before
    chain.close()


def test_one_owner_per_database(tmp_path):
    chain = open_chain(tmp_path / "db")
    with pytest.raises(StorageError):
        LevelDBStore(str(tmp_path / "db"))
    chain.close()


def test_genesis_accounts_on_a_fresh_database(tmp_path):
    chain = open_chain(tmp_path / "db")
    for alloc in P.allocations:
        assert chain.get_account(alloc.address) == Account(alloc.amount, 0)
    stored = {k[1:] for k, _ in chain._store.iterate(schema.ACCOUNT)}
    assert stored == {alloc.address for alloc in P.allocations}
    chain.close()


def test_reopen_of_a_long_chain_is_fast(tmp_path):
    """500 synthetic blocks (certificate checks off, test-only path); reopening reads only the index."""
    builder = ChainBuilder(P, synthetic=True)
    chain = open_chain(tmp_path / "db", check_certificates=False)
    for block in builder.extend(builder.genesis_id, 500):
        chain.submit_block(block)
    chain.close()
    start = time.perf_counter()
    chain = open_chain(tmp_path / "db", check_certificates=False)
    elapsed = time.perf_counter() - start
    assert chain.height == 500 and elapsed < 1.0
    assert chain.verify_chain().ok
    chain.close()
