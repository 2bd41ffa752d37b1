"""Section 11 (the job market), one test per rule of its table and per effect, applied through ``apply_block``.

Every state test applies blocks with ``consensus.state.apply_block`` on a
``node.records.DictView`` (``tests.support.jobmarket.Ledger``), checks the
balances exactly and checks conservation (balances plus live escrow equal the
allocations minus fees minus burns) after every block. Rules a transaction
meets by itself (the offer's job id, sizes and amounts, the per-byte fee) are
checked by ``consensus.tx.validate_tx``, which ``validate_block`` runs on every
transaction. Fixed vectors are in ``tests/spec/job_vectors.json``
(``tests/spec/job_vectors.py`` computes them).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from consensus import errors
from consensus.codec import MAX_FRAUD_PATH, decode_tx, encode_tx
from consensus.jobmarket import U64_MAX, compute_fraud_size, compute_offer_id, min_bond, padded_dims
from consensus.keys import devnet_keypairs
from consensus.tx import compute_tx_size, validate_tx
from consensus.types import (
    KIND_ACCEPT,
    KIND_CLAIM,
    KIND_FRAUD,
    KIND_OFFER,
    KIND_REFUND,
    KIND_REJECT,
    KIND_SETTLE,
    RECORD_CLAIMED,
    RECORD_OPEN,
    Account,
    ClaimPayload,
    FraudPayload,
    JobRecord,
)
from pouw.tiles import commit_product, expected_tile, leaf_c
from tests.spec.job_vectors import compute_job_vectors
from tests.support.jobmarket import PARAMS, Ledger, job_tx, make_job, with_params

KEYS = devnet_keypairs(4)
CLIENT, CLAIMANT, OTHER, MINER = KEYS
W = PARAMS.job_window
FUNDS = 10**9
REWARD, DEPOSIT, BOND = 50_000, 60_000, 50_001
"""An odd bond, so ``bond // 2`` and ``bond - bond // 2`` differ."""
JOB = make_job(20, 200, 24)
"""Padded 32 x 256 x 32: 2 x 2 tiles, both partly padding (rows 20..31, columns 24..31)."""
HONEST = JOB.padded_product()
HONEST_COMMIT = commit_product(HONEST)
VECTORS_PATH = Path(__file__).parent / "job_vectors.json"


def new_ledger(params=PARAMS) -> Ledger:
    return Ledger({CLIENT.address: FUNDS, CLAIMANT.address: FUNDS, OTHER.address: FUNDS}, params)


def offer_tx(ledger: Ledger, *, job=JOB, reward=REWARD, deposit=DEPOSIT, bond=BOND, deadline=None, key=CLIENT,
             **kwargs):
    payload = job.offer(reward, deposit, bond, deadline if deadline is not None else ledger.height + 1 + 100)
    return ledger.tx(key, KIND_OFFER, job.job_id, payload, **kwargs)


def offered(ledger: Ledger | None = None, **kwargs) -> tuple[Ledger, bytes]:
    """A ledger with one open offer of ``JOB``; returns it and the offer id."""
    ledger = ledger or new_ledger()
    nonce = ledger.nonce(CLIENT.address)
    ledger.block(offer_tx(ledger, **kwargs))
    return ledger, compute_offer_id(CLIENT.address, nonce)


def claimed(product=HONEST, **kwargs) -> tuple[Ledger, bytes, int]:
    """A ledger whose offer is claimed by ``CLAIMANT`` with ``root_C`` of ``product``; returns the claim height."""
    ledger, offer_id = offered(**kwargs)
    ledger.block(ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(commit_product(product).root_c)))
    return ledger, offer_id, ledger.height


def refused(ledger: Ledger, tx, kind: type[errors.InvalidTx], text: str = "") -> errors.InvalidTx:
    cause = ledger.refuse(tx)
    assert isinstance(cause, kind), f"expected {kind.__name__}, found {type(cause).__name__}: {cause}"
    assert text in str(cause)
    return cause


def wrong_product(i: int = 3, j: int = 4, delta: int = 1) -> np.ndarray:
    c = HONEST.copy()
    c[i, j] += delta
    return c


# --- offer --------------------------------------------------------------------------------------


def test_offer_id_must_be_the_job_id_of_the_payload():
    ledger = new_ledger()
    bad = ledger.tx(CLIENT, KIND_OFFER, bytes(32), JOB.offer(REWARD, DEPOSIT, BOND, 50))
    with pytest.raises(errors.BadJobOffer, match="job id"):
        validate_tx(bad, PARAMS)
    other_shape = replace(JOB.offer(REWARD, DEPOSIT, BOND, 50), k=256)  # same roots, submitted k differs
    with pytest.raises(errors.BadJobOffer, match="job id"):
        validate_tx(ledger.tx(CLIENT, KIND_OFFER, JOB.job_id, other_shape), PARAMS)
    validate_tx(offer_tx(ledger), PARAMS)


@pytest.mark.parametrize("field, value, ok", [
    ("m", 0, False), ("n", 0, False), ("k", 0, False), ("m", PARAMS.max_job_mn + 1, False),
    ("n", PARAMS.max_job_mn + 1, False), ("k", PARAMS.max_job_k + 1, False),
    ("m", PARAMS.max_job_mn, True), ("n", PARAMS.max_job_mn, True), ("k", PARAMS.max_job_k, True),
    ("m", 1, True), ("k", 1, True),
])
def test_offer_sizes_within_m_job_and_k_job(field, value, ok):
    from pouw.jobs import compute_job_id

    offer = replace(JOB.offer(REWARD, 10**12, 10**12, 50), **{field: value})
    job_id = compute_job_id(offer.m, offer.k, offer.n, offer.root_a, offer.root_b)
    tx = job_tx(CLIENT, 0, KIND_OFFER, job_id, offer)
    if ok:
        validate_tx(tx, PARAMS)
    else:
        with pytest.raises(errors.BadJobOffer, match=rf"1 <= {'k' if field == 'k' else 'm, n'} <="):
            validate_tx(tx, PARAMS)


def test_offer_reward_at_least_one():
    tx = job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(0, DEPOSIT, BOND, 50))
    with pytest.raises(errors.BadJobOffer, match="reward of at least 1"):
        validate_tx(tx, PARAMS)
    floor = compute_fraud_size(JOB.m, JOB.k, JOB.n) * PARAMS.fraud_fee_mult
    validate_tx(job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(1, floor, floor, 50)), PARAMS)


def test_offer_bond_at_least_the_bond_bp_share_of_the_reward_rounded_up():
    params = with_params(bond_bp=15_000, deposit_bp=15_000)
    reward = 100_001  # 1.5 * reward = 150001.5 -> 150002
    need = 150_002
    assert need > PARAMS.fraud_fee_mult * compute_fraud_size(JOB.m, JOB.k, JOB.n)
    for bond, ok in ((need - 1, False), (need, True)):
        tx = job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(reward, 10**7, bond, 50), params=params)
        if ok:
            validate_tx(tx, params)
        else:
            with pytest.raises(errors.BadJobOffer, match=f"{need} <= bond"):
                validate_tx(tx, params)


def test_offer_bond_at_least_the_fraud_fee_floor():
    """``bond >= fraud_fee_mult * min_fee_per_byte * fraud_size``: even a reward of 1 bonds a paid-for fraud proof."""
    for params in (PARAMS, with_params(min_fee_per_byte=3, fraud_fee_mult=5)):
        floor = params.fraud_fee_mult * params.min_fee_per_byte * compute_fraud_size(JOB.m, JOB.k, JOB.n)
        assert min_bond(JOB.offer(1, 0, 0, 0), params) == floor
        low = job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(1, floor, floor - 1, 50), params=params)
        with pytest.raises(errors.BadJobOffer, match=f"{floor} <= bond"):
            validate_tx(low, params)
        validate_tx(job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(1, floor, floor, 50), params=params), params)


def test_offer_bond_at_most_the_deposit():
    tx = job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(REWARD, BOND - 1, BOND, 50))
    with pytest.raises(errors.BadJobOffer, match="bond <= deposit"):
        validate_tx(tx, PARAMS)
    validate_tx(job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(REWARD, BOND, BOND, 50)), PARAMS)


def test_offer_deposit_at_least_the_deposit_bp_share_of_the_reward():
    params = with_params(deposit_bp=20_001)  # 2.0001 * 60000 = 120006
    reward, bond, need = 60_000, 60_000, 120_006
    low = job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(reward, need - 1, bond, 50), params=params)
    with pytest.raises(errors.BadJobOffer, match=f"deposit of at least {need}"):
        validate_tx(low, params)
    validate_tx(job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(reward, need, bond, 50), params=params), params)


def test_offer_deadline_after_h_and_within_max_job_lifetime():
    ledger = new_ledger()
    ledger.advance_to(40)
    life = PARAMS.max_job_lifetime
    for deadline in (40, 39, 41 + life):
        refused(ledger, offer_tx(ledger, deadline=deadline), errors.JobWindowWrong, "deadline")
    ledger.block(offer_tx(ledger, deadline=40 + life))
    ledger.block(offer_tx(ledger, deadline=42))


def test_offer_effect_client_pays_reward_plus_deposit_record_open():
    ledger = new_ledger()
    tx = offer_tx(ledger, deadline=77)
    change = ledger.block(tx)
    offer_id = compute_offer_id(CLIENT.address, 0)
    assert ledger.balance(CLIENT.address) == FUNDS - REWARD - DEPOSIT - tx.body.fee
    assert ledger.nonce(CLIENT.address) == 1
    record = ledger.record(offer_id)
    assert record == JobRecord(RECORD_OPEN, CLIENT.address, JOB.job_id, JOB.m, JOB.k, JOB.n, JOB.commit.root_a,
                               JOB.commit.root_b, REWARD, DEPOSIT, BOND, 77)
    assert record.escrow == REWARD + DEPOSIT
    assert change.records == ((offer_id, record),) and change.undo.records == ((offer_id, None),)


def test_offer_balance_covers_fee_plus_reward_plus_deposit():
    probe = offer_tx(new_ledger())
    need = probe.body.fee + REWARD + DEPOSIT
    short = Ledger({CLIENT.address: need - 1})
    refused(short, offer_tx(short), errors.InsufficientBalance)
    exact = Ledger({CLIENT.address: need})
    exact.block(offer_tx(exact))
    assert exact.balance(CLIENT.address) == 0


def test_offer_amounts_above_u64_are_refused_never_wrapped():
    tx = job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(U64_MAX // 2, U64_MAX // 2 + 1, BOND, 50))
    with pytest.raises(errors.AmountOverflow, match="does not fit in u64"):
        validate_tx(tx, PARAMS)


def test_offer_ids_are_per_client_and_nonce():
    ledger = new_ledger()
    ledger.block(offer_tx(ledger), offer_tx(ledger, nonce=1))
    first, second = compute_offer_id(CLIENT.address, 0), compute_offer_id(CLIENT.address, 1)
    assert first != second and ledger.record(first) is not None and ledger.record(second) is not None


# --- claim --------------------------------------------------------------------------------------


def test_claim_needs_a_live_open_record():
    ledger = new_ledger()
    refused(ledger, ledger.tx(CLAIMANT, KIND_CLAIM, bytes(32), ClaimPayload(bytes(32))), errors.NoJobRecord)
    ledger, offer_id, _ = claimed()
    tx = ledger.tx(OTHER, KIND_CLAIM, offer_id, ClaimPayload(bytes(32)))
    cause = refused(ledger, tx, errors.JobStatusWrong)
    assert str(cause) == "job-status: a claim needs an open offer, found it claimed"


def test_claim_at_height_up_to_the_deadline():
    ledger, offer_id = offered(deadline=5)
    ledger.advance_to(6)
    refused(ledger, ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(bytes(32))), errors.JobWindowWrong,
            "deadline 5")
    ledger.height = 4  # the next block is at the deadline itself
    ledger.block(ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(bytes(32))))
    assert ledger.record(offer_id).status == RECORD_CLAIMED


def test_claim_balance_covers_fee_plus_the_records_bond():
    ledger, offer_id = offered()
    fee = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(bytes(32))).body.fee
    ledger.view.accounts[CLAIMANT.address] = Account(fee + BOND - 1, 0)
    refused(ledger, ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(bytes(32))), errors.InsufficientBalance,
            f"at least {BOND} after the fee")
    ledger.view.accounts[CLAIMANT.address] = Account(fee + BOND, 0)
    ledger.allocated += fee + BOND - FUNDS  # the balance was set by hand: conservation follows the new total
    ledger.block(ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(bytes(32))))
    assert ledger.balance(CLAIMANT.address) == 0


def test_claim_effect_claimant_bonds_record_claimed():
    ledger, offer_id = offered()
    tx = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(HONEST_COMMIT.root_c))
    ledger.block(tx)
    record = ledger.record(offer_id)
    assert (record.status, record.claimant, record.root_c, record.claim_height) == (
        RECORD_CLAIMED, CLAIMANT.address, HONEST_COMMIT.root_c, ledger.height)
    assert record.escrow == REWARD + DEPOSIT + BOND
    assert ledger.balance(CLAIMANT.address) == FUNDS - BOND - tx.body.fee


def test_a_second_claim_in_one_block_invalidates_the_block():
    ledger, offer_id = offered()
    first = ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(HONEST_COMMIT.root_c))
    second = ledger.tx(OTHER, KIND_CLAIM, offer_id, ClaimPayload(bytes(32)))
    before = dict(ledger.view.accounts), dict(ledger.view.records)
    with pytest.raises(errors.BlockTxInvalid) as info:
        ledger.try_block(first, second)
    assert info.value.index == 2 and isinstance(info.value.cause, errors.JobStatusWrong)
    assert (dict(ledger.view.accounts), dict(ledger.view.records)) == before
    ledger.block(second)  # either claim alone is valid: exactly one wins
    assert ledger.record(offer_id).claimant == OTHER.address


# --- accept -------------------------------------------------------------------------------------


def test_accept_needs_a_claimed_record():
    ledger, offer_id = offered()
    refused(ledger, ledger.tx(CLIENT, KIND_ACCEPT, offer_id), errors.JobStatusWrong,
            "an accept needs a claimed offer, found it open")


def test_accept_only_from_the_client():
    ledger, offer_id, _ = claimed()
    for key in (CLAIMANT, OTHER):
        refused(ledger, ledger.tx(key, KIND_ACCEPT, offer_id), errors.JobSenderWrong, "only the client")


def test_accept_effect_claimant_gets_reward_plus_bond_client_its_deposit_final():
    ledger, offer_id, _ = claimed()
    client0, claimant0 = ledger.balance(CLIENT.address), ledger.balance(CLAIMANT.address)
    tx = ledger.tx(CLIENT, KIND_ACCEPT, offer_id)
    change = ledger.block(tx)
    assert ledger.balance(CLAIMANT.address) == claimant0 + REWARD + BOND
    assert ledger.balance(CLIENT.address) == client0 + DEPOSIT - tx.body.fee
    assert ledger.record(offer_id) is None and change.burned == 0
    assert change.records == ((offer_id, None),)
    refused(ledger, ledger.tx(CLIENT, KIND_ACCEPT, offer_id), errors.NoJobRecord)


def test_accept_stays_valid_after_the_window():
    ledger, offer_id, h = claimed()
    ledger.advance_to(h + W + 5)
    ledger.block(ledger.tx(CLIENT, KIND_ACCEPT, offer_id))
    assert ledger.record(offer_id) is None


# --- settle -------------------------------------------------------------------------------------


def test_settle_needs_a_claimed_record():
    ledger, offer_id = offered()
    refused(ledger, ledger.tx(OTHER, KIND_SETTLE, offer_id), errors.JobStatusWrong, "found it open")


def test_settle_only_after_claim_height_plus_w():
    ledger, offer_id, h = claimed()
    ledger.advance_to(h + W)
    refused(ledger, ledger.tx(OTHER, KIND_SETTLE, offer_id), errors.JobWindowWrong, f"claim height + W = {h + W}")
    ledger.height = h + W  # next block: h + W + 1
    ledger.block(ledger.tx(OTHER, KIND_SETTLE, offer_id))
    assert ledger.record(offer_id) is None


def test_settle_effect_as_accept_from_any_sender():
    ledger, offer_id, h = claimed()
    before = {k.address: ledger.balance(k.address) for k in (CLIENT, CLAIMANT, OTHER)}
    ledger.advance_to(h + W + 1)
    tx = ledger.tx(OTHER, KIND_SETTLE, offer_id)
    change = ledger.block(tx)
    assert ledger.balance(CLAIMANT.address) == before[CLAIMANT.address] + REWARD + BOND
    assert ledger.balance(CLIENT.address) == before[CLIENT.address] + DEPOSIT
    assert ledger.balance(OTHER.address) == before[OTHER.address] - tx.body.fee
    assert change.burned == 0 and ledger.record(offer_id) is None


# --- reject -------------------------------------------------------------------------------------


def test_reject_needs_a_claimed_record():
    ledger, offer_id = offered()
    refused(ledger, ledger.tx(CLIENT, KIND_REJECT, offer_id), errors.JobStatusWrong, "found it open")


def test_reject_only_up_to_claim_height_plus_w():
    ledger, offer_id, h = claimed()
    ledger.advance_to(h + W + 1)
    refused(ledger, ledger.tx(CLIENT, KIND_REJECT, offer_id), errors.JobWindowWrong, f"= {h + W}")
    ledger.height = h + W - 1  # next block: h + W, the last height of the window
    ledger.block(ledger.tx(CLIENT, KIND_REJECT, offer_id))
    assert ledger.record(offer_id) is None


def test_reject_only_from_the_client():
    ledger, offer_id, _ = claimed()
    for key in (CLAIMANT, OTHER):
        refused(ledger, ledger.tx(key, KIND_REJECT, offer_id), errors.JobSenderWrong)


def test_reject_effect_everything_at_stake_burns():
    ledger, offer_id, _ = claimed()
    client0, claimant0 = ledger.balance(CLIENT.address), ledger.balance(CLAIMANT.address)
    tx = ledger.tx(CLIENT, KIND_REJECT, offer_id)
    change = ledger.block(tx)
    assert change.burned == REWARD + DEPOSIT + BOND
    assert ledger.balance(CLIENT.address) == client0 - tx.body.fee
    assert ledger.balance(CLAIMANT.address) == claimant0
    assert ledger.record(offer_id) is None


# --- refund -------------------------------------------------------------------------------------


def test_refund_needs_an_open_record():
    ledger, offer_id, _ = claimed()
    ledger.advance_to(500)
    refused(ledger, ledger.tx(CLIENT, KIND_REFUND, offer_id), errors.JobStatusWrong, "open offer, found it claimed")


def test_refund_only_after_the_deadline():
    ledger, offer_id = offered(deadline=30)
    ledger.advance_to(30)
    refused(ledger, ledger.tx(CLIENT, KIND_REFUND, offer_id), errors.JobWindowWrong, "deadline 30")
    ledger.height = 30  # next block: 31
    ledger.block(ledger.tx(CLIENT, KIND_REFUND, offer_id))


def test_refund_only_from_the_client():
    ledger, offer_id = offered(deadline=30)
    ledger.advance_to(31)
    refused(ledger, ledger.tx(OTHER, KIND_REFUND, offer_id), errors.JobSenderWrong)


def test_refund_effect_client_gets_reward_plus_deposit_final():
    ledger, offer_id = offered(deadline=30)
    client0 = ledger.balance(CLIENT.address)
    ledger.advance_to(31)
    tx = ledger.tx(CLIENT, KIND_REFUND, offer_id)
    change = ledger.block(tx)
    assert ledger.balance(CLIENT.address) == client0 + REWARD + DEPOSIT - tx.body.fee
    assert change.burned == 0 and ledger.record(offer_id) is None


# --- fraud --------------------------------------------------------------------------------------


def test_fraud_needs_a_claimed_record():
    ledger, offer_id = offered()
    bad = wrong_product()
    refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, JOB.fraud(bad, 0, 0)), errors.JobStatusWrong)


def test_fraud_only_up_to_claim_height_plus_w():
    bad = wrong_product()
    ledger, offer_id, h = claimed(bad)
    proof = JOB.fraud(bad, 0, 0)
    ledger.advance_to(h + W + 1)
    refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, proof), errors.JobWindowWrong)
    ledger.height = h + W - 1
    ledger.block(ledger.tx(CLIENT, KIND_FRAUD, offer_id, proof))
    assert ledger.record(offer_id) is None


def test_fraud_effect_from_any_sender_client_gets_half_the_bond_rest_burns():
    bad = wrong_product()
    ledger, offer_id, _ = claimed(bad)
    before = {k.address: ledger.balance(k.address) for k in (CLIENT, CLAIMANT, OTHER)}
    tx = ledger.tx(OTHER, KIND_FRAUD, offer_id, JOB.fraud(bad, 0, 0))
    change = ledger.block(tx)
    assert ledger.balance(CLIENT.address) == before[CLIENT.address] + REWARD + DEPOSIT + BOND // 2
    assert ledger.balance(CLAIMANT.address) == before[CLAIMANT.address]
    assert ledger.balance(OTHER.address) == before[OTHER.address] - tx.body.fee
    assert change.burned == BOND - BOND // 2 == 25_001
    assert ledger.record(offer_id) is None


def test_fraud_sent_by_the_claimant_still_costs_its_whole_bond():
    bad = wrong_product()
    ledger, offer_id, _ = claimed(bad)
    claimant0 = ledger.balance(CLAIMANT.address)
    tx = ledger.tx(CLAIMANT, KIND_FRAUD, offer_id, JOB.fraud(bad, 0, 0))
    ledger.block(tx)
    assert ledger.balance(CLAIMANT.address) == claimant0 - tx.body.fee  # its bond went to escrow at the claim


def test_fraud_tile_index_below_the_padded_tile_grid():
    bad = wrong_product()
    ledger, offer_id, _ = claimed(bad)
    for i, j in ((2, 0), (0, 2)):
        proof = replace(JOB.fraud(bad, 0, 0), tile_i=i, tile_j=j)
        refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, proof), errors.FraudNotProven,
                "expected a tile below (2, 2)")


@pytest.mark.parametrize("which", ["c", "a", "b"])
def test_fraud_each_path_must_reproduce_its_root(which):
    bad = wrong_product()
    ledger, offer_id, _ = claimed(bad)
    proof = JOB.fraud(bad, 0, 0)
    name = f"path_{which}"
    path = getattr(proof, name)
    tampered = replace(proof, **{name: (bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:])})
    refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, tampered), errors.FraudNotProven,
            f"path_{which.upper()} gives root")
    short = replace(proof, **{name: path[:-1]})
    refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, short), errors.FraudNotProven, "siblings")


def test_fraud_paths_are_checked_at_the_named_index():
    """A true tile of another position does not prove anything: the C path is checked at ``I * (n_p/16) + J``."""
    bad = wrong_product()
    ledger, offer_id, _ = claimed(bad)
    proof = replace(JOB.fraud(bad, 0, 0), tile_j=1)
    refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, proof), errors.FraudNotProven)


def test_fraud_tile_of_another_claim_does_not_prove_this_one():
    ledger, offer_id, _ = claimed(HONEST)
    bad = wrong_product()
    refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, JOB.fraud(bad, 0, 0)), errors.FraudNotProven,
            "path_C gives root")


def test_fraud_blocks_must_have_the_records_k_p():
    """``k_p`` of the proof comes from its length; it must be the record's (256 here, not 384)."""
    bad = wrong_product()
    ledger, offer_id, _ = claimed(bad)
    proof = JOB.fraud(bad, 0, 0)
    wide = replace(proof, a_blk=proof.a_blk + bytes(16 * 128), bt_blk=proof.bt_blk + bytes(16 * 128))
    refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, wide), errors.FraudNotProven, "16 * k_p = 4096")


def test_fraud_right_tile_of_an_honest_product_is_not_proven():
    ledger, offer_id, _ = claimed(HONEST)
    for i in range(2):
        for j in range(2):
            refused(ledger, ledger.tx(OTHER, KIND_FRAUD, offer_id, JOB.fraud(HONEST, i, j)), errors.FraudNotProven,
                    "is right")


def test_fraud_one_changed_entry_inside_m_by_n_is_provable_and_only_its_tile():
    bad = wrong_product(17, 20, -3)  # tile (1, 1), a live entry (17 < 20, 20 < 24)
    ledger, offer_id, _ = claimed(bad)
    refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, JOB.fraud(bad, 0, 1)), errors.FraudNotProven)
    ledger.block(ledger.tx(CLIENT, KIND_FRAUD, offer_id, JOB.fraud(bad, 1, 1)))


def test_fraud_a_claimed_non_zero_entry_outside_m_by_n_is_provable():
    """A claimed product must be zero outside ``m x n``: entry (31, 31) is padding and claimed 5."""
    bad = wrong_product(31, 31, 5)
    ledger, offer_id, _ = claimed(bad)
    ledger.block(ledger.tx(CLIENT, KIND_FRAUD, offer_id, JOB.fraud(bad, 1, 1)))
    assert ledger.record(offer_id) is None


def test_fraud_a_clients_non_zero_padding_cannot_prove_an_honest_product_wrong():
    """The client committed rows >= m of A and columns >= n of B non-zero; the honest product (zero there) stands."""
    dirty = make_job(20, 200, 24, dirty_padding=True)
    assert dirty.job_id != JOB.job_id
    honest = dirty.padded_product()  # the product of the matrices as submitted, zero-padded
    raw_padded = dirty.pa.astype(np.int64) @ dirty.pb.astype(np.int64)
    assert np.any(raw_padded[20:, :] != 0) and np.any(raw_padded[:, 24:] != 0)
    ledger, offer_id = offered(job=dirty)
    ledger.block(ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(commit_product(honest).root_c)))
    for i in range(2):
        for j in range(2):
            refused(ledger, ledger.tx(CLIENT, KIND_FRAUD, offer_id, dirty.fraud(honest, i, j)), errors.FraudNotProven,
                    "is right")
    # The raw padded product (what the dirty padding gives) is the wrong one: provable in the padding tile.
    cheat = raw_padded.astype(np.int32)
    assert np.any(expected_tile(dirty.fraud(cheat, 1, 1).a_blk, dirty.fraud(cheat, 1, 1).bt_blk, 1, 1, 20, 24)
                  != raw_padded[16:32, 16:32])


def test_fraud_expected_entries_are_exact_int8_products_without_range_check():
    """Entries of the proof's blocks are any int8 (two's complement): -128 * -128 * k_p, summed exactly."""
    a = bytes([0x80]) * (16 * 256)
    tile = expected_tile(a, a, 0, 0, 16, 16)
    assert tile.dtype == np.int64 and int(tile[0, 0]) == 128 * 128 * 256
    assert np.all(expected_tile(a, a, 1, 0, 20, 16)[4:, :] == 0)  # rows 20..31 of tile row 1 are padding


def test_fraud_after_the_record_is_final_has_no_record():
    bad = wrong_product()
    ledger, offer_id, _ = claimed(bad)
    ledger.block(ledger.tx(CLIENT, KIND_FRAUD, offer_id, JOB.fraud(bad, 0, 0)))
    refused(ledger, ledger.tx(OTHER, KIND_FRAUD, offer_id, JOB.fraud(bad, 0, 0)), errors.NoJobRecord)


def test_fraud_size_is_the_deepest_proof_and_the_bond_floor_pays_for_it():
    """``fraud_size`` counts ``ceil(log2(leaves))`` per tree: the encoded proof of a deepest tile has exactly that size.

    3 x 1 tiles: leaves 0 and 1 have 2 siblings, leaf 2 has 1 (section 3's tree).
    """
    job = make_job(40, 300, 16)
    m_p, k_p, n_p = padded_dims(40, 300, 16)
    assert (m_p, k_p, n_p) == (48, 384, 16)
    c = job.padded_product().copy()
    c[0, 0] += 1
    deepest = job_tx(OTHER, 0, KIND_FRAUD, bytes(32), job.fraud(c, 0, 0))
    shallow = job_tx(OTHER, 0, KIND_FRAUD, bytes(32), job.fraud(c, 2, 0))
    size = compute_fraud_size(40, 300, 16)
    assert size == 1184 + 32 * 384 + 32 * (2 + 2 + 0)
    assert compute_tx_size(deepest) == size and compute_tx_size(shallow) == size - 64
    assert min_bond(job.offer(1, 0, 0, 0), PARAMS) >= PARAMS.fraud_fee_mult * deepest.body.fee


# --- rules every kind shares ----------------------------------------------------------------------


def _one_of_each_kind() -> dict[int, object]:
    bad = wrong_product()
    offer_id = compute_offer_id(CLIENT.address, 0)
    return {
        KIND_OFFER: (JOB.job_id, JOB.offer(REWARD, DEPOSIT, BOND, 50)),
        KIND_CLAIM: (offer_id, ClaimPayload(bytes(32))),
        KIND_ACCEPT: (offer_id, None), KIND_REJECT: (offer_id, None), KIND_SETTLE: (offer_id, None),
        KIND_REFUND: (offer_id, None), KIND_FRAUD: (offer_id, JOB.fraud(bad, 0, 0)),
    }


@pytest.mark.parametrize("per_byte", [1, 3])
@pytest.mark.parametrize("kind", range(KIND_OFFER, KIND_FRAUD + 1))
def test_fee_at_least_min_fee_per_byte_times_the_encoded_length(kind, per_byte):
    params = with_params(min_fee_per_byte=per_byte)
    id_, payload = _one_of_each_kind()[kind]
    tx = job_tx(OTHER, 0, kind, id_, payload, params=params)
    size = len(encode_tx(tx))
    assert compute_tx_size(tx) == size and tx.body.fee == per_byte * size
    expected = {KIND_OFFER: 85 + 108 + 64, KIND_CLAIM: 85 + 32 + 64, KIND_FRAUD: 9504}.get(kind, 85 + 64)
    assert size == expected
    if kind == KIND_OFFER:  # the bond floor grows with the per-byte fee
        floor = min_bond(payload, params)
        payload = replace(payload, bond=floor, deposit=floor)
        tx = job_tx(OTHER, 0, kind, id_, payload, params=params)
    validate_tx(tx, params)
    low = job_tx(OTHER, 0, kind, id_, payload, params=params, fee=tx.body.fee - 1)
    with pytest.raises(errors.FeeTooLow, match=f"{per_byte} per byte of {size} bytes"):
        validate_tx(low, params)


def test_balance_covers_the_fee_of_a_job_tx_and_the_fee_is_taken_first():
    ledger, offer_id, _ = claimed()
    tx = ledger.tx(CLIENT, KIND_ACCEPT, offer_id)
    ledger.view.accounts[CLIENT.address] = Account(tx.body.fee - 1, 1)
    refused(ledger, tx, errors.InsufficientBalance, "the fee")


def test_job_txs_share_the_senders_nonce_sequence():
    ledger, offer_id, _ = claimed()
    cause = refused(ledger, ledger.tx(CLIENT, KIND_ACCEPT, offer_id, nonce=0), errors.BadNonce)
    assert "expected nonce 1" in str(cause)


def test_a_credit_above_u64_invalidates_the_block():
    ledger, offer_id, _ = claimed()
    ledger.view.accounts[CLAIMANT.address] = Account(U64_MAX - REWARD - BOND + 1, 1)
    refused(ledger, ledger.tx(CLIENT, KIND_ACCEPT, offer_id), errors.AmountOverflow, "does not fit in u64")


def test_offer_claim_and_accept_in_one_block_leave_no_record():
    ledger = new_ledger()
    offer_id = compute_offer_id(CLIENT.address, 0)
    txs = (offer_tx(ledger), ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(bytes(32))),
           ledger.tx(CLIENT, KIND_ACCEPT, offer_id, nonce=1))
    change = ledger.block(*txs)
    assert change.records == () and change.undo.records == ()
    assert ledger.balance(CLAIMANT.address) == FUNDS + REWARD - txs[1].body.fee


def test_undo_restores_every_account_and_record():
    bad = wrong_product()
    ledger, offer_id, _ = claimed(bad)
    accounts, records = dict(ledger.view.accounts), dict(ledger.view.records)
    change = ledger.try_block(ledger.tx(OTHER, KIND_FRAUD, offer_id, JOB.fraud(bad, 0, 0)))
    assert change.undo.records == ((offer_id, records[offer_id]),)
    assert dict(change.undo.entries) == {a: accounts.get(a) for a, _ in change.accounts}


def test_state_faults_are_job_state_faults_with_the_rule_in_the_message():
    for cls, rule in ((errors.NoJobRecord, "job-record"), (errors.JobStatusWrong, "job-status"),
                      (errors.JobWindowWrong, "job-window"), (errors.JobSenderWrong, "job-sender"),
                      (errors.FraudNotProven, "job-fraud")):
        assert issubclass(cls, errors.JobStateFault) and cls.rule == rule
        assert str(cls("x")) == f"{rule}: x"


# --- codec ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", range(KIND_OFFER, KIND_FRAUD + 1))
def test_every_kind_round_trips_through_the_codec(kind):
    id_, payload = _one_of_each_kind()[kind]
    tx = job_tx(OTHER, 7, kind, id_, payload)
    raw = encode_tx(tx)
    assert raw[0] == kind and decode_tx(raw) == tx and encode_tx(decode_tx(raw)) == raw
    with pytest.raises(errors.DecodeError):
        decode_tx(raw[:-65] + raw[-64:])  # one payload byte short
    if kind != KIND_FRAUD:
        with pytest.raises(errors.DecodeError):
            decode_tx(raw[:-64] + b"\0" + raw[-64:])


@pytest.mark.parametrize("k_p", [256, 384, 1024])
@pytest.mark.parametrize("depths", [(0, 0, 0), (12, 5, 7), (32, 32, 32), (3, 32, 0)])
def test_fraud_decoder_reads_k_p_from_the_length(k_p, depths):
    dc, da, db = depths
    proof = FraudPayload(1, 2, bytes(range(256)) * 4, tuple(bytes([1]) * 32 for _ in range(dc)),
                         bytes([5]) * (16 * k_p), tuple(bytes([2]) * 32 for _ in range(da)),
                         bytes([6]) * (16 * k_p), tuple(bytes([3]) * 32 for _ in range(db)))
    tx = job_tx(OTHER, 0, KIND_FRAUD, bytes(32), proof)
    raw = encode_tx(tx)
    assert len(raw) == 1184 + 32 * k_p + 32 * (dc + da + db)
    assert decode_tx(raw) == tx


def test_fraud_decoder_refuses_lengths_no_k_p_explains():
    proof = JOB.fraud(wrong_product(), 0, 0)
    raw = encode_tx(job_tx(OTHER, 0, KIND_FRAUD, bytes(32), proof))
    body, sig = raw[:-64], raw[-64:]
    for extra in (b"\0", bytes(31), bytes(32), bytes(16 * 128)):
        with pytest.raises(errors.DecodeError):
            decode_tx(body + extra + sig)
    with pytest.raises(errors.DecodeError):
        decode_tx(body[:-1] + sig)


def test_fraud_decoder_refuses_k_p_below_256_and_paths_above_the_cap():
    """Paths capped at 32 siblings keep ``32 (a + b) < 4096``: exactly one ``k_p`` reads a length."""
    proof = JOB.fraud(wrong_product(), 0, 0)
    small = b"".join((proof.tile_i.to_bytes(4, "little"), proof.tile_j.to_bytes(4, "little"), proof.tile,
                      bytes([0]), bytes(16 * 128), bytes([0]), bytes(16 * 128), bytes([0])))
    head = encode_tx(job_tx(OTHER, 0, KIND_ACCEPT, bytes(32), None))[:85]
    fraud_head = bytes([KIND_FRAUD]) + head[1:]
    with pytest.raises(errors.DecodeError, match="k_p >= 256"):
        decode_tx(fraud_head + small + bytes(64))
    too_long = FraudPayload(0, 0, proof.tile, (), proof.a_blk, tuple(bytes(32) for _ in range(MAX_FRAUD_PATH)),
                            proof.bt_blk, ())
    raw = bytearray(encode_tx(job_tx(OTHER, 0, KIND_FRAUD, bytes(32), too_long)))
    pos = 85 + 8 + 1024 + 1 + len(proof.a_blk)
    assert raw[pos] == MAX_FRAUD_PATH
    raw[pos] = MAX_FRAUD_PATH + 1
    with pytest.raises(errors.DecodeError):
        decode_tx(bytes(raw + bytes(32)))
    with pytest.raises(ValueError):
        encode_tx(job_tx(OTHER, 0, KIND_FRAUD, bytes(32), replace(too_long, path_a=too_long.path_a + (bytes(32),))))


def test_fraud_encoder_refuses_blocks_that_are_not_16_k_p():
    proof = JOB.fraud(wrong_product(), 0, 0)
    for size in (16 * 200, 16 * 128):
        with pytest.raises(ValueError):
            encode_tx(job_tx(OTHER, 0, KIND_FRAUD, bytes(32), replace(proof, a_blk=bytes(size), bt_blk=bytes(size))))


def test_unknown_kinds_are_refused_by_the_decoder():
    raw = encode_tx(job_tx(OTHER, 0, KIND_ACCEPT, bytes(32), None))
    for kind in (0, 9, 255):
        with pytest.raises(errors.BadTxKind):
            decode_tx(bytes([kind]) + raw[1:])


# --- fixed vectors ------------------------------------------------------------------------------


def test_job_vectors_match_the_code():
    """``job_vectors.json`` is what ``tests/spec/job_vectors.py`` computes (leafC, root_C, offer, claim, fraud)."""
    stored = json.loads(VECTORS_PATH.read_text())
    assert stored == compute_job_vectors()


def test_job_vectors_decode_and_verify():
    stored = json.loads(VECTORS_PATH.read_text())
    for name in ("offer_tx", "claim_tx", "fraud_tx", "accept_tx"):
        raw = bytes.fromhex(stored[name])
        tx = decode_tx(raw)
        assert encode_tx(tx) == raw
        validate_tx(tx, PARAMS)
    assert leaf_c(1, 2, bytes.fromhex(stored["leaf_c_tile"])).hex() == stored["leaf_c"]
    fraud = decode_tx(bytes.fromhex(stored["fraud_tx"])).body.payload
    assert isinstance(fraud, FraudPayload) and len(fraud.a_blk) == 16 * 256
    assert stored["fraud_size"] == len(bytes.fromhex(stored["fraud_tx"])) == compute_fraud_size(20, 200, 24)


def test_dirty_k_padding_is_not_forced_to_zero_the_claimants_job_id_check_guards_it():
    """Only rows >= m and columns >= n are forced to 0; a client committing non-zero columns >= k of ``A`` gets a
    job id that the blobs (zero-padded by the claimant, section 11's honest path) do not give, so no honest
    claimant works on it, and against the raw ``A·B`` such an offer's fraud check would succeed."""
    dirty = make_job(20, 200, 24)
    dirty.pa[:20, 200:] = 1
    dirty.pb[200:, :24] = 1
    from pouw.commit import commit_pair

    dirty.commit = commit_pair(dirty.pa, dirty.pb)
    assert dirty.job_id != JOB.job_id  # what the blobs A (20 x 200) and B (200 x 24) give, zero-padded
    honest = dirty.padded_product()
    proof = dirty.fraud(honest, 0, 0)
    assert np.any(expected_tile(proof.a_blk, proof.bt_blk, 0, 0, 20, 24) != honest[:16, :16])
