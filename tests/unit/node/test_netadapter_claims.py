"""The network side of claimed products (node/netadapter.py with node/claims.py): a peer's product that matches an
on-chain claim is kept for the offer even when Freivalds fails (no fault of the relay), a withheld product is
neither served nor announced."""

from __future__ import annotations

import numpy as np

from consensus.types import RECORD_CLAIMED, JobRecord
from node.blobs import encode_npy
from node.claims import ClaimProduct, ClaimProducts, OfferIndex, product_root
from node.events import JobChanged
from p2p.protocol import JobAnnouncement, JobResultAnnouncement, decode_job_message
from pouw.hashing import H
from tests.unit.node.test_netadapter import job_pair, miner_net  # noqa: F401 (a fixture)

OFFER = b"\x07" * 32


def claimed_record(job_id: bytes, root_c: bytes, claim_height: int) -> JobRecord:
    return JobRecord(RECORD_CLAIMED, b"\x01" * 20, job_id, 16, 16, 16, bytes(32), bytes(32), 10, 10, 10, 99,
                     b"\x02" * 20, root_c, claim_height)


def product(a, b) -> np.ndarray:
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


async def test_a_wrong_product_matching_the_claim_is_kept_for_the_offer_and_not_blamed(miner_net):  # noqa: F811
    net, host = miner_net
    a_bytes, b_bytes, a, b, job_id = job_pair(5)
    job = net.jobs.submit(net.blobs.put(a_bytes), net.blobs.put(b_bytes))
    wrong_c = product(a, b)
    wrong_c[2, 3] -= 1
    wrong = encode_npy(wrong_c)
    rec = claimed_record(job_id, b"", 0)
    index = OfferIndex()
    index.refresh([(OFFER, claimed_record(job_id, product_root(wrong_c, rec), 8))], 10)
    net.claims = ClaimProducts(net.blobs, None, index, jobs=net.jobs, confirmations=2)
    host.blobs["p1"] = {H(wrong): wrong}
    await net.on_job_announcement(JobResultAnnouncement(job_id, H(wrong), H(b"c"), 0).encode(), "p1")
    await net.wait_fetches()
    assert net.jobs.get(job.job_id).status == "queued"  # a wrong product does not finish the job
    assert net.network.scoring.score("p1") == 0  # relaying the claimed product is no fault
    info = net.claims.product_info(OFFER)
    assert info["blob"] == H(wrong).hex() and info["root_c_ok"] is True and info["freivalds_ok"] is False
    assert net.blobs.has(H(wrong).hex())
    assert info["served"] is True  # the claim has 3 confirmations at the index's tip
    assert await net.get_blob_page(H(wrong).hex(), 0, 8) is not None


async def test_a_product_matching_no_claim_and_failing_freivalds_is_treated_as_before(miner_net):  # noqa: F811
    net, host = miner_net
    a_bytes, b_bytes, a, b, job_id = job_pair(6)
    job = net.jobs.submit(net.blobs.put(a_bytes), net.blobs.put(b_bytes))
    wrong_c = product(a, b)
    wrong_c[0, 0] += 1
    wrong = encode_npy(wrong_c)
    index = OfferIndex()
    index.refresh([(OFFER, claimed_record(job_id, b"\x09" * 32, 8))], 10)
    net.claims = ClaimProducts(net.blobs, None, index, jobs=net.jobs)
    host.blobs["p1"] = {H(wrong): wrong}
    await net.on_job_announcement(JobResultAnnouncement(job_id, H(wrong), H(b"c"), 0).encode(), "p1")
    await net.wait_fetches()
    assert net.jobs.get(job.job_id).status == "queued" and net.network.scoring.score("p1") == -20
    assert net.claims.product_info(OFFER) is None and not net.blobs.has(H(wrong).hex())


async def test_a_withheld_product_is_neither_served_nor_announced(miner_net):  # noqa: F811
    net, _ = miner_net
    a_bytes, b_bytes, a, b, job_id = job_pair(7)
    net.jobs.submit(net.blobs.put(a_bytes), net.blobs.put(b_bytes))
    taken = net.jobs.take_next()
    assert taken is not None
    index = OfferIndex()
    net.claims = ClaimProducts(net.blobs, None, index, jobs=net.jobs)
    net.claims.hold_job(job_id)  # the claimer holds it while its claim is sent
    done = net.jobs.finish(job_id.hex(), taken[1].a.astype(np.int32) @ taken[1].b.astype(np.int32))
    assert done.status == "done"
    await net._on_job_changed(JobChanged(done))
    assert net.network.announced == []
    net.claims.release_job(job_id)
    await net._on_job_changed(JobChanged(done))
    assert len(net.network.announced) == 1
    digest = done.result["c"]
    assert await net.get_blob_page(digest, 0, 8) is not None
    net.claims.add(ClaimProduct(OFFER, job_id, digest, b"\0" * 32, b"\0" * 32, 16, 16, 100, True, "mined", 0.0))
    assert await net.get_blob_page(digest, 0, 8) is None  # unserved claim product: as if missing
    assert net.claims.withholds_job(job_id)


async def test_a_job_announced_again_is_answered_with_a_served_claim_product_not_mined_again(miner_net):  # noqa: F811
    net, host = miner_net
    a_bytes, b_bytes, a, b, job_id = job_pair(8)
    c = encode_npy(product(a, b))
    digest = net.blobs.put(c)
    net.claims = ClaimProducts(net.blobs, None, OfferIndex(), jobs=net.jobs)
    net.claims.add(ClaimProduct(OFFER, job_id, digest, b"\x05" * 32, b"\x06" * 32, 16, 16, len(c), None, "upload",
                                0.0, served=True))
    await net.on_job_announcement(JobAnnouncement(job_id, H(a_bytes), H(b_bytes), 16, 16, 16).encode(), "p1")
    await net.wait_fetches()
    [msg] = net.network.announced
    ann = decode_job_message(msg)
    assert isinstance(ann, JobResultAnnouncement) and ann.blob_c.hex() == digest and ann.c_blake3 == b"\x05" * 32
    assert host.requests == [] and net.jobs.list() == []  # nothing fetched, nothing queued
