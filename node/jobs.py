"""MatMul jobs: submitted matrices, the queue the miner takes from, and checked results.

A job is a pair ``(A, B)`` of int7 matrices. Its id is content-addressed
(PROTOCOL.md section 9), so submitting the same matrices again returns the same
job. Life cycle: ``queued -> mining -> done`` (or ``failed``; a queued job can
be ``cancelled``). The miner multiplies the zero-padded matrices as its mining
work for one nonce; the exact product falls out of the peel (section 7), is
cropped to the submitted shape, checked with Freivalds' test, stored as a blob
and reported with its evidence. Records live in a key-value store (one JSON
value per job), matrices and products in the blob store, so jobs and results
survive a restart; a job found ``mining`` at start-up goes back to the queue.
"""

from __future__ import annotations

import copy
import io
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from kernels.base import Prepared, prepare
from pouw.hashing import H
from pouw.jobs import FREIVALDS_MODULUS, compute_job_id, freivalds_vector, matvec_mod_p, product_hash
from pouw.matrix import pad_pair

from . import schema
from .blobs import BlobStore, encode_npy, load_matrix
from .store import KeyValueStore, WriteBatch


class JobStatus(StrEnum):
    """Where a job is in its life cycle."""

    QUEUED = "queued"
    MINING = "mining"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


QUEUED, MINING, DONE, FAILED, CANCELLED = (JobStatus.QUEUED, JobStatus.MINING, JobStatus.DONE, JobStatus.FAILED,
                                           JobStatus.CANCELLED)
STATUSES = tuple(JobStatus)
WAITING = (QUEUED, MINING)
"""Statuses of a job whose product does not exist yet."""
DEFAULT_MAX_QUEUED = 64
PREPARED_CACHE = 4
DEFAULT_MAX_ELEMENTS = 4096 * 4096
"""Largest padded ``m*k`` or ``k*n`` a job may have (bytes of an int8 matrix)."""


class JobError(Exception):
    """A job request was refused; ``kind`` maps to an RPC code (``not-found``, ``queue-full``, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Job:
    job_id: str
    status: JobStatus
    shape: tuple[int, int, int]
    """``(m, k, n)`` as submitted."""
    padded: tuple[int, int, int]
    """``(m, k, n)`` after zero-padding to the shape rules."""
    a: str
    b: str
    """Blob hashes of the matrices as submitted."""
    created: float
    started: float | None = None
    finished: float | None = None
    blocks: list[str] | None = None
    """Ids of blocks mined while working on this job."""
    error: str | None = None
    result: dict | None = None

    def to_json(self) -> dict:
        m, k, n = self.shape
        pm, pk, pn = self.padded
        return {
            "job_id": self.job_id, "status": str(self.status),
            "shape": {"m": m, "k": k, "n": n}, "padded_shape": {"m": pm, "k": pk, "n": pn},
            "a": self.a, "b": self.b, "created": self.created, "started": self.started,
            "finished": self.finished, "blocks": list(self.blocks or []), "error": self.error,
        }

    def encode(self) -> bytes:
        d = self.to_json()
        d["result"] = self.result
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Job:
        d = json.loads(raw)
        s, p = d["shape"], d["padded_shape"]
        return cls(d["job_id"], JobStatus(d["status"]), (s["m"], s["k"], s["n"]), (p["m"], p["k"], p["n"]),
                   d["a"], d["b"], d["created"], d["started"], d["finished"], d["blocks"], d["error"], d["result"])


def freivalds_evidence(a: np.ndarray, b: np.ndarray, c: np.ndarray, job_id: bytes) -> dict:
    """Run Freivalds' check of ``C == A @ B`` (PROTOCOL.md section 9) and describe it."""
    c_hash = product_hash(c)
    x = freivalds_vector(job_id, c_hash, c.shape[1])
    cx = matvec_mod_p(c, x)
    abx = matvec_mod_p(a, matvec_mod_p(b, x))

    def digest(v: list[int]) -> str:
        return H(np.array(v, dtype="<u8").tobytes()).hex()

    return {
        "method": "freivalds",
        "modulus": str(FREIVALDS_MODULUS),
        "vector": 'XOF(K("freivalds"), job_id || H(C), 8n), each u64 mod p',
        "c_blake3": c_hash.hex(),
        "cx_blake3": digest(cx),
        "abx_blake3": digest(abx),
        "error_bound": "1/p",
        "passed": cx == abx,
    }


class JobService:
    """Job records, the queue and results. Thread-safe (the miner finishes jobs from its own thread).

    ``on_change(job)`` hears every change, with a copy of the record, on the
    thread that made it.
    """

    def __init__(self, store: KeyValueStore, blobs: BlobStore, *, max_queued: int = DEFAULT_MAX_QUEUED,
                 max_elements: int = DEFAULT_MAX_ELEMENTS, clock: Callable[[], float] = time.time,
                 on_change: Callable[[Job], None] | None = None) -> None:
        self.store = store
        self.blobs = blobs
        self.max_queued = max_queued
        self.max_elements = max_elements
        self.clock = clock
        self.on_change = on_change
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._prepared: OrderedDict[str, Prepared] = OrderedDict()
        self._mining: dict[str, Prepared] = {}
        """Matrices of the jobs being mined, so ``finish`` checks the product without reloading them."""
        for _, raw in store.iterate(schema.JOB):
            job = Job.decode(raw)
            if job.status == MINING:  # interrupted by a stop or a crash: do it again
                job.status, job.started = QUEUED, None
                self._save(job)
            self._jobs[job.job_id] = job

    # --- records -----------------------------------------------------------------------------

    def _save(self, job: Job) -> None:
        batch = WriteBatch()
        batch.put(schema.job_key(bytes.fromhex(job.job_id)), job.encode())
        self.store.write(batch)

    def _changed(self, job: Job) -> None:
        self._save(job)
        if self.on_change is not None:
            self.on_change(copy.copy(job))

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobError("not-found", f"no job {job_id}")
        return job

    def has_queued(self) -> bool:
        """Whether a job waits for the miner."""
        with self._lock:
            return any(j.status == QUEUED for j in self._jobs.values())

    def list(self, status: str | None = None) -> list[Job]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.created)
        return [j for j in jobs if status is None or j.status == status]

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in STATUSES}
        with self._lock:
            for j in self._jobs.values():
                out[str(j.status)] += 1
        return out

    def _remember(self, job_id: str, prepared: Prepared) -> None:
        """Keep the committed matrices of recent submissions, so the miner need not commit again."""
        self._prepared[job_id] = prepared
        while len(self._prepared) > PREPARED_CACHE:
            self._prepared.popitem(last=False)

    # --- submission --------------------------------------------------------------------------

    def submit(self, a_blob: str, b_blob: str, matrices: tuple[np.ndarray, np.ndarray] | None = None) -> Job:
        """Create (or find) the job of two stored matrices; raise ``JobError`` or ``BlobError``.

        ``matrices``: the blobs already parsed with ``load_matrix`` (the RPC did
        it while storing them), so they are not read and parsed again.
        """
        if matrices is None:
            a = load_matrix(self.blobs.get(a_blob), "A")
            b = load_matrix(self.blobs.get(b_blob), "B")
        else:
            a, b = matrices
        if a.shape[1] != b.shape[0]:
            raise JobError("invalid", f"inner dimensions differ: A is {a.shape[0]}x{a.shape[1]}, "
                           f"B is {b.shape[0]}x{b.shape[1]}")
        pa, pb = pad_pair(a, b)
        pm, pk = pa.shape
        pn = pb.shape[1]
        if pm * pk > self.max_elements or pk * pn > self.max_elements:
            raise JobError("too-large", f"padded shape {pm}x{pk}x{pn} exceeds the node's limit of "
                           f"{self.max_elements} entries per matrix")
        prepared = prepare(pa, pb)
        c = prepared.commitment
        m, k = a.shape
        n = b.shape[1]
        job_id = compute_job_id(m, k, n, c.root_a, c.root_b).hex()
        with self._lock:
            existing = self._jobs.get(job_id)
            if existing is not None and existing.status != CANCELLED:
                return existing
            queued = sum(1 for j in self._jobs.values() if j.status in WAITING)
            if queued >= self.max_queued:
                raise JobError("queue-full", f"the job queue is full ({self.max_queued} jobs waiting); try later")
            job = Job(job_id, QUEUED, (m, k, n), (pm, pk, pn), a_blob, b_blob, self.clock(), blocks=[])
            self._jobs[job_id] = job
            self._remember(job_id, prepared)
            self._changed(job)
            return job

    def cancel(self, job_id: str) -> Job:
        with self._lock:
            job = self.get(job_id)
            if job.status != QUEUED:
                raise JobError("cannot-cancel", f"job {job_id} is {job.status}; only a queued job can be cancelled")
            job.status, job.finished = CANCELLED, self.clock()
            self._changed(job)
            return job

    # --- the miner's side --------------------------------------------------------------------

    def take_next(self) -> tuple[Job, Prepared] | None:
        """Mark the oldest queued job as mining and return it with its padded, committed matrices."""
        with self._lock:
            queued = [j for j in self._jobs.values() if j.status == QUEUED]
            if not queued:
                return None
            job = min(queued, key=lambda j: j.created)
            job.status, job.started = MINING, self.clock()
            self._changed(job)
        with self._lock:
            prepared = self._prepared.pop(job.job_id, None)
        if prepared is None:
            try:  # after a restart: reload, pad and commit again
                a = load_matrix(self.blobs.get(job.a), "A")
                b = load_matrix(self.blobs.get(job.b), "B")
                prepared = prepare(*pad_pair(a, b))
            except Exception as e:  # a job whose blobs vanished fails, the node goes on
                self.fail(job.job_id, f"cannot load the matrices: {e}")
                return None
        with self._lock:
            self._mining[job.job_id] = prepared
        return job, prepared

    def add_block(self, job_id: str, block_id: bytes) -> None:
        with self._lock:
            job = self.get(job_id)
            job.blocks = [*(job.blocks or []), block_id.hex()]
            self._changed(job)

    def finish(self, job_id: str, product: np.ndarray, *, from_peer: bool = False) -> Job:
        """Crop the padded product, check it with Freivalds, store it; mark the job done (or failed).

        ``from_peer``: the product came from another node; one that fails the
        check raises ``JobError`` and leaves the job as it was.
        """
        job = self.get(job_id)
        if job.status not in WAITING:  # finished meanwhile (a peer's product came first), or cancelled
            return job
        m, k, n = job.shape
        c = np.ascontiguousarray(product[:m, :n], dtype=np.int32)
        with self._lock:
            prepared = self._mining.pop(job_id, None) if not from_peer else self._mining.get(job_id)
        if prepared is not None:  # the padded matrices the miner multiplied: crop, do not reload
            a, b = prepared.a[:m, :k], prepared.b[:k, :n]
        else:
            a = load_matrix(self.blobs.get(job.a), "A")
            b = load_matrix(self.blobs.get(job.b), "B")
        if c.shape != (m, n):
            raise JobError("invalid", f"product of shape {c.shape}, the job needs {(m, n)}")
        evidence = freivalds_evidence(a, b, c, bytes.fromhex(job_id))
        if not evidence["passed"]:
            if from_peer:
                raise JobError("invalid", "a peer's product failed Freivalds' check")
            return self.fail(job_id, "the recovered product failed Freivalds' check")
        c_blob = self.blobs.put(encode_npy(c))
        with self._lock:
            job.status, job.finished = DONE, self.clock()
            job.result = {"c": c_blob, "c_blake3": evidence["c_blake3"], "freivalds": evidence,
                          "computed_by": "peer" if from_peer else "this node"}
            self._changed(job)
        return job

    def finish_from_peer(self, job_id: str, npy_bytes: bytes) -> Job:
        """A product computed elsewhere (``.npy``, int32, m x n): checked here before it counts."""
        try:
            c = np.load(io.BytesIO(npy_bytes), allow_pickle=False)
        except Exception as e:  # whatever np.load raises on garbage
            raise JobError("invalid", f"the peer's product is not a .npy file: {e}") from None
        if not isinstance(c, np.ndarray) or c.dtype != np.int32 or c.ndim != 2:
            raise JobError("invalid", "the peer's product is not a 2-D int32 matrix")
        return self.finish(job_id, c, from_peer=True)

    def fail(self, job_id: str, error: str) -> Job:
        with self._lock:
            self._mining.pop(job_id, None)
            job = self.get(job_id)
            job.status, job.finished, job.error = FAILED, self.clock(), error
            self._changed(job)
            return job
