"""MatMul jobs end to end over HTTP: upload, submit, mine, download a product equal to A @ B."""

import base64
import io
import json

import numpy as np

from pouw.jobs import freivalds_check, product_hash
from tests.functional.harness import RpcFailure, wait_until


def npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def upload(node, x: np.ndarray) -> str:
    status, body = node.http("PUT", "/blobs", npy(x), {"Content-Type": "application/octet-stream"})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["shape"] == list(x.shape)
    return answer["hash"]


def wait_done(node, job_id, timeout=60):
    return wait_until(lambda: node.rpc("getmatmuljob", job_id)["status"] in ("done", "failed"),
                      timeout=timeout, what=f"job {job_id} to finish")


def download_product(node, job_id) -> np.ndarray:
    result = node.rpc("getmatmulresult", job_id)
    status, body = node.http("GET", result["download"])
    assert status == 200
    c = np.load(io.BytesIO(body), allow_pickle=False)
    assert result["c_blake3"] == product_hash(c).hex()
    assert result["freivalds"]["passed"] is True
    return c


def test_padded_job_returns_the_exact_product(node_factory):
    rng = np.random.default_rng(7)
    a = rng.integers(-64, 64, (100, 300), dtype=np.int8)
    b = rng.integers(-64, 64, (300, 70), dtype=np.int8)
    node = node_factory("miner", "--mine").start()
    a_hash = upload(node, a)
    b_inline = base64.b64encode(npy(b)).decode()
    job = node.rpc("submitmatmuljob", a_hash, b_inline)
    assert job["status"] in ("queued", "mining", "done")
    # Content-addressed: the same matrices are the same job.
    assert node.rpc("submitmatmuljob", a_hash, b_inline)["job_id"] == job["job_id"]
    record = node.rpc("getmatmuljob", job["job_id"])
    assert record["shape"] == {"m": 100, "k": 300, "n": 70}
    assert record["padded_shape"] == {"m": 112, "k": 384, "n": 80}
    assert wait_done(node, job["job_id"]) and node.rpc("getmatmuljob", job["job_id"])["status"] == "done"
    c = download_product(node, job["job_id"])
    assert c.dtype == np.int32 and c.shape == (100, 70)
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    assert freivalds_check(a, b, c, bytes.fromhex(job["job_id"]))
    inline = node.rpc("getmatmulresult", job["job_id"], True)
    assert np.array_equal(np.load(io.BytesIO(base64.b64decode(inline["c_npy_base64"]))), c)
    done = node.rpc("getmatmuljob", job["job_id"])
    assert done["started"] <= done["finished"] and done["created"] <= done["started"]
    assert [j["job_id"] for j in node.rpc("listmatmuljobs", "done")] == [job["job_id"]]


def test_job_survives_a_kill_and_a_restart(node_factory):
    rng = np.random.default_rng(8)
    a = rng.integers(-64, 64, (40, 260), dtype=np.int8)
    b = rng.integers(-64, 64, (260, 33), dtype=np.int8)
    node = node_factory("n").start()  # not mining: the job waits in the queue
    job_id = node.rpc("submitmatmuljob", upload(node, a), upload(node, b))["job_id"]
    assert node.rpc("getmatmuljob", job_id)["status"] == "queued"
    node.kill()
    node.start("--mine")
    wait_done(node, job_id)
    c = download_product(node, job_id)
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    node.stop()
    node.start()
    assert node.rpc("getmatmuljob", job_id)["status"] == "done"
    assert np.array_equal(download_product(node, job_id), c)


def test_cancel_a_queued_job(node_factory):
    node = node_factory("n").start()
    a = np.ones((16, 256), np.int8)
    job_id = node.rpc("submitmatmuljob", upload(node, a), upload(node, a.T.copy()))["job_id"]
    assert node.rpc("cancelmatmuljob", job_id)["status"] == "cancelled"
    try:
        node.rpc("cancelmatmuljob", job_id)
    except RpcFailure as e:
        assert e.code == -46
    else:
        raise AssertionError("a cancelled job cannot be cancelled again")
