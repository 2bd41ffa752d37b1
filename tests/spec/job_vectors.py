"""Fixed vectors of the job market (docs/protocol.md section 11): computed here, committed in ``job_vectors.json``.

Regenerate (only when the protocol changes) with
``.venv/bin/python -m tests.spec.job_vectors > tests/spec/job_vectors.json``.
Matrices come from ``tests.support.jobmarket``'s integer formulas (no RNG), keys
from ``consensus.keys.devnet_keypairs`` and Ed25519 signatures are
deterministic, so every value is the same on every platform.

- ``leaf_c``: ``leafC_(1,2)`` of the tile whose entry ``e`` (row-major) is
  ``(e * 2654435761 mod 2^32) - 2^31`` as int32 (``leaf_c_tile``).
- The job ``20 x 200 x 24`` (padded ``32 x 256 x 32``, 2 x 2 tiles): ``root_a``,
  ``root_b``, ``job_id``, the honest product's ``root_c``.
- Transactions (devnet chain id, minimum fee): the offer of key 0 (nonce 0,
  reward 50000, deposit 60000, bond 50001, deadline 101), its ``offer_id``, the
  claim of key 1 (nonce 0) with the honest ``root_c``, the accept of key 0
  (nonce 1), and the fraud proof of key 2 (nonce 0) against a claimed product
  with entry ``(3, 4)`` one too large, naming tile ``(0, 0)``.
"""

from __future__ import annotations

import json

import numpy as np

from consensus.codec import encode_tx
from consensus.jobmarket import compute_fraud_size, compute_offer_id
from consensus.keys import devnet_keypairs
from consensus.tx import compute_tx_id
from consensus.types import KIND_ACCEPT, KIND_CLAIM, KIND_FRAUD, KIND_OFFER, ClaimPayload
from pouw.hashing import H, K
from pouw.tiles import commit_product, leaf_c
from tests.support.jobmarket import job_tx, make_job


def fixed_tile() -> bytes:
    e = np.arange(256, dtype=np.int64)
    return ((e * 2654435761) % (1 << 32) - (1 << 31)).astype("<i4").tobytes()


def compute_job_vectors() -> dict:
    client, claimant, other = devnet_keypairs(3)
    job = make_job(20, 200, 24)
    honest = job.padded_product()
    root_c = commit_product(honest).root_c
    offer_id = compute_offer_id(client.address, 0)
    offer = job_tx(client, 0, KIND_OFFER, job.job_id, job.offer(50_000, 60_000, 50_001, 101))
    claim = job_tx(claimant, 0, KIND_CLAIM, offer_id, ClaimPayload(root_c))
    accept = job_tx(client, 1, KIND_ACCEPT, offer_id, None)
    bad = honest.copy()
    bad[3, 4] += 1
    fraud = job_tx(other, 0, KIND_FRAUD, offer_id, job.fraud(bad, 0, 0))
    fraud_raw = encode_tx(fraud)
    tile = fixed_tile()
    return {
        "K_leaf_C": K("leaf-C").hex(),
        "K_offer": K("offer").hex(),
        "leaf_c_tile": tile.hex(),
        "leaf_c": leaf_c(1, 2, tile).hex(),
        "root_a": job.commit.root_a.hex(),
        "root_b": job.commit.root_b.hex(),
        "job_id": job.job_id.hex(),
        "root_c": root_c.hex(),
        "root_c_wrong": commit_product(bad).root_c.hex(),
        "offer_id": offer_id.hex(),
        "offer_tx": encode_tx(offer).hex(),
        "claim_tx": encode_tx(claim).hex(),
        "accept_tx": encode_tx(accept).hex(),
        "fraud_tx": fraud_raw.hex(),
        "fraud_tx_blake3": H(fraud_raw).hex(),
        "fraud_tx_id": compute_tx_id(fraud).hex(),
        "fraud_size": compute_fraud_size(20, 200, 24),
    }


if __name__ == "__main__":
    print(json.dumps(compute_job_vectors(), indent=2))
