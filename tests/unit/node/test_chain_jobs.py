"""Job records in a real ``ChainService`` on the in-memory store: reorgs, undo records and ``verify_store``.

Blocks are really mined at the test shape (``tests.support.blockgen``); the job
is ``tests.support.jobmarket``'s formula job (20 x 200 x 24, 2 x 2 tiles). A
reorg across an offer, its claim and a fraud proof must restore every balance
and record exactly; the stored undo records must round-trip; ``verify_store``
must notice a tampered record and a broken conservation sum.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.jobmarket import compute_offer_id
from consensus.keys import devnet_keypairs
from consensus.state import BlockUndo
from consensus.tx import make_transfer
from consensus.types import (
    KIND_CLAIM,
    KIND_FRAUD,
    KIND_OFFER,
    RECORD_CLAIMED,
    RECORD_OPEN,
    Account,
    ClaimPayload,
    JobRecord,
)
from node import schema
from node.chain import ChainService
from node.errors import StorageError
from node.store import WriteBatch
from pouw.tiles import commit_product
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.jobmarket import job_tx, make_job
from tests.support.memstore import MemoryStore

P = easy_params()
KEYS = devnet_keypairs(6)
ADDR = [k.address for k in KEYS]
NOW = P.genesis_time + 10**6
JOB = make_job(20, 200, 24)
REWARD, DEPOSIT, BOND = 70_000, 80_000, 70_001
OFFER_ID = compute_offer_id(ADDR[0], 0)
WRONG = JOB.padded_product().copy()
WRONG[5, 30] = 1  # column 30 >= n = 24: a non-zero entry in the padding, provable
WRONG_COMMIT = commit_product(WRONG)


def new_chain(store=None):
    return ChainService(store if store is not None else MemoryStore(), P, clock=lambda: NOW)


def state(store) -> tuple[dict, dict]:
    """Every stored account and job record."""
    accounts = {k[1:]: schema.decode_account(v) for k, v in store.iterate(schema.ACCOUNT)}
    records = {k[1:]: schema.decode_record(v) for k, v in store.iterate(schema.OFFER)}
    return accounts, records


@pytest.fixture(scope="module")
def branches():
    """Branch A: offer (key 0), claim of a wrong product (key 1), fraud proof (key 2), 2 empty blocks.

    Branch B (from genesis, 4 blocks, another miner): key 3 pays key 4; no job transaction.
    """
    builder = ChainBuilder(P, coinbase_to=ADDR[5])
    offer = job_tx(KEYS[0], 0, KIND_OFFER, JOB.job_id, JOB.offer(REWARD, DEPOSIT, BOND, 50), params=P)
    claim = job_tx(KEYS[1], 0, KIND_CLAIM, OFFER_ID, ClaimPayload(WRONG_COMMIT.root_c), params=P)
    fraud = job_tx(KEYS[2], 0, KIND_FRAUD, OFFER_ID, JOB.fraud(WRONG, 0, 1, WRONG_COMMIT), params=P)
    a = []
    parent = builder.genesis_id
    for txs in ([offer], [claim], [fraud], [], []):
        a.append(builder.child(parent, txs))
        parent = a[-1].header.block_id
    b = []
    parent = builder.genesis_id
    for i in range(4):
        pay = make_transfer(KEYS[3], P.chain_id, i, ADDR[4], 1000 + i, 500)
        b.append(builder.child(parent, [pay], spacing=7, coinbase_to=ADDR[4]))
        parent = b[-1].header.block_id
    return a, b, (offer, claim, fraud)


def replayed(blocks) -> tuple[dict, dict]:
    """The stored state of a fresh chain that connected only ``blocks``."""
    store = MemoryStore()
    chain = new_chain(store)
    for block in blocks:
        assert chain.submit_block(block).status == "connected"
    return state(store)


def check(chain) -> dict:
    report = chain.verify_chain()
    assert report.ok, report.problems
    return report.supply


def test_job_block_effects_and_conservation(branches):
    a, _, (offer, claim, fraud) = branches
    store = MemoryStore()
    chain = new_chain(store)
    alloc = {x.address: x.amount for x in P.allocations}
    chain.submit_block(a[0])
    record = chain.get_job_record(OFFER_ID)
    assert record.status == RECORD_OPEN and chain.get_account(ADDR[0]).balance == alloc[ADDR[0]] - REWARD - DEPOSIT \
        - offer.body.fee
    assert check(chain)["escrow"] == REWARD + DEPOSIT
    chain.submit_block(a[1])
    assert chain.get_job_record(OFFER_ID).status == RECORD_CLAIMED
    assert check(chain)["escrow"] == REWARD + DEPOSIT + BOND
    chain.submit_block(a[2])
    assert chain.get_job_record(OFFER_ID) is None and chain.job_records(10) == []
    assert chain.get_account(ADDR[0]).balance == alloc[ADDR[0]] - offer.body.fee + BOND // 2
    assert chain.get_account(ADDR[1]).balance == alloc[ADDR[1]] - BOND - claim.body.fee
    assert chain.get_account(ADDR[2]).balance == alloc[ADDR[2]] - fraud.body.fee
    supply = check(chain)
    assert supply["escrow"] == 0 and supply["burned"] == BOND - BOND // 2
    assert supply["fees"] == offer.body.fee + claim.body.fee + fraud.body.fee


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_reorg_across_offer_claim_and_fraud_restores_every_balance_and_record(branches, depth):
    """A holds the first ``depth`` of offer, claim, fraud; B (longer) replaces it, then A wins back."""
    a, b, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    before = state(store)
    for block in a[:depth]:
        assert chain.submit_block(block).status == "connected"
    assert state(store) == replayed(a[:depth])
    for block in b[:depth]:
        assert chain.submit_block(block).status == "side-branch"
    result = chain.submit_block(b[depth])
    assert result.status == "connected" and len(result.tip_change.disconnected) == depth
    assert state(store) == replayed(b[:depth + 1])
    accounts, records = state(store)
    assert records == {} and chain.get_job_record(OFFER_ID) is None
    for i in range(3):  # the job's parties are back where genesis left them
        assert accounts[ADDR[i]] == before[0][ADDR[i]]
    check(chain)
    for block in b[depth + 1:]:
        chain.submit_block(block)
    for block in a[depth:]:
        chain.submit_block(block)
    assert chain.tip_id == a[-1].header.block_id
    assert state(store) == replayed(a)
    check(chain)


def test_undo_records_of_job_blocks_round_trip(branches):
    a, _, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:3]:
        chain.submit_block(block)
    offer_undo = schema.decode_undo(store.get(schema.undo_key(a[0].header.block_id)))
    claim_undo = schema.decode_undo(store.get(schema.undo_key(a[1].header.block_id)))
    fraud_undo = schema.decode_undo(store.get(schema.undo_key(a[2].header.block_id)))
    assert offer_undo.records == ((OFFER_ID, None),)
    assert claim_undo.records[0][1].status == RECORD_OPEN
    assert fraud_undo.records[0][1].status == RECORD_CLAIMED and fraud_undo.records[0][1].root_c == \
        WRONG_COMMIT.root_c
    for undo in (offer_undo, claim_undo, fraud_undo):
        raw = schema.encode_undo(undo)
        assert schema.decode_undo(raw) == undo and schema.encode_undo(schema.decode_undo(raw)) == raw
        with pytest.raises(StorageError):
            schema.decode_undo(raw[:-1])
        with pytest.raises(StorageError):
            schema.decode_undo(raw + b"\0")
    empty = BlockUndo(((ADDR[0], Account(5, 1)), (ADDR[1], None)))
    assert schema.decode_undo(schema.encode_undo(empty)) == empty


def test_job_record_encoding_round_trips():
    record = JOB.offer(1, 2, 3, 4)
    full = JobRecord(RECORD_CLAIMED, ADDR[0], JOB.job_id, record.m, record.k, record.n, record.root_a, record.root_b,
                     (1 << 64) - 1, 2, 3, 4, ADDR[1], bytes(range(32)), 7)
    raw = schema.encode_record(full)
    assert len(raw) == schema.RECORD_SIZE == 221 and schema.decode_record(raw) == full
    with pytest.raises(StorageError):
        schema.decode_record(raw[:-1])


def _tamper(store, key: bytes, value: bytes | None) -> None:
    batch = WriteBatch()
    if value is None:
        batch.delete(key)
    else:
        batch.put(key, value)
    store.write(batch)


def test_verify_store_catches_a_tampered_record(branches):
    a, _, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:2]:
        chain.submit_block(block)
    check(chain)
    record = chain.get_job_record(OFFER_ID)
    _tamper(store, schema.offer_key(OFFER_ID), schema.encode_record(replace(record, claimant=ADDR[3])))
    report = chain.verify_chain()
    assert not report.ok and any("job records differ" in p for p in report.problems)
    assert report.records_checked == 1
    # The escrow is unchanged (only the claimant), so the sums still balance: only the record check caught it.
    assert not any("not conserved" in p for p in report.problems)


@pytest.mark.parametrize("how", ["bond", "deleted", "balance"])
def test_verify_store_catches_a_broken_conservation_sum(branches, how):
    a, _, _ = branches
    store = MemoryStore()
    chain = new_chain(store)
    for block in a[:2]:
        chain.submit_block(block)
    record = chain.get_job_record(OFFER_ID)
    if how == "bond":
        _tamper(store, schema.offer_key(OFFER_ID), schema.encode_record(replace(record, bond=record.bond + 1)))
    elif how == "deleted":
        _tamper(store, schema.offer_key(OFFER_ID), None)
    else:
        account = chain.get_account(ADDR[1])
        _tamper(store, schema.account_key(ADDR[1]), schema.encode_account(Account(account.balance + 1, account.nonce)))
    report = chain.verify_chain()
    assert not report.ok
    assert any("value not conserved" in p for p in report.problems), report.problems
    held = report.supply["balances"] + report.supply["escrow"]
    issued = report.supply["allocations"] + report.supply["coinbase"] - report.supply["fees"] - report.supply["burned"]
    assert held != issued


def test_undo_decoder_refuses_presence_bytes_other_than_0_and_1():
    record = JobRecord(RECORD_OPEN, ADDR[0], JOB.job_id, 1, 1, 1, bytes(32), bytes(32), 1, 1, 1, 1)
    undo = BlockUndo(((ADDR[0], None),), ((OFFER_ID, record),))
    raw = bytearray(schema.encode_undo(undo))
    for pos in (4 + 20, 4 + 21 + 4 + 32):
        assert raw[pos] in (0, 1)
        bad = bytearray(raw)
        bad[pos] = 2
        with pytest.raises(StorageError, match="expected 0 or 1"):
            schema.decode_undo(bytes(bad))
