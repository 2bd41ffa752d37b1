"""Every limit a job can hit is checked when it is submitted, and a job that fails later ends ``failed``.

Attack C on the old node: a job at the documented maximum size (4096x4096 by
4096x4096) was accepted and mined, then its int32 product plus the .npy header
did not fit one blob, and the job stayed ``mining`` forever (not cancellable,
mined again after a restart); a 5000x5000 matrix uploaded whole before it was
refused. Here the blob limit is made small (``POUW_MAX_BLOB_BYTES``) so the
same boundary is hit with small, fast matrices.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from tests.functional.harness import RpcFailure, wait_until

PRODUCT_HEADER = 128  # what np.save writes before an int32 matrix's data


def npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def upload(node, x: np.ndarray) -> str:
    status, body = node.http("PUT", "/blobs", npy(x))
    assert status == 200, body
    return json.loads(body)["hash"]


def pair(m, k, n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(-64, 64, (m, k), dtype=np.int8), rng.integers(-64, 64, (k, n), dtype=np.int8)


def rpc_error(node, method, *params) -> RpcFailure:
    with pytest.raises(RpcFailure) as e:
        node.rpc(method, *params)
    return e.value


def blob_files(node) -> list[str]:
    return sorted(p.name for p in (node.datadir / "blobs").iterdir())


def test_a_product_one_entry_over_the_blob_limit_is_refused_at_submission(node_factory):
    limit = 4095 * 4 + PRODUCT_HEADER + 3  # m*n of a product may be at most 4095 entries
    node = node_factory("n", "--mine", env={"POUW_MAX_BLOB_BYTES": str(limit)}).start()
    a, b = pair(64, 16, 64)  # 4096 entries in the product: 16512 bytes as .npy
    e = rpc_error(node, "submitmatmuljob", upload(node, a), upload(node, b))
    assert e.code == -42
    assert f"16512 bytes as .npy, over the blob limit of {limit} bytes: m*n may be at most 4095 entries" in e.message
    assert node.rpc("listmatmuljobs") == []

    a, b = pair(63, 16, 65, seed=2)  # exactly 4095 entries: the largest product there is
    job_id = node.rpc("submitmatmuljob", upload(node, a), upload(node, b))["job_id"]
    wait_until(lambda: node.rpc("getmatmuljob", job_id)["status"] not in ("queued", "mining"), timeout=120,
               what="the job at the limit to finish")
    assert node.rpc("getmatmuljob", job_id)["status"] == "done"
    status, body = node.http("GET", node.rpc("getmatmulresult", job_id)["download"])
    assert status == 200 and len(body) <= limit
    assert np.array_equal(np.load(io.BytesIO(body)), a.astype(np.int64) @ b.astype(np.int64))


def test_a_job_whose_product_cannot_be_stored_fails_for_good(node_factory):
    # The quota (no smaller than one blob) holds A and B, or the product, but not all three: the job is
    # accepted (its product fits a blob) and mined, then fails with the reason.
    limit = 16511
    node = node_factory("n", "--mine", "--blob-quota-bytes", str(limit), env={"POUW_MAX_BLOB_BYTES": str(limit)})
    node.start()
    a, b = pair(64, 16, 63)
    job_id = node.rpc("submitmatmuljob", upload(node, a), upload(node, b))["job_id"]
    wait_until(lambda: node.rpc("getmatmuljob", job_id)["status"] not in ("queued", "mining"), timeout=120,
               what="the job to end")
    failed = node.rpc("getmatmuljob", job_id)
    assert failed["status"] == "failed" and "cannot store the product" in failed["error"]
    assert f"quota of {limit} bytes" in failed["error"]
    e = rpc_error(node, "getmatmulresult", job_id)
    assert e.code == -47 and "cannot store the product" in e.message
    assert rpc_error(node, "cancelmatmuljob", job_id).code == -46  # final: nothing to cancel
    node.stop()
    node.start("--mine")  # a restart does not mine a failed job again
    wait_until(lambda: node.rpc("getmininginfo")["matmuls"] >= 3, timeout=60, what="the miner to take work")
    again = node.rpc("getmatmuljob", job_id)
    assert again["status"] == "failed" and again["started"] == failed["started"]
    assert again["finished"] == failed["finished"]


def test_an_upload_too_large_for_any_job_is_refused_from_its_header(node_factory):
    node = node_factory("n").start()  # the default limits: 64 MiB per blob
    x = np.zeros((5000, 5000), np.int8)  # 25 MB: fits a blob, but padded it is 5008x5120 > 16,777,216 entries
    status, body = node.http("PUT", "/blobs", npy(x))
    error = json.loads(body)["error"]
    assert status == 413 and error["code"] == -42
    assert "too large for any job" in error["message"] and "16777216 entries per padded matrix" in error["message"]
    assert blob_files(node) == []
    status, body = node.http("PUT", "/blobs", npy(np.zeros((4096, 4096), np.int8)))  # usable as B of an m=1 job
    assert status == 200, body
