"""The client's fraud proof: a wrong entry anywhere is found, and its proof passes the consensus check."""

from __future__ import annotations

import numpy as np
import pytest

from consensus.codec import decode_tx, encode_tx
from consensus.errors import FraudNotProven
from consensus.jobmarket import check_fraud_proof, padded_dims
from consensus.keys import keypair_from_private
from consensus.tx import make_job_tx
from consensus.types import KIND_FRAUD, RECORD_CLAIMED, JobRecord
from pouw.commit import commit_pair
from pouw.matrix import pad_pair
from pouw.tiles import compute_root_c
from wallet.fraudproof import build_fraud_payload, find_wrong_tile
from wallet.jobs import compute_local_job_id

M, K, N = 40, 300, 24  # padded 48 x 384 x 32: 3 x 2 tiles, the last row and column of tiles ragged


@pytest.fixture(scope="module")
def job():
    rng = np.random.default_rng(16)
    a = rng.integers(-64, 64, (M, K), dtype=np.int8)
    b = rng.integers(-64, 64, (K, N), dtype=np.int8)
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    return a, b, c, compute_local_job_id(a, b)


def record_for(a: np.ndarray, b: np.ndarray, c_claimed: np.ndarray, job_id: bytes) -> JobRecord:
    """The on-chain record of an offer of ``(A, B)`` claimed with the root_C of ``c_claimed``."""
    pair = commit_pair(*pad_pair(a, b))
    m_p, _, n_p = padded_dims(M, K, N)
    return JobRecord(RECORD_CLAIMED, bytes(20), job_id, M, K, N, pair.root_a, pair.root_b, 100, 100, 100, 50,
                     bytes(range(20)), compute_root_c(c_claimed, m_p, n_p), 7)


@pytest.mark.parametrize("where", [(0, 0), (17, 5), (39, 23), (33, 16), (15, 15), (16, 16)])
def test_a_wrong_entry_is_found_and_its_proof_passes(job, where):
    a, b, c, job_id = job
    bad = c.copy()
    bad[where] += 1
    tile = find_wrong_tile(a, b, bad, job_id)
    assert tile == (where[0] // 16, where[1] // 16)
    fraud = build_fraud_payload(a, b, bad, *tile)
    record = record_for(a, b, bad, job_id)
    check_fraud_proof(fraud, record)  # raises unless proven
    # It also survives the wire: a signed fraud tx decodes to the same payload.
    tx = make_job_tx(keypair_from_private(bytes(32)), 1338, 0, KIND_FRAUD, bytes(32), fraud, 10**6)
    assert decode_tx(encode_tx(tx)).body.payload == fraud


def test_a_right_product_gives_none_and_no_tile_of_it_proves_fraud(job):
    a, b, c, job_id = job
    assert find_wrong_tile(a, b, c, job_id) is None
    record = record_for(a, b, c, job_id)
    for tile in [(0, 0), (2, 1)]:
        with pytest.raises(FraudNotProven, match="right"):
            check_fraud_proof(build_fraud_payload(a, b, c, *tile), record)


def test_many_wrong_entries_name_one_of_their_tiles(job):
    a, b, c, job_id = job
    bad = c.copy()
    bad[20:, :] = 0
    tile = find_wrong_tile(a, b, bad, job_id)
    assert tile is not None and tile[0] >= 1
    check_fraud_proof(build_fraud_payload(a, b, bad, *tile), record_for(a, b, bad, job_id))


def test_a_proof_against_another_claim_fails(job):
    a, b, c, job_id = job
    bad = c.copy()
    bad[3, 3] -= 7
    fraud = build_fraud_payload(a, b, bad, 0, 0)
    other = c.copy()
    other[30, 3] += 1
    with pytest.raises(FraudNotProven, match="path_C"):
        check_fraud_proof(fraud, record_for(a, b, other, job_id))


def test_bad_arguments_are_refused(job):
    a, b, c, _ = job
    with pytest.raises(ValueError, match="outside"):
        build_fraud_payload(a, b, c, 3, 0)
    with pytest.raises(ValueError, match="expected 40x24"):
        build_fraud_payload(a, b, c[:, :20], 0, 0)
    with pytest.raises(ValueError, match="int32"):
        build_fraud_payload(a, b, c.astype(np.int64) + (1 << 40), 0, 0)
