"""Claimed products and the claim-key miner (section 11, node/claims.py, node/claimer.py): products withheld until
their claim confirms, the bounds and eviction rule, a restart, the paid-first queue, claim building, the claim and
settle flow, and the claim key from a keystore."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from consensus.jobmarket import compute_offer_id
from consensus.keys import DEVNET_MNEMONIC, keypair_from_mnemonic
from consensus.networks import DEVNET
from consensus.tx import compute_min_fee, compute_tx_id, validate_tx
from consensus.types import KIND_CLAIM, KIND_SETTLE, RECORD_CLAIMED, RECORD_OPEN, Account, ClaimPayload, JobRecord
from node.blobs import BlobStore, encode_npy
from node.claimer import Claimer, best_offer, build_claim, load_claim_key
from node.claims import ClaimError, ClaimProduct, ClaimProducts, OfferIndex, product_root
from node.errors import StartupError
from node.jobs import DONE, JobService
from p2p.protocol import JobResultAnnouncement, decode_job_message
from pouw.tiles import compute_root_c
from tests.support.jobmarket import make_job
from tests.support.memstore import MemoryStore

CLIENT = keypair_from_mnemonic(DEVNET_MNEMONIC, index=0)
CLAIMANT = keypair_from_mnemonic(DEVNET_MNEMONIC, index=1)
JOB = make_job(20, 40, 12)
W = DEVNET.job_window


def record(job=JOB, *, status=RECORD_OPEN, reward=1000, bond=50_000, deadline=500, root_c=bytes(32),
           claim_height=0, claimant=bytes(20)) -> JobRecord:
    return JobRecord(status, CLIENT.address, job.job_id, job.m, job.k, job.n, job.commit.root_a, job.commit.root_b,
                     reward, 50_000, bond, deadline, claimant, root_c, claim_height)


OFFER = compute_offer_id(CLIENT.address, 0)
ROOT = product_root(JOB.product(), record())


@pytest.fixture
def blobs(tmp_path):
    return BlobStore(tmp_path / "blobs")


def npy(c: np.ndarray) -> bytes:
    return encode_npy(np.ascontiguousarray(c, dtype=np.int32))


def test_a_product_is_withheld_until_its_claim_has_the_confirmations(blobs):
    index = OfferIndex()
    index.refresh([(OFFER, record())], 10)
    claims = ClaimProducts(blobs, MemoryStore(), index, confirmations=2)
    out = claims.take_upload(OFFER.hex(), npy(JOB.product()))
    assert out["root_c"] == ROOT.hex() == compute_root_c(JOB.product(), 32, 16).hex()
    digest = out["blob"]
    assert blobs.is_withheld(digest) and blobs.serve_page(digest, 0, 100) is None
    assert blobs.read_page(digest, 0, 6)[1] == b"\x93NUMPY"  # the node itself reads it
    assert claims.withholds_job(JOB.job_id)
    info = claims.product_info(OFFER)
    assert info["root_c_ok"] is False and info["freivalds_ok"] is None and info["source"] == "upload"

    claimed = record(status=RECORD_CLAIMED, root_c=ROOT, claim_height=11, claimant=CLAIMANT.address)
    served, gone = claims.update(lambda o: claimed, 11)  # one confirmation
    assert (served, gone) == ([], []) and blobs.is_withheld(digest)
    served, gone = claims.update(lambda o: claimed, 12)  # two
    assert [p.offer_id for p in served] == [OFFER] and gone == []
    assert not blobs.is_withheld(digest) and blobs.serve_page(digest, 0, 6)[1] == b"\x93NUMPY"
    assert not claims.withholds_job(JOB.job_id)
    assert claims.product_info(OFFER)["root_c_ok"] is True and claims.product_info(OFFER)["served"] is True
    assert claims.update(lambda o: claimed, 13) == ([], [])  # served once


def test_a_claim_with_another_root_serves_nothing(blobs):
    index = OfferIndex()
    index.refresh([(OFFER, record())], 10)
    claims = ClaimProducts(blobs, None, index, confirmations=1)
    digest = claims.take_upload(OFFER.hex(), npy(JOB.product()))["blob"]
    other = record(status=RECORD_CLAIMED, root_c=b"\x01" * 32, claim_height=11)
    assert claims.update(lambda o: other, 20) == ([], [])  # an upload is kept (the uploader may claim again)
    assert blobs.is_withheld(digest) and claims.product_info(OFFER)["root_c_ok"] is False


def test_upload_of_a_wrong_shape_or_an_unknown_offer_is_refused(blobs):
    index = OfferIndex()
    index.refresh([(OFFER, record())], 10)
    claims = ClaimProducts(blobs, None, index)
    with pytest.raises(ClaimError) as e:
        claims.take_upload(OFFER.hex(), npy(JOB.product()[:, :5]))
    assert e.value.kind == "invalid"
    with pytest.raises(ClaimError) as e:
        claims.take_upload("ab" * 32, npy(JOB.product()))
    assert e.value.kind == "not-found"
    assert claims.claim_shape(OFFER.hex()) == (20, 12) and claims.claim_shape("ab" * 32) is None


def test_freivalds_is_run_where_the_job_is_held(blobs):
    jobs = JobService(MemoryStore(), blobs)
    jobs.submit(blobs.put(encode_npy(JOB.a)), blobs.put(encode_npy(JOB.b)))
    index = OfferIndex()
    index.refresh([(OFFER, record())], 10)
    claims = ClaimProducts(blobs, None, index, jobs=jobs)
    claims.take_upload(OFFER.hex(), npy(JOB.product()))
    assert claims.product_info(OFFER)["freivalds_ok"] is True
    wrong = JOB.product()
    wrong[3, 4] += 1
    claims.take_upload(OFFER.hex(), npy(wrong))  # replaces the offer's product
    assert claims.product_info(OFFER)["freivalds_ok"] is False


def test_a_peers_product_is_kept_when_its_root_is_the_claims_even_if_wrong(blobs):
    jobs = JobService(MemoryStore(), blobs)
    jobs.submit(blobs.put(encode_npy(JOB.a)), blobs.put(encode_npy(JOB.b)))
    wrong = JOB.product()
    wrong[0, 0] -= 7
    wrong_root = product_root(wrong, record())
    claimed = record(status=RECORD_CLAIMED, root_c=wrong_root, claim_height=3)
    index = OfferIndex()
    index.refresh([(OFFER, claimed)], 10)
    claims = ClaimProducts(blobs, None, index, jobs=jobs)
    assert [o for o, _ in claims.wants_product(JOB.job_id)] == [OFFER]
    right = blobs.put(npy(JOB.product()))
    assert claims.take_from_peer(JOB.job_id, right, claims.wants_product(JOB.job_id)) == []  # not the claim's
    digest = blobs.put(npy(wrong))
    kept = claims.take_from_peer(JOB.job_id, digest, claims.wants_product(JOB.job_id))
    assert [p.offer_id for p in kept] == [OFFER]
    info = claims.product_info(OFFER)
    assert (info["root_c_ok"], info["freivalds_ok"], info["source"], info["blob"]) == (True, False, "peer", digest)
    assert claims.wants_product(JOB.job_id) == []
    assert digest in claims.referenced()


def offer_id(i: int) -> bytes:
    return compute_offer_id(CLIENT.address, 100 + i)


def test_bounds_evict_only_products_of_final_offers_oldest_first(blobs):
    index = OfferIndex()
    index.refresh([(offer_id(i), record()) for i in range(4)], 10)
    clock = iter(range(100, 1000))
    claims = ClaimProducts(blobs, MemoryStore(), index, max_products=2, clock=lambda: float(next(clock)))
    claims.take_upload(offer_id(0).hex(), npy(JOB.product()))
    claims.take_upload(offer_id(1).hex(), npy(JOB.product() + 1))
    with pytest.raises(ClaimError) as e:  # both offers live: nothing may go
        claims.take_upload(offer_id(2).hex(), npy(JOB.product() + 2))
    assert e.value.kind == "full"
    claims.update(lambda o: None if o in (offer_id(0), offer_id(1)) else record(), 10)  # both final now
    claims.take_upload(offer_id(2).hex(), npy(JOB.product() + 2))
    assert claims.get(offer_id(0)) is None and claims.get(offer_id(1)) is not None  # the oldest went
    assert claims.counts()["held"] == 2


def test_products_survive_a_restart(blobs):
    store = MemoryStore()
    index = OfferIndex()
    index.refresh([(OFFER, record())], 10)
    ClaimProducts(blobs, store, index).take_upload(OFFER.hex(), npy(JOB.product()))
    again = ClaimProducts(blobs, store, index)
    assert again.product_info(OFFER)["root_c"] == ROOT.hex()
    assert again.withholds_job(JOB.job_id)


def test_the_queue_takes_paid_jobs_first_by_reward_per_multiply_add(blobs):
    clock = iter(range(1000))
    jobs = JobService(MemoryStore(), blobs, clock=lambda: float(next(clock)))
    free = jobs.submit(blobs.put(encode_npy(JOB.a)), blobs.put(encode_npy(JOB.b)))
    big, small = make_job(40, 300, 40), make_job(16, 256, 16)
    cheap = jobs.submit(blobs.put(encode_npy(big.a)), blobs.put(encode_npy(big.b)))
    dear = jobs.submit(blobs.put(encode_npy(small.a)), blobs.put(encode_npy(small.b)))
    index = OfferIndex()
    # The same reward: the smaller job pays more per multiply-add.
    index.refresh([(offer_id(0), record(big, reward=10_000)), (offer_id(1), record(small, reward=10_000))], 5)
    jobs.set_priority(index.reward_per_mac)
    order = []
    while (taken := jobs.take_next()) is not None:
        order.append(taken[0].job_id)
    assert order == [dear.job_id, cheap.job_id, free.job_id]


def test_build_claim_pays_the_minimum_fee_and_is_valid():
    tx = build_claim(CLAIMANT, DEVNET, 7, OFFER, ROOT)
    assert tx.body.kind == KIND_CLAIM and tx.body.payload == ClaimPayload(ROOT) and tx.body.nonce == 7
    assert tx.body.fee == compute_min_fee(tx, DEVNET.min_fee_per_byte)
    validate_tx(tx, DEVNET)


def test_best_offer_recomputes_the_job_id_and_skips_offers_past_deadline(blobs):
    jobs = JobService(MemoryStore(), blobs)
    job = jobs.submit(blobs.put(encode_npy(JOB.a)), blobs.put(encode_npy(JOB.b)))
    roots = (JOB.commit.root_a, JOB.commit.root_b)
    offers = [(offer_id(0), record(reward=5)), (offer_id(1), record(reward=9)),
              (offer_id(2), record(reward=99, deadline=10))]
    assert best_offer(offers, job, roots, 9)[0] == offer_id(2)  # the next block, 10, may still claim it
    assert best_offer(offers, job, roots, 10)[0] == offer_id(1)  # past its deadline at the next block
    assert best_offer(offers, job, (roots[1], roots[0]), 5) is None  # not the matrices' job id


@dataclass
class Snap:
    height: int
    records: dict = field(default_factory=dict)
    balance: int = 10**12

    def get_account(self, address: bytes) -> Account:
        return Account(self.balance, 0)

    def get_job_record(self, offer_id: bytes) -> JobRecord | None:
        return self.records.get(offer_id)


class FakeMempool:
    def __init__(self) -> None:
        self.txs: dict[bytes, object] = {}
        self.nonce = 0

    def pending_nonce(self, sender: bytes) -> int:
        return self.nonce

    def pending_cost(self, sender: bytes) -> int:
        return 0

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self.txs


class FakeTxs:
    def __init__(self, mempool: FakeMempool) -> None:
        self.mempool = mempool
        self.sent: list = []

    async def submit(self, tx, source: str) -> bytes:
        txid = compute_tx_id(tx)
        self.sent.append(tx)
        self.mempool.txs[txid] = tx
        self.mempool.nonce += 1
        return txid


def test_the_claimer_claims_serves_after_confirmations_and_settles_after_the_window(blobs):
    async def main():
        jobs = JobService(MemoryStore(), blobs)
        job = jobs.submit(blobs.put(encode_npy(JOB.a)), blobs.put(encode_npy(JOB.b)))
        taken = jobs.take_next()
        assert taken is not None
        snap = Snap(20, {OFFER: record()})
        index = OfferIndex()
        claims = ClaimProducts(blobs, MemoryStore(), index, jobs=jobs, confirmations=2)
        mempool = FakeMempool()
        txs = FakeTxs(mempool)
        announced: list[bytes] = []

        async def announce(data: bytes) -> bool:
            announced.append(data)
            return True

        async def read_records(limit):
            return list(snap.records.items())

        with ThreadPoolExecutor(1) as work:
            claimer = Claimer(key=CLAIMANT, params=DEVNET, snapshot=lambda: snap, read_records=read_records,
                              txs=txs, mempool=mempool, products=claims, index=index, jobs=jobs, work=work)
            claimer.announce = announce
            await claimer.refresh()
            assert await claimer.hold(job)
            assert claims.withholds_job(JOB.job_id)
            done = jobs.finish(job.job_id, JOB.padded_product())
            assert done.status == DONE
            txid = await claimer.claimed(done, (taken[1].commitment.root_a, taken[1].commitment.root_b))
            [claim] = txs.sent
            assert compute_tx_id(claim) == txid and claim.body.id == OFFER
            assert claim.body.payload == ClaimPayload(ROOT) and claim.body.pubkey == CLAIMANT.public_key
            assert claims.withholds_job(JOB.job_id) and announced == []
            assert blobs.is_withheld(done.result["c"])

            claimed = replace(record(), status=RECORD_CLAIMED, claimant=CLAIMANT.address, root_c=ROOT,
                              claim_height=21)
            snap = Snap(21, {OFFER: claimed})
            await claimer.on_tip((), (), snap)
            assert announced == []  # one confirmation
            snap = Snap(22, {OFFER: claimed})
            await claimer.on_tip((), (), snap)
            [msg] = announced
            ann = decode_job_message(msg)
            assert isinstance(ann, JobResultAnnouncement) and ann.job_id == JOB.job_id
            assert ann.blob_c.hex() == done.result["c"] and not blobs.is_withheld(done.result["c"])
            assert len(txs.sent) == 1  # the window is open: no settle yet

            snap = Snap(21 + W, {OFFER: claimed})  # the next block, 22 + W, is past the window
            await claimer.on_tip((), (), snap)
            settle = txs.sent[-1]
            assert settle.body.kind == KIND_SETTLE and settle.body.id == OFFER and len(txs.sent) == 2
            await claimer.on_tip((), (), snap)
            assert len(txs.sent) == 2  # pending already: not sent again
            info = claimer.info()
            assert info["claims_sent"] == 1 and info["settles_sent"] == 1
            assert info["address"].startswith(DEVNET.hrp)

    asyncio.run(main())


def test_without_an_open_offer_or_a_key_nothing_is_held(blobs):
    async def main():
        jobs = JobService(MemoryStore(), blobs)
        job = jobs.submit(blobs.put(encode_npy(JOB.a)), blobs.put(encode_npy(JOB.b)))
        index = OfferIndex()
        claims = ClaimProducts(blobs, None, index)
        mempool = FakeMempool()

        async def no_records(limit):
            return []

        with ThreadPoolExecutor(1) as work:
            for key in (CLAIMANT, None):
                claimer = Claimer(key=key, params=DEVNET, snapshot=lambda: Snap(5), read_records=no_records,
                                  txs=FakeTxs(mempool), mempool=mempool, products=claims, index=index, jobs=jobs,
                                  work=work)
                assert not await claimer.hold(job)
            index.refresh([(OFFER, record())], 5)
            assert not await claimer.hold(job)  # no key
            assert claimer.info()["address"] is None

    asyncio.run(main())


def test_the_claim_key_comes_from_a_keystore(tmp_path):
    from wallet.keystore import Secret, create

    ks = create(tmp_path, "claims", "devnet", Secret(DEVNET_MNEMONIC), "right horse", scrypt_n=1 << 4)
    good = tmp_path / "pass"
    good.write_text("right horse\n")
    assert load_claim_key(ks.path, good, 1, "devnet").address == CLAIMANT.address
    bad = tmp_path / "bad"
    bad.write_text("wrong")
    with pytest.raises(StartupError, match="wrong passphrase"):
        load_claim_key(ks.path, bad, 0, "devnet")
    with pytest.raises(StartupError, match="no keystore file"):
        load_claim_key(tmp_path / "missing.json", good, 0, "devnet")
    with pytest.raises(StartupError, match="cannot read"):
        load_claim_key(ks.path, tmp_path / "nope", 0, "devnet")
    with pytest.raises(StartupError, match="is for devnet"):
        load_claim_key(ks.path, good, 0, "regtest")
    with pytest.raises(StartupError) as e:
        load_claim_key(ks.path, good, 0, "regtest")
    assert "right horse" not in str(e.value)



def test_a_copy_of_the_nodes_claim_that_won_never_serves_its_product(blobs):
    """Section 11: the honest claimant serves only after its own claim confirms, so a front-runner is not paid."""
    index = OfferIndex()
    claims = ClaimProducts(blobs, None, index, confirmations=1)
    digest = blobs.put(npy(JOB.product()))
    claims.add(ClaimProduct(OFFER, JOB.job_id, digest, b"h" * 32, ROOT, 20, 12, 10, True, "mined", 0.0,
                            claimant=CLAIMANT.address))
    thief = record(status=RECORD_CLAIMED, root_c=ROOT, claim_height=5, claimant=b"\x66" * 20)
    assert claims.update(lambda o: thief, 30) == ([], [])
    assert blobs.is_withheld(digest) and claims.withholds_job(JOB.job_id)
    served, gone = claims.update(lambda o: None, 31)  # final (the client rejected): a plain result now
    assert served == [] and [p.offer_id for p in gone] == [OFFER] and claims.get(OFFER) is None
    ours = record(status=RECORD_CLAIMED, root_c=ROOT, claim_height=5, claimant=CLAIMANT.address)
    claims.add(ClaimProduct(OFFER, JOB.job_id, digest, b"h" * 32, ROOT, 20, 12, 10, True, "mined", 0.0,
                            claimant=CLAIMANT.address))
    assert [p.offer_id for p in claims.update(lambda o: ours, 30)[0]] == [OFFER]


def test_an_offer_for_a_job_already_done_is_claimed_with_the_product_at_hand(blobs):
    """A free job done first, then paid for (same matrices, same job id): the offer's block makes the claim-key
    node claim it at once, with the product it has, after recomputing the roots from the blobs."""
    from consensus.types import KIND_OFFER
    from tests.support.jobmarket import job_tx, make_block

    async def main():
        jobs = JobService(MemoryStore(), blobs)
        job = jobs.submit(blobs.put(encode_npy(JOB.a)), blobs.put(encode_npy(JOB.b)))
        assert jobs.take_next() is not None
        done = jobs.finish(job.job_id, JOB.padded_product())
        assert done.status == DONE
        snap = Snap(30, {OFFER: record()})
        index = OfferIndex()
        claims = ClaimProducts(blobs, MemoryStore(), index, jobs=jobs, confirmations=2)
        mempool = FakeMempool()
        txs = FakeTxs(mempool)

        async def read_records(limit):
            return list(snap.records.items())

        offer = job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(1000, 50_000, 50_000, 500), params=DEVNET)
        with ThreadPoolExecutor(1) as work:
            claimer = Claimer(key=CLAIMANT, params=DEVNET, snapshot=lambda: snap, read_records=read_records,
                              txs=txs, mempool=mempool, products=claims, index=index, jobs=jobs, work=work)
            await claimer.on_tip((make_block(30, [offer]),), (), snap)
            [claim] = txs.sent
            assert claim.body.kind == KIND_CLAIM and claim.body.id == OFFER
            assert claim.body.payload == ClaimPayload(ROOT)
            await claimer.on_tip((make_block(30, [offer]),), (), snap)  # seen again (a reorg back): not twice
            assert len(txs.sent) == 1

    asyncio.run(main())
