"""The address index on the in-memory store: exact across connects, reorgs both ways, restarts; paged; checked."""

from __future__ import annotations

import pytest

from consensus.keys import devnet_keypairs
from consensus.tx import compute_tx_id, get_sender, make_transfer
from consensus.types import Coinbase
from node import addrindex, schema
from node.chain import ChainService
from node.errors import StorageError
from node.store import WriteBatch
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.jobchain import OFFER_1, OFFER_2, job_chain
from tests.support.memstore import MemoryStore

P = easy_params()
KEYS = devnet_keypairs(6)
ADDR = [k.address for k in KEYS]
NOW = P.genesis_time + 10**6


def new_chain(store):
    return ChainService(store, P, clock=lambda: NOW)


def pay(sender, nonce, to, amount, fee=200):
    return make_transfer(KEYS[sender], P.chain_id, nonce, ADDR[to], amount, fee)


def model_history(blocks, address):
    """``(height, position, txid, role)`` of every transaction of ``blocks`` touching ``address``, newest first,
    found by hand (independent of ``addrindex.tx_addresses``)."""
    out = []
    for block in blocks:
        for position, tx in enumerate(block.transactions):
            if isinstance(tx, Coinbase):
                role = addrindex.ROLE_RECIPIENT if tx.to == address else 0
            else:
                role = ((addrindex.ROLE_SENDER if get_sender(tx) == address else 0)
                        | (addrindex.ROLE_RECIPIENT if tx.body.to == address else 0))
            if role:
                out.append((block.height, position, compute_tx_id(tx), role))
    return out[::-1]


def indexed(store, address, limit=1000):
    count, entries = addrindex.history(store, address, None, limit)
    assert count == len(entries)
    return [(e.height, e.position, e.tx_id, e.role) for e in entries]


def assert_index(chain, store, blocks):
    for address in ADDR:
        assert indexed(store, address) == model_history(blocks, address), address.hex()
    report = chain.verify_chain()
    assert report.ok, report.problems


@pytest.fixture(scope="module")
def branches():
    """Branch A (key0 pays key1, coinbases to key4) and a heavier branch B (key0 pays key2, key1 pays key3 and
    itself, coinbases to key5) from genesis."""
    builder = ChainBuilder(P, coinbase_to=ADDR[5])
    a, parent = [], builder.genesis_id
    for i in range(3):
        a.append(builder.child(parent, [pay(0, i, 1, 1000 + i)], coinbase_to=ADDR[4]))
        parent = a[-1].header.block_id
    b, parent = [], builder.genesis_id
    for i in range(4):
        txs = [pay(0, i, 2, 500 + i, fee=300)] + ([pay(1, 2 * i - 2, 3, 7), pay(1, 2 * i - 1, 1, 9)] if i else [])
        b.append(builder.child(parent, txs, spacing=7))
        parent = b[-1].header.block_id
    a += builder.extend(a[-1].header.block_id, 2, transfers=[], coinbase_to=ADDR[4])
    return a, b


def test_connect_indexes_every_address_newest_first(branches):
    a, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    assert indexed(store, ADDR[1]) == []
    for block in a[:3]:
        chain.submit_block(block)
    assert_index(chain, store, a[:3])
    assert [h for h, *_ in indexed(store, ADDR[4])] == [3, 2, 1]  # the miner: one coinbase a block
    assert {role for *_, role in indexed(store, ADDR[0])} == {addrindex.ROLE_SENDER}
    assert {role for *_, role in indexed(store, ADDR[1])} == {addrindex.ROLE_RECIPIENT}


def test_reorg_both_ways_leaves_exactly_the_main_chain(branches):
    a, b = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:3]:
        chain.submit_block(block)
    for block in b:
        chain.submit_block(block)  # B overtakes: three disconnects and four connects planned as one
    assert chain.tip_id == b[-1].header.block_id
    assert_index(chain, store, b)
    assert indexed(store, ADDR[4]) == []  # A's miner lost every entry
    self_pay = [e for e in indexed(store, ADDR[1]) if e[3] == addrindex.ROLE_SENDER | addrindex.ROLE_RECIPIENT]
    assert len(self_pay) == 3  # a transfer to oneself is one entry with both roles
    chain.submit_block(a[3])
    chain.submit_block(a[4])
    assert chain.tip_id == a[-1].header.block_id
    assert_index(chain, store, a)
    assert indexed(store, ADDR[5]) == [] and indexed(store, ADDR[3]) == []


def test_index_survives_a_restart_and_a_later_reorg(branches):
    a, b = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in b:
        chain.submit_block(block)
    chain = new_chain(store)
    for block in a:
        chain.submit_block(block)
    assert_index(chain, store, a)


def test_history_pages_with_a_cursor(branches):
    _, b = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in b:
        chain.submit_block(block)
    everything = indexed(store, ADDR[1])
    assert len(everything) == 6
    pages, cursor = [], None
    while True:
        count, page = addrindex.history(store, ADDR[1], cursor, 4)
        assert count == 6 and len(page) <= 4
        pages += [(e.height, e.position, e.tx_id, e.role) for e in page]
        cursor = page[-1].seq if page and page[-1].seq > 0 else None
        if cursor is None:
            break
    assert pages == everything
    assert addrindex.history(store, ADDR[1], 0, 4) == (6, [])
    assert addrindex.history(store, ADDR[1], 10**9, 1)[1][0].tx_id == everything[0][2]


def test_verify_chain_reports_a_tampered_index(branches):
    a, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:2]:
        chain.submit_block(block)
    batch = WriteBatch()
    batch.delete(schema.addr_tx_key(ADDR[4], 1))
    store.write(batch)
    report = chain.verify_chain()
    assert not report.ok and any("address index" in p for p in report.problems)

    store = MemoryStore()
    chain = new_chain(store)
    chain.submit_block(a[0])
    batch = WriteBatch()
    batch.put(schema.addr_count_key(ADDR[3]), (1).to_bytes(8, "big"))  # a record the chain does not give
    store.write(batch)
    assert any("address index" in p for p in chain.verify_chain().problems)


def test_disconnect_of_an_unindexed_block_removes_nothing_else(branches):
    a, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    chain.submit_block(a[0])
    # As if a[1] had been connected by a node without the index: its entries are absent.
    ops = addrindex.disconnect_ops(store, None, a[1])
    assert ops == []
    assert indexed(store, ADDR[4]) == model_history(a[:1], ADDR[4])


def test_genesis_is_not_indexed():
    store = MemoryStore()
    new_chain(store)
    assert [k for k, _ in store.iterate(schema.ADDR_TX)] == []
    assert addrindex.connect_ops(store, None, ChainBuilder(P).genesis) == []


# --- job transactions (section 11): the addresses they pay are indexed too -------------------------------------


def index_records(store) -> dict:
    """Every address-index record (counts, entries, offers' parties)."""
    return {k: v for prefix in (schema.ADDR_COUNT, schema.ADDR_TX) for k, v in store.iterate(prefix)}


def fresh_index(blocks) -> dict:
    store = MemoryStore()
    chain = new_chain(store)
    for block in blocks:
        assert chain.submit_block(block).status == "connected"
    return index_records(store)


@pytest.fixture(scope="module")
def jobs():
    return job_chain()


def test_job_payouts_index_the_claimant_and_the_client(jobs):
    store = MemoryStore()
    chain = new_chain(store)
    for block in jobs.a:
        chain.submit_block(block)
    t = {name: compute_tx_id(tx) for name, tx in jobs.txs.items()}
    s, r = addrindex.ROLE_SENDER, addrindex.ROLE_RECIPIENT
    # Found by hand from section 11: accept pays the claimant and the client, fraud the client, offers and
    # claims pay nobody.
    assert [(e[0], e[2], e[3]) for e in indexed(store, ADDR[0])] == [(3, t["accept1"], s | r), (1, t["offer1"], s)]
    assert [(e[0], e[2], e[3]) for e in indexed(store, ADDR[1])] == [(3, t["accept1"], r), (2, t["claim1"], s)]
    assert [(e[0], e[2], e[3]) for e in indexed(store, ADDR[2])] == [(3, t["fraud2"], r), (2, t["offer2"], s)]
    assert [(e[0], e[2], e[3]) for e in indexed(store, ADDR[3])] == [(2, t["claim2"], s)]  # fraud pays no claimant
    assert [(e[0], e[2], e[3]) for e in indexed(store, ADDR[4])] == [(3, t["fraud2"], s)]
    assert addrindex.decode_parties(store.get(addrindex.parties_key(OFFER_1))) == (ADDR[0], ADDR[1])
    assert addrindex.decode_parties(store.get(addrindex.parties_key(OFFER_2))) == (ADDR[2], ADDR[3])
    report = chain.verify_chain()  # the replay rebuilds the same index, parties included
    assert report.ok, report.problems


def test_job_index_is_exact_across_reorgs_both_ways(jobs):
    store = MemoryStore()
    chain = new_chain(store)
    for block in [*jobs.a, *jobs.b]:
        chain.submit_block(block)
    assert chain.tip_id == jobs.b[-1].header.block_id
    assert index_records(store) == fresh_index(jobs.b)  # as if A's offers, claims and payouts never were
    assert store.get(addrindex.parties_key(OFFER_1)) is None
    longer_a = [*jobs.a, *jobs.extend_a(2)]
    for block in longer_a[3:]:
        chain.submit_block(block)
    assert chain.tip_id == longer_a[-1].header.block_id  # one plan: disconnect B's 4, connect A's 5
    assert index_records(store) == fresh_index(longer_a)
    assert addrindex.decode_parties(store.get(addrindex.parties_key(OFFER_1))) == (ADDR[0], ADDR[1])
    report = chain.verify_chain()
    assert report.ok, report.problems


def test_disconnecting_a_claim_block_puts_the_parties_back(jobs):
    store = MemoryStore()
    chain = new_chain(store)
    for block in jobs.a[:2]:
        chain.submit_block(block)
    ops = dict(addrindex.disconnect_ops(store, None, jobs.a[1]))
    assert addrindex.decode_parties(ops[addrindex.parties_key(OFFER_1)]) == (ADDR[0], None)  # claim undone
    assert ops[addrindex.parties_key(OFFER_2)] is None  # offer and claim of one block: the record goes


def test_tx_addresses_of_a_job_tx_without_parties_is_its_sender(jobs):
    accept = jobs.txs["accept1"]
    assert addrindex.tx_addresses(accept) == {ADDR[0]: addrindex.ROLE_SENDER}
    assert addrindex.tx_addresses(accept, lambda _: None) == {ADDR[0]: addrindex.ROLE_SENDER}
    both = addrindex.tx_addresses(accept, lambda _: (ADDR[0], ADDR[1]))
    assert both == {ADDR[0]: addrindex.ROLE_SENDER | addrindex.ROLE_RECIPIENT, ADDR[1]: addrindex.ROLE_RECIPIENT}
    with pytest.raises(StorageError):
        addrindex.decode_parties(b"\x00" * 21)
