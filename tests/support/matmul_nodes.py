"""Test doubles behind ``wallet.matmul.MatmulNode``: an in-process node, and a corrupter wrapping a real one.

``InProcessNode`` keeps blobs in a dict and "mines" a job by multiplying the
stored int7 matrices with NumPy when it is polled, after ``mine_after`` polls;
its queue holds ``max_queued`` waiting jobs (then ``-45``, like pouwd). The
job id is the real one (``wallet.jobs.compute_local_job_id``), so the
client's content addressing and Freivalds vector are those of a real node.

``Corrupting`` wraps any node and flips one entry of the first ``times``
products it hands out (or of the products of chosen jobs): the client must
catch them with Freivalds' check and retry.
"""

from __future__ import annotations

import io
import threading

import numpy as np

from pouw.hashing import H
from wallet.jobs import compute_local_job_id
from wallet.rpc import RpcError


def _npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


class InProcessNode:
    label = "in-process"

    def __init__(self, *, max_queued: int = 1000, mine_after: int = 0, fail_first: int = 0) -> None:
        self.blobs: dict[str, bytes] = {}
        self.records: dict[str, dict] = {}
        self.max_queued = max_queued
        self.mine_after = mine_after
        self.fail_first = fail_first
        """Jobs that end ``failed`` the first time they are mined (then work)."""
        self.submissions: list[str] = []
        self.cancelled: list[str] = []
        self.uploads = 0
        self.lock = threading.Lock()

    def put_blob(self, data: bytes) -> str:
        digest = H(data).hex()
        with self.lock:
            self.blobs[digest] = data
            self.uploads += 1
        return digest

    def get_blob(self, digest: str) -> bytes:
        try:
            return self.blobs[digest]
        except KeyError:
            raise RpcError(-40, f"no blob {digest}") from None

    def _matrix(self, digest: str) -> np.ndarray:
        return np.load(io.BytesIO(self.get_blob(digest)), allow_pickle=False)

    def submit(self, a_hash: str, b_hash: str) -> dict:
        a, b = self._matrix(a_hash), self._matrix(b_hash)
        job_id = compute_local_job_id(a, b).hex()
        with self.lock:
            self.submissions.append(job_id)
            rec = self.records.get(job_id)
            if rec is not None and rec["status"] not in ("failed", "cancelled"):
                return {"job_id": job_id, "status": rec["status"]}
            if sum(1 for r in self.records.values() if r["status"] in ("queued", "mining")) >= self.max_queued:
                raise RpcError(-45, "the job queue is full")
            self.records[job_id] = {"job_id": job_id, "status": "queued", "a": a_hash, "b": b_hash, "polls": 0,
                                    "error": None}
            return {"job_id": job_id, "status": "queued"}

    def _mine(self, rec: dict) -> None:
        rec["polls"] += 1
        if rec["status"] != "queued" or rec["polls"] <= self.mine_after:
            return
        if self.fail_first > 0:
            self.fail_first -= 1
            rec["status"], rec["error"] = "failed", "the recovered product failed Freivalds' check"
            return
        c = (self._matrix(rec["a"]).astype(np.int64) @ self._matrix(rec["b"]).astype(np.int64)).astype(np.int32)
        data = _npy(c)
        digest = H(data).hex()
        self.blobs[digest] = data
        rec["status"], rec["c"] = "done", digest

    def jobs(self, job_ids: list[str]) -> list[dict]:
        out = []
        with self.lock:
            for j in job_ids:
                rec = self.records.get(j)
                if rec is None:
                    raise RpcError(-43, f"no job {j}")
                self._mine(rec)
                out.append({k: v for k, v in rec.items() if k != "polls"})
        return out

    def result(self, job_id: str) -> dict:
        with self.lock:
            rec = self.records.get(job_id)
            if rec is None or rec["status"] != "done":
                raise RpcError(-44, f"job {job_id} has no result")
            return {"job_id": job_id, "c": rec["c"], "computed_by": "this node"}

    def cancel(self, job_id: str) -> None:
        with self.lock:
            rec = self.records.get(job_id)
            if rec is None:
                raise RpcError(-43, f"no job {job_id}")
            if rec["status"] not in ("queued", "mining"):
                raise RpcError(-46, f"job {job_id} is {rec['status']}")
            rec["status"] = "cancelled"
            self.cancelled.append(job_id)


class Corrupting:
    """Any ``MatmulNode``, with one entry of some products changed on their way to the client."""

    def __init__(self, inner, *, times: int = 1, only: set[str] | None = None) -> None:
        self.inner = inner
        self.label = getattr(inner, "label", "node")
        self.times = times
        self.only = only
        self.corrupted: list[str] = []
        self._product_blobs: dict[str, str] = {}
        self.lock = threading.Lock()

    def __getattr__(self, name):  # put_blob, submit, jobs, cancel: unchanged
        return getattr(self.inner, name)

    def result(self, job_id: str) -> dict:
        r = self.inner.result(job_id)
        with self.lock:
            self._product_blobs[r["c"]] = job_id
        return r

    def get_blob(self, digest: str) -> bytes:
        data = self.inner.get_blob(digest)
        with self.lock:
            job_id = self._product_blobs.get(digest)
            hit = job_id is not None and self.times > 0 and (self.only is None or job_id in self.only)
            if hit and job_id is not None:
                self.times -= 1
                self.corrupted.append(job_id)
        if not hit:
            return data
        c = np.load(io.BytesIO(data), allow_pickle=False).copy()
        c[0, 0] += 1
        return _npy(c)
