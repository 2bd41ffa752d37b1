"""The job service on the in-memory store: content-addressed jobs, the queue, checked results, restarts; the limits
checked at submission, peers' shares and expiry, the blobs live jobs reference, and jobs that never get stuck."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from node import jobs as jobs_module
from node import schema
from node.blobs import BlobError, BlobStore, encode_npy
from node.jobs import Job, JobError, JobService, JobStatus
from node.store import WriteBatch
from tests.support.memstore import MemoryStore


@pytest.fixture
def blobs(tmp_path):
    return BlobStore(tmp_path / "blobs")


def matrices(seed=1, m=20, k=40, n=12):
    rng = np.random.default_rng(seed)
    return rng.integers(-64, 64, (m, k), dtype=np.int8), rng.integers(-64, 64, (k, n), dtype=np.int8)


def submit(service: JobService, blobs: BlobStore, seed=1, **shape):
    a, b = matrices(seed, **shape)
    return service.submit(blobs.put(encode_npy(a)), blobs.put(encode_npy(b))), a, b


def product_of(a, b):
    return a.astype(np.int64) @ b.astype(np.int64)


def test_jobs_are_content_addressed_and_queued(blobs):
    service = JobService(MemoryStore(), blobs)
    job, _, _ = submit(service, blobs)
    again, _, _ = submit(service, blobs)
    assert again.job_id == job.job_id and job.status == JobStatus.QUEUED
    assert service.has_queued() and service.counts()["queued"] == 1


def test_the_queue_has_a_limit(blobs):
    service = JobService(MemoryStore(), blobs, max_queued=2)
    submit(service, blobs, 1)
    submit(service, blobs, 2)
    with pytest.raises(JobError) as e:
        submit(service, blobs, 3)
    assert e.value.kind == "queue-full"


def test_too_large_and_mismatched_jobs_are_refused(blobs):
    service = JobService(MemoryStore(), blobs, max_elements=16 * 256)
    with pytest.raises(JobError) as e:
        submit(service, blobs, m=64, k=300, n=16)
    assert e.value.kind == "too-large"
    a, _ = matrices()
    with pytest.raises(JobError) as e:
        service.submit(blobs.put(encode_npy(a)), blobs.put(encode_npy(a)))
    assert e.value.kind == "invalid" and "inner dimensions" in str(e.value)
    with pytest.raises(BlobError):
        service.submit("00" * 32, "11" * 32)


def test_a_mined_product_is_checked_and_stored(blobs):
    service = JobService(MemoryStore(), blobs)
    job, a, b = submit(service, blobs)
    taken, prepared = service.take_next()
    assert taken.job_id == job.job_id and service.get(job.job_id).status == JobStatus.MINING
    padded = prepared.a.astype(np.int64) @ prepared.b.astype(np.int64)  # what the miner's peel yields
    done = service.finish(job.job_id, padded)
    assert done.status == JobStatus.DONE and done.result["freivalds"]["passed"]
    c = np.load(io.BytesIO(blobs.get(done.result["c"])))
    assert c.dtype == np.int32 and np.array_equal(c, product_of(a, b))


def test_a_wrong_product_fails_the_job(blobs):
    service = JobService(MemoryStore(), blobs)
    job, a, b = submit(service, blobs)
    _, prepared = service.take_next()
    wrong = prepared.a.astype(np.int64) @ prepared.b.astype(np.int64)
    wrong[0, 0] += 1
    assert service.finish(job.job_id, wrong).status == JobStatus.FAILED


def test_a_peers_wrong_product_is_refused_and_leaves_the_job_waiting(blobs):
    service = JobService(MemoryStore(), blobs)
    job, a, b = submit(service, blobs)
    wrong = product_of(a, b).astype(np.int32)
    wrong[3, 2] ^= 1
    with pytest.raises(JobError):
        service.finish_from_peer(job.job_id, encode_npy(wrong))
    with pytest.raises(JobError):
        service.finish_from_peer(job.job_id, b"not a npy file")
    assert service.get(job.job_id).status == JobStatus.QUEUED
    right = service.finish_from_peer(job.job_id, encode_npy(product_of(a, b).astype(np.int32)))
    assert right.status == JobStatus.DONE and right.result["computed_by"] == "peer"


def test_matrices_are_parsed_once_from_submission_to_the_check(blobs, monkeypatch):
    service = JobService(MemoryStore(), blobs)
    a, b = matrices(5)
    a_blob, b_blob = blobs.put(encode_npy(a)), blobs.put(encode_npy(b))
    calls = []
    real = jobs_module.load_matrix
    monkeypatch.setattr(jobs_module, "load_matrix", lambda *args, **kw: calls.append(args[1]) or real(*args, **kw))
    job = service.submit(a_blob, b_blob, (a, b))  # the RPC parsed them while storing them
    _, prepared = service.take_next()
    service.finish(job.job_id, prepared.a.astype(np.int64) @ prepared.b.astype(np.int64))
    assert calls == [] and service.get(job.job_id).status == JobStatus.DONE


def test_a_restart_puts_an_interrupted_job_back_in_the_queue(blobs):
    store = MemoryStore()
    service = JobService(store, blobs)
    job, a, b = submit(service, blobs)
    service.take_next()
    restarted = JobService(store, blobs)
    assert restarted.get(job.job_id).status == JobStatus.QUEUED
    taken, prepared = restarted.take_next()  # reloaded from the blobs and committed again
    assert restarted.finish(job.job_id, prepared.a.astype(np.int64) @ prepared.b.astype(np.int64)).status == "done"


def test_listeners_get_a_copy_of_each_change(blobs):
    seen = []
    service = JobService(MemoryStore(), blobs, on_change=seen.append)
    job, _, _ = submit(service, blobs)
    service.cancel(job.job_id)
    assert [j.status for j in seen] == [JobStatus.QUEUED, JobStatus.CANCELLED]
    assert seen[0] is not seen[1]
    with pytest.raises(JobError) as e:
        service.cancel(job.job_id)
    assert e.value.kind == "cannot-cancel"


# --- limits checked at submission -----------------------------------------------------------------


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_the_products_size_is_checked_when_the_job_is_submitted(tmp_path):
    # 64x64 int32 is 16384 bytes of data and 128 of header: one byte less and no job of that shape fits.
    blobs = BlobStore(tmp_path / "blobs", max_bytes=16384 + 128 - 1)
    service = JobService(MemoryStore(), blobs)
    with pytest.raises(JobError) as e:
        submit(service, blobs, m=64, k=16, n=64)
    assert e.value.kind == "too-large"
    assert "16512 bytes as .npy, over the blob limit of 16511 bytes: m*n may be at most 4095 entries" in str(e.value)
    assert service.list() == []
    job, _, _ = submit(service, blobs, m=64, k=16, n=63)  # 4032 entries: fits
    assert job.status == JobStatus.QUEUED


def test_the_documented_maximum_follows_from_the_blob_limit():
    limit = 64 * 1024 * 1024
    assert jobs_module.max_product_entries(limit) == 16_777_184  # not 4096 * 4096 = 16,777,216
    with pytest.raises(JobError, match="67108992 bytes as .npy, over the blob limit of 67108864"):
        jobs_module.check_job_shape(4096, 4096, 4096, max_blob_bytes=limit)
    assert jobs_module.check_job_shape(4096, 4096, 4095, max_blob_bytes=limit) == (4096, 4096, 4096)
    with pytest.raises(JobError, match="16777216 entries per padded matrix"):
        jobs_module.check_matrix_shape(5000, 5000, max_blob_bytes=limit)
    jobs_module.check_matrix_shape(4096, 4096, max_blob_bytes=limit)  # as B of an m=1 job
    with pytest.raises(JobError) as e:
        jobs_module.check_job_shape(16, 65536 + 128, 16, max_blob_bytes=limit)
    assert e.value.kind == "invalid"  # beyond the protocol's shape rules, not just this node's limits


def test_a_too_large_job_is_refused_from_the_headers_before_the_matrices_are_read(blobs, monkeypatch):
    service = JobService(MemoryStore(), blobs, max_elements=16 * 256)
    a, b = matrices(m=64, k=300, n=16)
    a_blob, b_blob = blobs.put(encode_npy(a)), blobs.put(encode_npy(b))
    monkeypatch.setattr(jobs_module, "load_matrix", lambda *args, **kw: pytest.fail("the matrix was read"))
    with pytest.raises(JobError) as e:
        service.submit(a_blob, b_blob)
    assert e.value.kind == "too-large"


# --- origins, peers' shares and expiry ------------------------------------------------------------


def test_the_origin_is_recorded_and_old_records_load_as_local(blobs):
    store = MemoryStore()
    service = JobService(store, blobs)
    local, _, _ = submit(service, blobs, 1)
    a, b = matrices(2)
    theirs = service.submit(blobs.put(encode_npy(a)), blobs.put(encode_npy(b)), origin="peer-x")
    assert local.origin == "local" and theirs.origin == "peer-x"
    assert service.get(theirs.job_id).to_json()["origin"] == "peer-x"
    record = json.loads(Job.decode(local.encode()).encode())
    del record["origin"], record["attempts"]  # a record written before either existed
    batch = WriteBatch()
    batch.put(schema.job_key(bytes.fromhex(local.job_id)), json.dumps(record).encode())
    store.write(batch)
    restarted = JobService(store, blobs)
    assert restarted.get(local.job_id).origin == "local" and restarted.get(theirs.job_id).origin == "peer-x"


def test_peers_jobs_are_limited_per_peer_and_leave_room_for_local_ones(blobs):
    service = JobService(MemoryStore(), blobs, max_queued=12)  # 3 slots kept for local jobs, 9 for peers
    seed = iter(range(100, 200))

    def from_peer(peer):
        a, b = matrices(next(seed), m=16, k=16, n=16)
        return service.submit(blobs.put(encode_npy(a)), blobs.put(encode_npy(b)), origin=peer)

    for _ in range(jobs_module.MAX_JOBS_PER_PEER):
        from_peer("p1")
    with pytest.raises(JobError) as e:
        from_peer("p1")
    assert e.value.kind == "queue-full" and "peer p1" in str(e.value)
    with pytest.raises(JobError):
        service.peer_room("p1")
    service.peer_room("p2")
    from_peer("p2")
    with pytest.raises(JobError) as e:
        from_peer("p3")  # 9 peer jobs: the peers' share is used up
    assert e.value.kind == "queue-full" and "kept for local jobs" in str(e.value)
    for i in range(3):  # local submissions still get their reserved slots
        submit(service, blobs, 300 + i, m=16, k=16, n=16)
    with pytest.raises(JobError) as e:
        submit(service, blobs, 400, m=16, k=16, n=16)
    assert e.value.kind == "queue-full"
    with pytest.raises(JobError):  # jobs being fetched count as waiting
        service.peer_room("p4", pending=0, pending_peers=0)


def test_fetches_in_flight_count_against_a_peers_share(blobs):
    service = JobService(MemoryStore(), blobs, max_queued=64)
    service.peer_room("p", pending=jobs_module.MAX_JOBS_PER_PEER - 1)
    with pytest.raises(JobError):
        service.peer_room("p", pending=jobs_module.MAX_JOBS_PER_PEER)
    with pytest.raises(JobError):
        service.peer_room("q", pending_peers=service.max_peer_jobs)


def test_peers_jobs_expire_and_their_blobs_are_released(tmp_path):
    clock = Clock()
    blobs = BlobStore(tmp_path / "blobs", clock=clock)
    service = JobService(MemoryStore(), blobs, clock=clock)
    local, _, _ = submit(service, blobs, 1)
    a, b = matrices(2)
    theirs = service.submit(blobs.put(encode_npy(a)), blobs.put(encode_npy(b)), origin="peer-x")
    assert {theirs.a, theirs.b, local.a, local.b} <= service.referenced_blobs()
    clock.now += jobs_module.PEER_JOB_TTL - 1
    assert service.expire() == []
    clock.now += 2
    assert [j.job_id for j in service.expire()] == [theirs.job_id]
    expired = service.get(theirs.job_id)
    assert expired.status == JobStatus.CANCELLED and expired.error.startswith("expired")
    assert service.get(local.job_id).status == JobStatus.QUEUED  # local jobs never expire
    assert not blobs.has(theirs.a) and not blobs.has(theirs.b)
    assert service.referenced_blobs() == {local.a, local.b}
    taken, _ = service.take_next()
    assert taken.job_id == local.job_id


def test_which_blobs_live_jobs_reference(tmp_path):
    clock = Clock()
    blobs = BlobStore(tmp_path / "blobs", clock=clock)
    service = JobService(MemoryStore(), blobs, clock=clock)
    done, a, b = submit(service, blobs, 1)
    _, prepared = service.take_next()
    product = service.finish(done.job_id, prepared.a.astype(np.int64) @ prepared.b.astype(np.int64)).result["c"]
    x, y = matrices(2)
    peer_done = service.submit(blobs.put(encode_npy(x)), blobs.put(encode_npy(y)), origin="peer-x")
    _, prepared = service.take_next()
    peer_product = service.finish(peer_done.job_id,
                                  prepared.a.astype(np.int64) @ prepared.b.astype(np.int64)).result["c"]
    cancelled, _, _ = submit(service, blobs, 3)
    service.cancel(cancelled.job_id)
    queued, _, _ = submit(service, blobs, 4)
    # Done: only the product; cancelled: nothing; queued: A and B.
    assert service.referenced_blobs() == {product, peer_product, queued.a, queued.b}
    clock.now += jobs_module.PEER_RESULT_KEEP + 1  # a peer's product is kept a day for its submitter
    assert service.referenced_blobs() == {product, queued.a, queued.b}


def test_an_announced_job_id_must_match_the_matrices(blobs):
    service = JobService(MemoryStore(), blobs)
    a, b = matrices()
    with pytest.raises(JobError) as e:
        service.submit(blobs.put(encode_npy(a)), blobs.put(encode_npy(b)), origin="peer", job_id="00" * 32)
    assert e.value.kind == "mismatch" and service.list() == []


# --- jobs never get stuck -------------------------------------------------------------------------


def test_a_product_that_cannot_be_stored_fails_the_job_and_a_restart_does_not_mine_it_again(tmp_path):
    a, b = matrices(m=64, k=16, n=63)
    room = len(encode_npy(a)) + len(encode_npy(b)) + 1000  # the matrices fit, their 16 KB product does not
    blobs = BlobStore(tmp_path / "blobs", quota_bytes=room)
    store = MemoryStore()
    service = JobService(store, blobs)
    job = service.submit(blobs.put(encode_npy(a)), blobs.put(encode_npy(b)))
    _, prepared = service.take_next()
    failed = service.finish(job.job_id, prepared.a.astype(np.int64) @ prepared.b.astype(np.int64))
    assert failed.status == JobStatus.FAILED and "cannot store the product" in failed.error
    assert "quota" in failed.error
    assert service.referenced_blobs() == set()  # released
    with pytest.raises(JobError) as e:
        service.cancel(job.job_id)
    assert e.value.kind == "cannot-cancel"
    restarted = JobService(store, blobs)
    assert restarted.get(job.job_id).status == JobStatus.FAILED and restarted.take_next() is None


def test_a_mining_job_can_be_cancelled_and_stays_cancelled_when_the_miner_returns(blobs):
    seen = []
    service = JobService(MemoryStore(), blobs, on_change=seen.append)
    job, a, b = submit(service, blobs)
    _, prepared = service.take_next()
    assert service.cancel(job.job_id).status == JobStatus.CANCELLED
    after = service.finish(job.job_id, prepared.a.astype(np.int64) @ prepared.b.astype(np.int64))
    assert after.status == JobStatus.CANCELLED and after.result is None
    assert [j.status for j in seen] == [JobStatus.QUEUED, JobStatus.MINING, JobStatus.CANCELLED]
    again, _, _ = submit(service, blobs)  # a cancelled job can be submitted again
    assert again.job_id == job.job_id and again.status == JobStatus.QUEUED


def test_a_job_interrupted_again_and_again_fails_instead_of_being_mined_forever(blobs):
    store = MemoryStore()
    job, _, _ = submit(JobService(store, blobs), blobs)
    for _ in range(jobs_module.MAX_MINING_ATTEMPTS):
        service = JobService(store, blobs)  # a restart after a crash mid-mining
        assert service.get(job.job_id).status == JobStatus.QUEUED
        assert service.take_next()[0].job_id == job.job_id
    service = JobService(store, blobs)
    failed = service.get(job.job_id)
    assert failed.status == JobStatus.FAILED and "interrupted 3 times" in failed.error
    assert service.take_next() is None


def test_a_job_its_miner_abandoned_goes_back_to_the_queue(blobs):
    clock = Clock()
    service = JobService(MemoryStore(), blobs, clock=clock)
    job, _, _ = submit(service, blobs)
    service.take_next()  # the miner's round was cancelled: finish never comes
    assert service.take_next() is None
    clock.now += jobs_module.MINING_STALE + 1
    taken, prepared = service.take_next()
    assert taken.job_id == job.job_id and taken.attempts == 2
    assert service.finish(job.job_id, prepared.a.astype(np.int64) @ prepared.b.astype(np.int64)).status == "done"


def test_a_failure_while_finishing_fails_the_job(blobs, monkeypatch):
    service = JobService(MemoryStore(), blobs)
    job, _, _ = submit(service, blobs)
    _, prepared = service.take_next()
    monkeypatch.setattr(blobs, "put", lambda data: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    failed = service.finish(job.job_id, prepared.a.astype(np.int64) @ prepared.b.astype(np.int64))
    assert failed.status == JobStatus.FAILED and "No space left" in failed.error
