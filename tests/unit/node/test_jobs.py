"""The job service on the in-memory store: content-addressed jobs, the queue, checked results, restarts."""

from __future__ import annotations

import io

import numpy as np
import pytest

from node import jobs as jobs_module
from node.blobs import BlobError, BlobStore, encode_npy
from node.jobs import JobError, JobService, JobStatus
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
