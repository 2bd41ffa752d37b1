"""A small chain of paid-job blocks for the address index and explorer tests (section 11), really mined.

Branch A from genesis: block 1 offers job ``JOB`` (key 0, offer ``OFFER_1``);
block 2 claims it (key 1) and carries a second offer (key 2, ``OFFER_2``) and
its claim (key 3) of a wrong product; block 3 accepts ``OFFER_1`` (key 0) and
proves ``OFFER_2`` wrong (key 4). Branch B from genesis: four blocks of
transfers (key 3 pays key 4), heavier than A's three; ``extend_a`` makes A
heavier again.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.jobmarket import compute_offer_id
from consensus.keys import devnet_keypairs
from consensus.tx import make_transfer
from consensus.types import KIND_ACCEPT, KIND_CLAIM, KIND_FRAUD, KIND_OFFER, Block, ClaimPayload, Tx
from pouw.tiles import commit_product
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.jobmarket import job_tx, make_job

P = easy_params()
KEYS = devnet_keypairs(6)
ADDR = [k.address for k in KEYS]
JOB = make_job(20, 200, 24)
REWARD, DEPOSIT, BOND = 70_000, 80_000, 70_001
OFFER_1 = compute_offer_id(ADDR[0], 0)
OFFER_2 = compute_offer_id(ADDR[2], 0)
WRONG = JOB.padded_product().copy()
WRONG[5, 30] = 1  # column 30 >= n = 24: a non-zero entry in the padding, provable
WRONG_COMMIT = commit_product(WRONG)
RIGHT_ROOT_C = commit_product(JOB.padded_product()).root_c


@dataclass
class JobChain:
    builder: ChainBuilder
    a: list[Block]
    b: list[Block]
    txs: dict[str, Tx]

    def extend_a(self, count: int) -> list[Block]:
        return self.builder.extend(self.a[-1].header.block_id, count, transfers=[])


def job_chain() -> JobChain:
    builder = ChainBuilder(P, coinbase_to=ADDR[5])
    txs = {
        "offer1": job_tx(KEYS[0], 0, KIND_OFFER, JOB.job_id, JOB.offer(REWARD, DEPOSIT, BOND, 50), params=P),
        "claim1": job_tx(KEYS[1], 0, KIND_CLAIM, OFFER_1, ClaimPayload(RIGHT_ROOT_C), params=P),
        "offer2": job_tx(KEYS[2], 0, KIND_OFFER, JOB.job_id, JOB.offer(REWARD, DEPOSIT, BOND, 50), params=P),
        "claim2": job_tx(KEYS[3], 0, KIND_CLAIM, OFFER_2, ClaimPayload(WRONG_COMMIT.root_c), params=P),
        "accept1": job_tx(KEYS[0], 1, KIND_ACCEPT, OFFER_1, None, params=P),
        "fraud2": job_tx(KEYS[4], 0, KIND_FRAUD, OFFER_2, JOB.fraud(WRONG, 0, 1, WRONG_COMMIT), params=P),
    }
    a, parent = [], builder.genesis_id
    for names in (["offer1"], ["claim1", "offer2", "claim2"], ["accept1", "fraud2"]):
        a.append(builder.child(parent, [txs[n] for n in names]))
        parent = a[-1].header.block_id
    b, parent = [], builder.genesis_id
    for i in range(4):
        pay = make_transfer(KEYS[3], P.chain_id, i, ADDR[4], 1000 + i, 500)
        b.append(builder.child(parent, [pay], spacing=7, coinbase_to=ADDR[4]))
        parent = b[-1].header.block_id
    return JobChain(builder, a, b, txs)
