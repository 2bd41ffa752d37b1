"""Mempool admission of job transactions (section 11): cost, row conditions at tip + 1, one slot per offer,
limits, tip changes, and the template's last check; attacks: claim floods, garbage fraud proofs, stale claims."""

from __future__ import annotations

import pytest

import consensus.jobmarket as jobmarket
from consensus.codec import encode_tx
from consensus.errors import (
    BadNonce,
    BadSignature,
    FraudNotProven,
    JobSenderWrong,
    JobStatusWrong,
    JobWindowWrong,
    NoJobRecord,
)
from consensus.jobmarket import compute_fraud_size, compute_offer_id, min_bond, min_deposit
from consensus.keys import devnet_keypairs
from consensus.networks import MAINNET, TESTNET
from consensus.tx import compute_tx_id, make_transfer
from consensus.types import (
    KIND_ACCEPT,
    KIND_CLAIM,
    KIND_FRAUD,
    KIND_OFFER,
    KIND_REFUND,
    KIND_REJECT,
    KIND_SETTLE,
    Account,
    ClaimPayload,
    FraudPayload,
    Tx,
)
from node.mempool import Mempool, MempoolError
from node.templates import drop_invalid
from pouw.tiles import commit_product
from tests.support.jobmarket import PARAMS, Ledger, make_job

KEYS = devnet_keypairs(40)
CLIENT, CLAIMANT, OTHER = KEYS[0], KEYS[1], KEYS[2]
FLOODERS = KEYS[3:]
RICH = 10**15
JOB = make_job(20, 300, 20)
REWARD = 10**6


def offer_payload(deadline: int, reward: int = REWARD):
    probe = JOB.offer(reward, 0, 0, deadline)
    bond = min_bond(probe, PARAMS)
    deposit = min_deposit(JOB.offer(reward, 0, bond, deadline), PARAMS)
    return JOB.offer(reward, deposit, bond, deadline)


@pytest.fixture
def ledger():
    return Ledger({k.address: RICH for k in KEYS}, height=5)


def pool(ledger: Ledger, **kw) -> Mempool:
    view = ledger.view
    return Mempool(PARAMS, lambda a: view.get_account(a) or Account(), get_job_record=view.get_job_record,
                   height=ledger.height, **kw)


async def mine(ledger: Ledger, mp: Mempool, *txs: Tx, returned: tuple[Tx, ...] = ()) -> list[Tx]:
    """Apply a block of ``txs`` to the ledger and tell the mempool, as the node's TipMoved handler does."""
    ledger.block(*txs)
    view = ledger.view
    return await mp.on_tip_change(list(txs), list(returned), get_account=lambda a: view.get_account(a) or Account(),
                                  get_job_record=view.get_job_record, height=ledger.height)


def send_offer(ledger: Ledger, deadline_in: int = 50) -> tuple[Tx, bytes]:
    tx = ledger.tx(CLIENT, KIND_OFFER, JOB.job_id, offer_payload(ledger.height + deadline_in))
    return tx, compute_offer_id(CLIENT.address, tx.body.nonce)


async def offered(ledger: Ledger, mp: Mempool, deadline_in: int = 50) -> bytes:
    """An offer on chain; returns its id."""
    tx, offer_id = send_offer(ledger, deadline_in)
    await mine(ledger, mp, tx)
    assert ledger.record(offer_id) is not None
    return offer_id


async def claimed(ledger: Ledger, mp: Mempool, deadline_in: int = 50) -> bytes:
    offer_id = await offered(ledger, mp, deadline_in)
    await mine(ledger, mp, ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x07" * 32)))
    return offer_id


# --- admission -----------------------------------------------------------------------------------------


async def test_an_offer_costs_its_fee_plus_reward_plus_deposit(ledger):
    mp = pool(ledger)
    tx, offer_id = send_offer(ledger)
    entry = mp.add(tx)
    offer = tx.body.payload
    assert entry.cost == tx.body.fee + offer.reward + offer.deposit
    assert mp.pending_cost(CLIENT.address) == entry.cost
    assert entry.job is not None and entry.job.offer_id == offer_id and not entry.job.slot


async def test_a_claim_costs_its_fee_plus_the_records_bond(ledger):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp)
    entry = mp.add(ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32)))
    assert entry.cost == entry.fee + ledger.record(offer_id).bond
    assert mp.pending_for_offer(offer_id) == [entry.tx_id]


async def test_the_balance_must_cover_the_escrow_beside_pending_transfers(ledger):
    mp = pool(ledger)
    tx, _ = send_offer(ledger)
    escrow = tx.body.payload.reward + tx.body.payload.deposit
    ledger.view.accounts[CLIENT.address] = Account(escrow + tx.body.fee + 4999, 0)
    mp.add(make_transfer(CLIENT, PARAMS.chain_id, 0, OTHER.address, 1000, 4000))
    later = ledger.tx(CLIENT, KIND_OFFER, JOB.job_id, tx.body.payload, nonce=1)
    with pytest.raises(Exception, match="does not cover pending transactions"):
        mp.add(later)
    assert len(mp) == 1


async def test_a_claim_of_an_offer_not_on_chain_yet_is_refused_not_held(ledger):
    mp = pool(ledger)
    offer, offer_id = send_offer(ledger)
    mp.add(offer)
    claim = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32))
    with pytest.raises(NoJobRecord):
        mp.add(claim)
    with pytest.raises(NoJobRecord):
        mp.add_or_hold(claim)
    assert mp.held_count() == 0 and len(mp) == 1


async def test_a_job_tx_of_an_unknown_offer_is_refused(ledger):
    mp = pool(ledger)
    for kind in (KIND_CLAIM, KIND_ACCEPT, KIND_REJECT, KIND_SETTLE, KIND_REFUND):
        payload = ClaimPayload(b"\x01" * 32) if kind == KIND_CLAIM else None
        with pytest.raises(NoJobRecord):
            mp.add(ledger.tx(CLIENT, kind, b"\x99" * 32, payload))
    assert len(mp) == 0


async def test_job_txs_ahead_of_the_nonce_are_not_held(ledger):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp)
    ahead = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32), nonce=3)
    with pytest.raises(BadNonce):
        mp.add_or_hold(ahead)
    assert mp.held_count() == 0


async def test_accept_reject_and_refund_only_from_the_client(ledger):
    mp = pool(ledger)
    offer_id = await claimed(ledger, mp)
    for kind in (KIND_ACCEPT, KIND_REJECT):
        with pytest.raises(JobSenderWrong):
            mp.add(ledger.tx(OTHER, kind, offer_id))
    entry = mp.add(ledger.tx(CLIENT, KIND_ACCEPT, offer_id))
    assert entry.cost == entry.fee
    ledger2 = Ledger({k.address: RICH for k in KEYS}, height=5)
    mp2 = pool(ledger2)
    open_id = await offered(ledger2, mp2, deadline_in=2)
    for _ in range(3):
        await mine(ledger2, mp2)
    with pytest.raises(JobSenderWrong):
        mp2.add(ledger2.tx(OTHER, KIND_REFUND, open_id))
    mp2.add(ledger2.tx(CLIENT, KIND_REFUND, open_id))


async def test_a_claim_after_the_deadline_is_refused(ledger):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp, deadline_in=2)  # deadline = 7, tip now 6
    await mine(ledger, mp)  # tip 7: the next block is at 8 > deadline
    with pytest.raises(JobWindowWrong, match="deadline"):
        mp.add(ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32)))


async def test_a_settle_waits_for_the_window_to_close(ledger):
    mp = pool(ledger)
    offer_id = await claimed(ledger, mp)
    claim_height = ledger.record(offer_id).claim_height
    with pytest.raises(JobWindowWrong):
        mp.add(ledger.tx(OTHER, KIND_SETTLE, offer_id))
    while ledger.height + 1 <= claim_height + PARAMS.job_window:
        await mine(ledger, mp)
    mp.add(ledger.tx(OTHER, KIND_SETTLE, offer_id))


# --- one slot per offer --------------------------------------------------------------------------------


async def test_a_flood_of_claims_from_many_senders_keeps_one(ledger):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp)
    first = mp.add(ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32)))
    busy = 0
    for i, key in enumerate(FLOODERS):
        with pytest.raises(MempoolError) as e:
            mp.add(ledger.tx(key, KIND_CLAIM, offer_id, ClaimPayload(bytes([i]) * 32), fee=10**6))
        busy += e.value.reason == "offer-busy"
    assert busy == len(FLOODERS)
    assert mp.pending_for_offer(offer_id) == [first.tx_id] and len(mp) == 1 and mp.job_count() == 1


async def test_other_kinds_share_the_offers_slot(ledger):
    mp = pool(ledger)
    offer_id = await claimed(ledger, mp)
    mp.add(ledger.tx(CLIENT, KIND_ACCEPT, offer_id))
    with pytest.raises(MempoolError, match="offer-busy|one claim") as e:
        mp.add(ledger.tx(CLIENT, KIND_REJECT, offer_id, nonce=ledger.nonce(CLIENT.address) + 1))
    assert e.value.reason == "offer-busy"


async def test_replacement_only_by_the_same_sender_and_nonce_with_a_higher_fee(ledger):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp)
    claim = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32))
    mp.add(claim)
    same_fee = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x02" * 32), fee=claim.body.fee)
    with pytest.raises(MempoolError) as e:
        mp.add(same_fee)
    assert e.value.reason == "replacement-fee-too-low"
    with pytest.raises(MempoolError) as e:
        mp.add(ledger.tx(OTHER, KIND_CLAIM, offer_id, ClaimPayload(b"\x03" * 32), fee=claim.body.fee * 10))
    assert e.value.reason == "offer-busy"
    better = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x02" * 32), fee=claim.body.fee + 1)
    mp.add(better)
    assert mp.pending_for_offer(offer_id) == [compute_tx_id(better)] and len(mp) == 1
    # A transfer with the claim's nonce and a higher fee frees the slot for anyone.
    mp.add(make_transfer(CLAIMANT, PARAMS.chain_id, claim.body.nonce, OTHER.address, 1, better.body.fee + 1))
    assert mp.pending_for_offer(offer_id) == [] and mp.job_count() == 0
    mp.add(ledger.tx(OTHER, KIND_CLAIM, offer_id, ClaimPayload(b"\x03" * 32)))


# --- fraud proofs --------------------------------------------------------------------------------------


def garbage_fraud(k_p: int) -> FraudPayload:
    return FraudPayload(0, 0, b"\x05" * 1024, (b"\x11" * 32,), b"\x01" * (16 * k_p), (b"\x22" * 32,),
                        b"\x02" * (16 * k_p), (b"\x33" * 32,))


async def test_a_garbage_fraud_proof_is_refused_cheapest_check_first(ledger, monkeypatch):
    mp = pool(ledger)
    _, k_p, _ = JOB.padded
    calls = []
    real = jobmarket.check_fraud_proof
    monkeypatch.setattr(jobmarket, "check_fraud_proof", lambda f, r: (calls.append(1), real(f, r))[1])
    offer_id = await offered(ledger, mp)
    # Open offer: refused on the record's status, before any path or tile is looked at.
    with pytest.raises(JobStatusWrong):
        mp.add(ledger.tx(OTHER, KIND_FRAUD, offer_id, garbage_fraud(k_p)))
    assert calls == []
    # A bad signature: refused by the stateless checks, before the state is read.
    good = ledger.tx(OTHER, KIND_FRAUD, offer_id, garbage_fraud(k_p))
    with pytest.raises(BadSignature):
        mp.add(Tx(good.body, bytes(64)))
    await mine(ledger, mp, ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x07" * 32)))
    with pytest.raises(FraudNotProven, match="path_C"):
        mp.add(ledger.tx(OTHER, KIND_FRAUD, offer_id, garbage_fraud(k_p)))
    assert calls == [1] and len(mp) == 0


async def test_a_real_fraud_proof_is_admitted_and_a_second_one_costs_no_proof_check(ledger, monkeypatch):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp)
    wrong = JOB.product()
    wrong[3, 4] += 1
    c_padded = JOB.padded_product(wrong)
    product = commit_product(c_padded)
    await mine(ledger, mp, ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(product.root_c)))
    fraud = JOB.fraud(c_padded, 0, 0, product)
    entry = mp.add(ledger.tx(OTHER, KIND_FRAUD, offer_id, fraud))
    assert entry.size > 16 * 2 * JOB.padded[1]
    calls = []
    monkeypatch.setattr(jobmarket, "check_fraud_proof", lambda f, r: calls.append(1))
    with pytest.raises(MempoolError) as e:
        mp.add(ledger.tx(CLIENT, KIND_FRAUD, offer_id, fraud))
    assert e.value.reason == "offer-busy" and calls == []


# --- limits --------------------------------------------------------------------------------------------


async def test_pending_job_txs_are_bounded_by_count_and_bytes(ledger):
    mp = pool(ledger, max_job_count=3)
    for i in range(3):
        mp.add(ledger.tx(KEYS[i], KIND_OFFER, JOB.job_id, offer_payload(ledger.height + 50)))
    with pytest.raises(MempoolError) as e:
        mp.add(ledger.tx(KEYS[3], KIND_OFFER, JOB.job_id, offer_payload(ledger.height + 50)))
    assert e.value.reason == "job-limit"
    mp.add(make_transfer(KEYS[3], PARAMS.chain_id, 0, OTHER.address, 1, 1000))  # transfers are not limited by it
    small = pool(ledger, max_job_bytes=100)
    with pytest.raises(MempoolError) as e:
        small.add(ledger.tx(KEYS[0], KIND_OFFER, JOB.job_id, offer_payload(ledger.height + 50)))
    assert e.value.reason == "job-limit"


# --- tip changes ---------------------------------------------------------------------------------------


async def test_a_pending_claim_leaves_when_another_claim_is_mined(ledger):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp)
    mine_claim = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32))
    mp.add(mine_claim)
    later = make_transfer(CLAIMANT, PARAMS.chain_id, mine_claim.body.nonce + 1, OTHER.address, 1, 1000)
    mp.add(later)
    rival = ledger.tx(OTHER, KIND_CLAIM, offer_id, ClaimPayload(b"\x02" * 32))
    dropped = await mine(ledger, mp, rival)
    assert set(map(compute_tx_id, dropped)) == {compute_tx_id(mine_claim), compute_tx_id(later)}
    assert len(mp) == 0 and mp.pending_for_offer(offer_id) == []


async def test_a_pending_claim_leaves_when_the_deadline_passes(ledger):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp, deadline_in=2)  # deadline 7, tip 6
    claim = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32))
    mp.add(claim)  # valid at 7
    dropped = await mine(ledger, mp)  # tip 7: a block at 8 could not take it
    assert dropped == [claim] and len(mp) == 0


async def test_a_mined_claim_leaves_and_a_reorg_takes_it_back(ledger):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp)
    claim = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32))
    mp.add(claim)
    before = (dict(ledger.view.accounts), dict(ledger.view.records), ledger.height)
    assert await mine(ledger, mp, claim) == []
    assert len(mp) == 0
    # Disconnect that block (restore the ledger) and tell the mempool: the claim comes back, with its slot.
    ledger.view.accounts.clear()
    ledger.view.accounts.update(before[0])
    ledger.view.records.clear()
    ledger.view.records.update(before[1])
    ledger.height = before[2]
    view = ledger.view
    await mp.on_tip_change([], [claim], get_account=lambda a: view.get_account(a) or Account(),
                           get_job_record=view.get_job_record, height=ledger.height)
    assert mp.pending_for_offer(offer_id) == [compute_tx_id(claim)]
    assert mp.get(compute_tx_id(claim)).cost == claim.body.fee + ledger.record(offer_id).bond


async def test_transfers_stay_incremental_beside_job_txs(ledger):
    mp = pool(ledger)
    await offered(ledger, mp)
    for i, key in enumerate(FLOODERS[:10]):
        mp.add(make_transfer(key, PARAMS.chain_id, 0, OTHER.address, 1, 1000 + i))
    t = make_transfer(KEYS[30], PARAMS.chain_id, 0, OTHER.address, 1, 1000)
    mp.add(t)
    mp.begin_tip_change([t], [], height=ledger.height + 1)
    assert mp.settling() == 1  # only the mined sender (OTHER has nothing pending)


# --- the template's last check -------------------------------------------------------------------------


async def test_the_template_drops_a_job_tx_that_fails_at_its_height_and_the_senders_later_ones(ledger):
    mp = pool(ledger)
    offer_id = await offered(ledger, mp)
    c1 = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32))
    c2 = ledger.tx(OTHER, KIND_CLAIM, offer_id, ClaimPayload(b"\x02" * 32))
    after = make_transfer(OTHER, PARAMS.chain_id, c2.body.nonce + 1, CLIENT.address, 1, 1000)
    unrelated = make_transfer(KEYS[5], PARAMS.chain_id, 0, CLIENT.address, 1, 1000)
    kept = drop_invalid(ledger.view, [c1, c2, after, unrelated], ledger.height + 1, PARAMS)
    assert kept == [c1, unrelated]
    record = ledger.record(offer_id)
    late = drop_invalid(ledger.view, [c1, unrelated], record.deadline + 1, PARAMS)
    assert late == [unrelated]
    assert ledger.try_block(*kept) is not None  # the kept ones make a valid block


# --- a fraud proof travels -----------------------------------------------------------------------------


@pytest.mark.parametrize("params", [PARAMS, TESTNET, MAINNET], ids=lambda p: p.name)
def test_the_largest_fraud_tx_fits_one_gossip_batch_and_the_mempools_job_bytes(params):
    from node.mempool import MAX_JOB_BYTES
    from p2p.protocol import MAX_GOSSIP_BYTES, tx_batch_size

    largest = compute_fraud_size(params.max_job_mn, params.max_job_k, params.max_job_mn)
    assert tx_batch_size([largest]) <= MAX_GOSSIP_BYTES  # split_tx_batches sends it alone when it must
    assert largest <= params.max_block_size // 2  # the share of a block the template gives transactions
    assert MAX_JOB_BYTES >= 16 * largest


# --- gossip: a job state fault is nobody's fault -------------------------------------------------------


class Intake:
    """A TxIntake whose mempool refuses every transaction with one error."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.mempool = None

    async def submit(self, tx, source):
        raise self.error


@pytest.mark.parametrize("error, expected", [
    (NoJobRecord("no live offer"), "ignored"), (JobStatusWrong("claimed"), "ignored"),
    (JobWindowWrong("late"), "ignored"), (JobSenderWrong("not the client"), "ignored"),
    (FraudNotProven("tile right"), "ignored"), (MempoolError("offer-busy", "busy"), "ignored"),
    (BadSignature("bad"), "rejected"),
])
async def test_relayed_job_txs_that_fail_on_state_are_ignored_not_charged(ledger, error, expected):
    from node.netadapter import NetAdapter
    from p2p.access import Intake as Outcome

    net = NetAdapter(None, Intake(error), None, None, work=None, is_mining=lambda: False)  # type: ignore[arg-type]
    tx, _ = send_offer(ledger)
    outcome = await net._submit_tx(encode_tx(tx), "peer")
    assert outcome.intake == {"ignored": Outcome.IGNORED, "rejected": Outcome.REJECTED}[expected]


# --- the newtx subscription says what kind it is -------------------------------------------------------


class Publisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict]] = []

    def subscriber_count(self, topic=None):
        return 1

    def publish(self, topic, payload):
        self.published.append((topic, payload))
        return 1


async def test_newtx_names_the_kind_and_a_job_txs_offer(ledger):
    from node.api.views import Addresses
    from node.app import _subscribe_rpc
    from node.events import Events, TxAdmitted

    mp = pool(ledger)
    offer_id = await offered(ledger, mp)
    events, rpc = Events(), Publisher()
    _subscribe_rpc(events, rpc, Addresses(PARAMS.hrp))  # type: ignore[arg-type]
    claim = mp.add(ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32)))
    transfer = mp.add(make_transfer(OTHER, PARAMS.chain_id, 0, CLIENT.address, 5, 1000))
    await events.emit(TxAdmitted(claim, "rpc"))
    await events.emit(TxAdmitted(transfer, "rpc"))
    (_, c), (_, t) = rpc.published
    assert c["kind"] == "claim" and c["offer_id"] == offer_id.hex() and "to" not in c and c["fee"] == claim.fee
    assert t["kind"] == "transfer" and t["amount"] == 5 and t["to"].startswith(PARAMS.hrp)
