"""Job work handed out with templates: a job is leased to one external miner at a time, comes back to the queue
when the lease runs out, and takes a product from a miner only after Freivalds' check."""

from __future__ import annotations

import io

import numpy as np
import pytest

from node.blobs import BlobStore, encode_npy
from node.jobs import (
    LEASE_BASE_SECONDS,
    MAX_MINING_ATTEMPTS,
    JobError,
    JobService,
    JobStatus,
    ProductRejected,
    lease_seconds,
)
from tests.support.memstore import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def blobs(tmp_path):
    return BlobStore(tmp_path / "blobs")


def submit(service: JobService, blobs: BlobStore, seed: int = 1, m: int = 20, k: int = 40, n: int = 12):
    rng = np.random.default_rng(seed)
    a = rng.integers(-64, 64, (m, k), dtype=np.int8)
    b = rng.integers(-64, 64, (k, n), dtype=np.int8)
    return service.submit(blobs.put(encode_npy(a)), blobs.put(encode_npy(b))), a, b


def npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def test_a_job_is_leased_to_one_miner_at_a_time(blobs):
    clock = Clock()
    service = JobService(MemoryStore(), blobs, clock=clock)
    job, _, _ = submit(service, blobs)
    taken, lease = service.lease("rig-a")
    assert taken.job_id == job.job_id and lease.worker == "rig-a"
    assert lease.expires == clock.now + lease_seconds(job.padded)
    assert service.get(job.job_id).status == JobStatus.MINING
    assert service.lease("rig-b") is None  # nothing else waits: the second miner gets no job
    again, same = service.lease("rig-a")  # the holder asking again keeps its job
    assert again.job_id == job.job_id and same == lease
    assert service.take_next() is None  # nor does the node's own miner take it
    assert not service.has_queued()


def test_an_expired_lease_puts_the_job_back_for_another_miner(blobs):
    clock = Clock()
    service = JobService(MemoryStore(), blobs, clock=clock)
    job, _, _ = submit(service, blobs)
    _, lease = service.lease("dead-miner")
    version = service.version()
    clock.now = lease.expires - 0.001
    assert service.lease("rig-b") is None
    clock.now = lease.expires
    assert service.version() > version  # the long-poll sees the change
    assert service.get(job.job_id).status == JobStatus.QUEUED
    taken, lease_b = service.lease("rig-b")
    assert taken.job_id == job.job_id and lease_b.worker == "rig-b" and taken.attempts == 2


def test_a_job_leased_too_often_fails(blobs):
    clock = Clock()
    service = JobService(MemoryStore(), blobs, clock=clock)
    job, _, _ = submit(service, blobs)
    for i in range(MAX_MINING_ATTEMPTS):
        _, lease = service.lease(f"w{i}")
        clock.now = lease.expires
    assert service.lease("last") is None
    failed = service.get(job.job_id)
    assert failed.status == JobStatus.FAILED and "without a result" in failed.error


def test_a_miners_product_is_checked_and_names_the_miner(blobs):
    service = JobService(MemoryStore(), blobs, clock=Clock())
    job, a, b = submit(service, blobs)
    service.lease("rig-a")
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    wrong = c.copy()
    wrong[3, 4] += 1
    with pytest.raises(ProductRejected, match="failed Freivalds"):
        service.finish_from_miner(job.job_id, npy(wrong), "rig-a")
    assert service.get(job.job_id).status == JobStatus.MINING and service.leases()  # still leased, still waiting
    with pytest.raises(JobError) as e:
        service.finish_from_miner(job.job_id, npy(c.astype(np.int64)), "rig-a")
    assert e.value.kind == "invalid"
    done = service.finish_from_miner(job.job_id, npy(c), "rig-a")
    assert done.status == JobStatus.DONE and done.result["computed_by"] == "pouw-miner rig-a"
    assert np.array_equal(np.load(io.BytesIO(blobs.get(done.result["c"]))), c)
    assert not service.leases()
    with pytest.raises(JobError) as e:
        service.finish_from_miner(job.job_id, npy(c), "rig-a")
    assert e.value.kind == "not-waiting"


def test_cancelling_drops_the_lease(blobs):
    service = JobService(MemoryStore(), blobs, clock=Clock())
    job, _, _ = submit(service, blobs)
    service.lease("rig-a")
    service.cancel(job.job_id)
    assert not service.leases() and service.lease("rig-a") is None


def test_lease_length_grows_with_the_job():
    assert lease_seconds((16, 256, 16)) == pytest.approx(LEASE_BASE_SECONDS, abs=0.01)
    assert lease_seconds((4096, 4096, 4096)) > 600
