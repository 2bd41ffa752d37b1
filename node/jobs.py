"""MatMul jobs: submitted matrices, the queue the miner takes from, and checked results.

A job is a pair ``(A, B)`` of int7 matrices. Its id is content-addressed
(docs/protocol.md section 9), so submitting the same matrices again returns the same
job. Life cycle: ``queued -> mining -> done`` or ``failed``; a queued or mining
job can be ``cancelled`` (a job from a peer that waits too long is cancelled
with the error ``expired``). The miner multiplies the zero-padded matrices as
its mining work for one nonce; the exact product falls out of the peel
(section 7), is cropped to the submitted shape, checked with Freivalds' test,
stored as a blob and reported with its evidence. Records live in a key-value
store (one JSON value per job), matrices and products in the blob store, so
jobs and results survive a restart; a job found ``mining`` at start-up goes
back to the queue (at most ``MAX_MINING_ATTEMPTS`` times).

Every limit a job can hit is checked when it is submitted (``check_shape``):
the padded matrices (``max_elements`` entries each), the matrices' and the
product's ``.npy`` sizes against the blob limit, and the queue. A job that
fails later (its product cannot be stored, its matrices vanished) ends
``failed`` with the reason; it is never left ``mining``.

Where a job came from is its ``origin``: ``"local"`` (RPC) or the id of the
peer that announced it. Jobs from peers are bounded: ``MAX_JOBS_PER_PEER``
waiting per peer, and all of them together leave ``local_reserve`` slots of
``max_queued`` to local submissions; they expire after ``PEER_JOB_TTL``
seconds queued.

Which blobs a live job references (the blob store evicts only the others,
``referenced_blobs``): A and B of a queued or mining job; the product of a
done local job; the product of a done peer job for ``PEER_RESULT_KEEP``
seconds after it finished (its submitter fetches it from us). Nothing else:
matrices of done, failed and cancelled jobs may be evicted, and the matrices
of a peer's job that ends failed or cancelled are deleted at once.

Queue order (``take_next`` and ``lease``): paid jobs first, those whose
``priority`` (``set_priority``: the best open offer's reward per multiply-add of
the padded shape, node/claims.py ``OfferIndex.reward_per_mac``) is highest,
then free jobs (no open offer), oldest first; the miner mines random work only
when none is queued.

External miners (``pouw-miner``) take job work with ``lease(worker)``: the
next queued job becomes ``mining`` and is leased to that worker alone for
``lease_seconds(padded)`` (a minute plus the job's multiply-adds at a slow
CPU's 10^8 per second). The holder asking again gets the same job back. A
lease that runs out puts the job back in the queue (counting an attempt, like
an interrupted mining round), so a dead miner holds nothing for long. The
product comes back with ``finish_from_miner``: checked with Freivalds like a
peer's, so a correct product is taken from whoever brings it while the job
waits (the lease decides who is given the work, not whose answer counts);
``computed_by`` names the worker. Leases live in memory: after a restart a
``mining`` job goes back to the queue anyway.

Locking: one ``RLock`` guards the records; the blob store is never called
while it is held (the store calls ``referenced_blobs`` under its own lock).
"""

from __future__ import annotations

import builtins
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
from pouw.errors import InvalidMatrixError
from pouw.hashing import H
from pouw.jobs import FREIVALDS_MODULUS, compute_job_id, freivalds_vector, matvec_mod_p, product_hash
from pouw.matrix import pad_pair, padded_shape

from . import schema
from .blobs import BlobError, BlobStore, encode_npy, load_matrix, npy_header_size, npy_size
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
"""Statuses of a job whose product does not exist yet (the non-final ones)."""
LOCAL = "local"
"""The ``origin`` of a job submitted on this node."""
DEFAULT_MAX_QUEUED = 64
PREPARED_CACHE = 4
DEFAULT_MAX_ELEMENTS = 4096 * 4096
"""Largest padded ``m*k`` or ``k*n`` a job may have (bytes of an int8 matrix)."""
MAX_JOBS_PER_PEER = 8
"""Jobs announced by one peer that may wait (queued or mining) here at once."""
LOCAL_RESERVE_FRACTION = 4
"""``max_queued // 4`` slots (at least one) are kept for local submissions: peers' jobs never take them."""
PEER_JOB_TTL = 3600.0
"""Seconds a job from a peer may stay queued before it expires (cancelled, error ``expired``)."""
PEER_RESULT_KEEP = 24 * 3600.0
"""Seconds the product of a done peer job stays referenced (for its submitter to fetch) before it may be evicted."""
MAX_MINING_ATTEMPTS = 3
"""Times a job is handed to the miner; one interrupted that often (a crash, a stop) fails instead."""
MINING_STALE = 3600.0
"""Seconds after which a job still ``mining`` is taken to be abandoned by its miner and queued again."""
LEASE_BASE_SECONDS = 60.0
LEASE_MIN_MACS_PER_SECOND = 1e8
"""A lease lasts ``LEASE_BASE_SECONDS`` plus the job's padded multiply-adds at this (slow CPU) rate."""
WORKER_PATTERN = "^[A-Za-z0-9._:@-]{1,64}$"
"""What an external miner's name (a lease holder) may look like."""


def lease_seconds(padded: tuple[int, int, int]) -> float:
    """How long a job of padded shape ``(m, k, n)`` is leased to one external miner."""
    m, k, n = padded
    return LEASE_BASE_SECONDS + m * k * n / LEASE_MIN_MACS_PER_SECOND


@dataclass(frozen=True)
class Lease:
    """A job handed to one external miner until ``expires`` (unix seconds, the service's clock)."""

    job_id: str
    worker: str
    expires: float


class JobError(Exception):
    """A job request was refused; ``kind`` maps to an RPC code (``not-found``, ``queue-full``, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ProductRejected(JobError):
    """A product from elsewhere (a peer, an external miner) failed Freivalds' check; kind ``invalid``."""


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
    origin: str = LOCAL
    """``"local"`` or the id of the peer that announced the job."""
    attempts: int = 0
    """Times the job was handed to the miner."""

    def to_json(self) -> dict:
        m, k, n = self.shape
        pm, pk, pn = self.padded
        return {
            "job_id": self.job_id, "status": str(self.status),
            "shape": {"m": m, "k": k, "n": n}, "padded_shape": {"m": pm, "k": pk, "n": pn},
            "a": self.a, "b": self.b, "created": self.created, "started": self.started,
            "finished": self.finished, "blocks": list(self.blocks or []), "error": self.error,
            "origin": self.origin,
        }

    def encode(self) -> bytes:
        d = self.to_json()
        d["result"] = self.result
        d["attempts"] = self.attempts
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Job:
        """A record; one written before ``origin`` and ``attempts`` existed is a local job never mined."""
        d = json.loads(raw)
        s, p = d["shape"], d["padded_shape"]
        return cls(d["job_id"], JobStatus(d["status"]), (s["m"], s["k"], s["n"]), (p["m"], p["k"], p["n"]),
                   d["a"], d["b"], d["created"], d["started"], d["finished"], d["blocks"], d["error"], d["result"],
                   d.get("origin", LOCAL), d.get("attempts", 0))


def freivalds_evidence(a: np.ndarray, b: np.ndarray, c: np.ndarray, job_id: bytes) -> dict:
    """Run Freivalds' check of ``C == A @ B`` (docs/protocol.md section 9) and describe it."""
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


def max_product_entries(max_blob_bytes: int) -> int:
    """Most entries ``m*n`` a job's product may have: its int32 ``.npy`` must fit one blob."""
    return max(0, (max_blob_bytes - npy_header_size((1, 1), np.int32)) // 4)


def check_job_shape(m: int, k: int, n: int, *, max_elements: int = DEFAULT_MAX_ELEMENTS,
                    max_blob_bytes: int) -> tuple[int, int, int]:
    """The padded shape of an ``m x k`` by ``k x n`` job if this node can run it; else raise ``JobError``.

    ``invalid``: the shape breaks the protocol's shape rules even padded.
    ``too-large``: it breaks this node's limits: each padded matrix at most
    ``max_elements`` entries, A and B at most ``max_blob_bytes`` as ``.npy``,
    and the int32 product at most ``max_blob_bytes`` as ``.npy``
    (``m*n <= max_product_entries(max_blob_bytes)``).
    """
    try:
        pm, pk, pn = padded_shape(m, k, n)
    except InvalidMatrixError as e:
        raise JobError("invalid", f"shape {m}x{k}x{n}: {e}") from None
    if pm * pk > max_elements or pk * pn > max_elements:
        raise JobError("too-large", f"padded shape {pm}x{pk}x{pn} exceeds the node's limit of {max_elements} "
                       f"entries per padded matrix (padded m*k = {pm * pk}, k*n = {pk * pn})")
    for name, shape in (("A", (m, k)), ("B", (k, n))):
        size = npy_size(shape, np.int8)
        if size > max_blob_bytes:
            raise JobError("too-large", f"{name} ({shape[0]}x{shape[1]} int8) is {size} bytes as .npy, over the "
                           f"blob limit of {max_blob_bytes} bytes")
    size = npy_size((m, n), np.int32)
    if size > max_blob_bytes:
        raise JobError("too-large", f"the product of a {m}x{k}x{n} job ({m}x{n} int32) is {size} bytes as .npy, "
                       f"over the blob limit of {max_blob_bytes} bytes: m*n may be at most "
                       f"{max_product_entries(max_blob_bytes)} entries, found {m * n}")
    return pm, pk, pn


def check_matrix_shape(rows: int, cols: int, *, max_elements: int = DEFAULT_MAX_ELEMENTS,
                       max_blob_bytes: int) -> None:
    """Raise ``JobError`` unless a ``rows x cols`` matrix can be A or B of some job this node runs."""
    try:
        check_job_shape(rows, cols, 1, max_elements=max_elements, max_blob_bytes=max_blob_bytes)
        return
    except JobError as e:
        as_a = e
    try:
        check_job_shape(1, rows, cols, max_elements=max_elements, max_blob_bytes=max_blob_bytes)
    except JobError as e:
        raise JobError(as_a.kind if as_a.kind == e.kind else "too-large",
                       f"a {rows}x{cols} matrix is too large for any job here: as A, {as_a}; as B, {e}") from None


def _load_product(npy_bytes: bytes, what: str) -> np.ndarray:
    try:
        c = np.load(io.BytesIO(npy_bytes), allow_pickle=False)
    except Exception as e:  # whatever np.load raises on garbage
        raise JobError("invalid", f"{what} is not a .npy file: {e}") from None
    if not isinstance(c, np.ndarray) or c.dtype != np.int32 or c.ndim != 2:
        raise JobError("invalid", f"{what} is not a 2-D int32 matrix")
    return c


class JobService:
    """Job records, the queue and results. Thread-safe (the miner finishes jobs from its own thread).

    ``on_change(job)`` hears every change, with a copy of the record, on the
    thread that made it. The service tells ``blobs`` which blobs its live jobs
    reference (``BlobStore.set_referenced``).
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
        self._leases: dict[str, Lease] = {}
        """Jobs handed to external miners, by job id."""
        self._version = 0
        self._priority: Callable[[str], float | None] | None = None
        for _, raw in store.iterate(schema.JOB):
            job = Job.decode(raw)
            if job.status == MINING:  # interrupted by a stop or a crash: do it again (a few times)
                if job.attempts >= MAX_MINING_ATTEMPTS:
                    job.status, job.finished = FAILED, self.clock()
                    job.error = f"interrupted {job.attempts} times while mining; not tried again"
                else:
                    job.status, job.started = QUEUED, None
                self._save(job)
            self._jobs[job.job_id] = job
        blobs.set_referenced(self.referenced_blobs)

    def set_priority(self, priority: Callable[[str], float | None]) -> None:
        """``priority(job_id)``: a paid job's reward per padded multiply-add, None for a free job (queue order)."""
        self._priority = priority

    def _pick(self, queued: builtins.list[Job]) -> Job:
        """(lock held) The next job of the queue: paid ones by priority, then free ones, each oldest first."""
        if self._priority is None:
            return min(queued, key=lambda j: j.created)
        priority = self._priority

        def key(j: Job) -> tuple[int, float, float]:
            p = priority(j.job_id)
            return (0, -p, j.created) if p is not None else (1, 0.0, j.created)

        return min(queued, key=key)

    @property
    def local_reserve(self) -> int:
        """Queue slots only local submissions may take."""
        return min(self.max_queued, max(1, self.max_queued // LOCAL_RESERVE_FRACTION))

    @property
    def max_peer_jobs(self) -> int:
        """Jobs from all peers together that may wait here."""
        return self.max_queued - self.local_reserve

    # --- records -----------------------------------------------------------------------------

    def _save(self, job: Job) -> None:
        batch = WriteBatch()
        batch.put(schema.job_key(bytes.fromhex(job.job_id)), job.encode())
        self.store.write(batch)

    def _changed(self, job: Job) -> None:
        self._save(job)
        self._version += 1
        if self.on_change is not None:
            self.on_change(copy.copy(job))

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobError("not-found", f"no job {job_id}")
        return job

    def product_shape(self, job_id: str) -> tuple[int, int] | None:
        """``(m, n)`` of the product a waiting job takes (``PUT /blobs?product_of=``), or None."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.status not in WAITING:
            return None
        m, _, n = job.shape
        return m, n

    def has_queued(self) -> bool:
        """Whether a job waits for the miner."""
        with self._lock:
            self._expire_leases()
            return any(j.status == QUEUED for j in self._jobs.values())

    def version(self) -> int:
        """A counter that moves on every change of a job (expired leases are returned to the queue first)."""
        with self._lock:
            self._expire_leases()
            return self._version

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

    def referenced_blobs(self) -> set[str]:
        """Blobs live jobs still need (see the module's docstring); the blob store evicts only others."""
        now = self.clock()
        out: set[str] = set()
        with self._lock:
            for j in self._jobs.values():
                if j.status in WAITING:
                    out.update((j.a, j.b))
                elif j.status == DONE and j.result is not None:
                    if j.origin == LOCAL or now - (j.finished or 0.0) < PEER_RESULT_KEEP:
                        out.add(j.result["c"])
        return out

    def _remember(self, job_id: str, prepared: Prepared) -> None:
        """Keep the committed matrices of recent submissions, so the miner need not commit again."""
        self._prepared[job_id] = prepared
        while len(self._prepared) > PREPARED_CACHE:
            self._prepared.popitem(last=False)

    def _release(self, job: Job) -> None:
        """A job ended without a product: delete a peer job's matrices unless another live job uses them.

        Call without the lock held. A local job's matrices stay until evicted
        (its owner may submit them again).
        """
        if job.origin != LOCAL:
            self.blobs.discard_unreferenced([job.a, job.b])

    # --- limits ------------------------------------------------------------------------------

    def check_shape(self, m: int, k: int, n: int) -> tuple[int, int, int]:
        """The padded shape, if this node can run an ``m x k x n`` job; else ``JobError`` (``check_job_shape``)."""
        return check_job_shape(m, k, n, max_elements=self.max_elements, max_blob_bytes=self.blobs.max_bytes)

    def _room_error(self, origin: str) -> JobError | None:
        """(lock held) Why a new job from ``origin`` cannot be queued now, or None."""
        waiting = [j for j in self._jobs.values() if j.status in WAITING]
        if len(waiting) >= self.max_queued:
            return JobError("queue-full", f"the job queue is full ({self.max_queued} jobs waiting); try later")
        if origin == LOCAL:
            return None
        from_peers = [j for j in waiting if j.origin != LOCAL]
        if len(from_peers) >= self.max_peer_jobs:
            return JobError("queue-full", f"{len(from_peers)} jobs from peers wait here, the most peers may have "
                            f"({self.local_reserve} of {self.max_queued} slots are kept for local jobs)")
        if sum(1 for j in from_peers if j.origin == origin) >= MAX_JOBS_PER_PEER:
            return JobError("queue-full", f"{MAX_JOBS_PER_PEER} jobs from peer {origin} wait here already")
        return None

    def peer_room(self, peer: str, *, pending: int = 0, pending_peers: int = 0) -> None:
        """Raise ``JobError("queue-full")`` unless one more job from ``peer`` could be queued now.

        ``pending``: jobs from ``peer`` being fetched (not queued yet);
        ``pending_peers``: jobs from all peers being fetched. Both count as queued.
        """
        self.expire()
        with self._lock:
            error = self._room_error(peer)
            waiting = [j for j in self._jobs.values() if j.status in WAITING]
        if error is None:
            mine = sum(1 for j in waiting if j.origin == peer) + pending
            peers = sum(1 for j in waiting if j.origin != LOCAL) + pending_peers
            if mine >= MAX_JOBS_PER_PEER:
                error = JobError("queue-full", f"peer {peer} has {mine} jobs waiting or being fetched here, "
                                 f"the most one peer may have ({MAX_JOBS_PER_PEER})")
            elif peers >= self.max_peer_jobs or len(waiting) + pending_peers >= self.max_queued:
                error = JobError("queue-full", f"{peers} jobs from peers wait or are being fetched here, the most "
                                 f"peers may have ({self.max_peer_jobs})")
        if error is not None:
            raise error

    def expire(self) -> builtins.list[Job]:
        """Cancel the jobs from peers queued for more than ``PEER_JOB_TTL`` seconds; those expired."""
        now = self.clock()
        out: builtins.list[Job] = []
        with self._lock:
            for job in self._jobs.values():
                if job.status == QUEUED and job.origin != LOCAL and now - job.created > PEER_JOB_TTL:
                    job.status, job.finished = CANCELLED, now
                    job.error = f"expired: queued for more than {PEER_JOB_TTL:g} s without being mined"
                    self._prepared.pop(job.job_id, None)
                    self._changed(job)
                    out.append(job)
        for job in out:
            self._release(job)
        return out

    # --- submission --------------------------------------------------------------------------

    def submit(self, a_blob: str, b_blob: str, matrices: tuple[np.ndarray, np.ndarray] | None = None, *,
               origin: str = LOCAL, job_id: str | None = None) -> Job:
        """Create (or find) the job of two stored matrices; raise ``JobError`` or ``BlobError``.

        ``matrices``: the blobs already parsed with ``load_matrix`` (the RPC did
        it while storing them), so they are not read and parsed again.
        ``origin``: ``"local"`` or the announcing peer's id (its limits apply).
        ``job_id``: the id the matrices must give (a peer's announcement); a
        different one is ``JobError("mismatch")`` and nothing is queued.

        Every limit is checked here, from the blobs' headers before the
        matrices are read: shape, sizes, the queue.
        """
        for digest in (a_blob, b_blob):
            self.blobs.touch(digest)  # in use now: not evicted while the job is made
        if matrices is None:
            shape_a, shape_b = self.blobs.header(a_blob).shape, self.blobs.header(b_blob).shape
        else:
            shape_a, shape_b = matrices[0].shape, matrices[1].shape
        if len(shape_a) == 2 and len(shape_b) == 2:
            if shape_a[1] != shape_b[0]:
                raise JobError("invalid", f"inner dimensions differ: A is {shape_a[0]}x{shape_a[1]}, "
                               f"B is {shape_b[0]}x{shape_b[1]}")
            self.check_shape(shape_a[0], shape_a[1], shape_b[1])
        if matrices is None:
            a = load_matrix(self.blobs.get(a_blob), "A")
            b = load_matrix(self.blobs.get(b_blob), "B")
        else:
            a, b = matrices
        if a.shape[1] != b.shape[0]:
            raise JobError("invalid", f"inner dimensions differ: A is {a.shape[0]}x{a.shape[1]}, "
                           f"B is {b.shape[0]}x{b.shape[1]}")
        m, k = a.shape
        n = b.shape[1]
        pm, pk, pn = self.check_shape(m, k, n)
        pa, pb = pad_pair(a, b)
        prepared = prepare(pa, pb)
        c = prepared.commitment
        computed = compute_job_id(m, k, n, c.root_a, c.root_b).hex()
        if job_id is not None and computed != job_id:
            raise JobError("mismatch", f"the matrices give job {computed}, not the announced {job_id}")
        self.expire()
        with self._lock:
            existing = self._jobs.get(computed)
            if existing is not None and existing.status not in (CANCELLED, FAILED):
                return existing
            error = self._room_error(origin)
            if error is not None:
                raise error
            job = Job(computed, QUEUED, (m, k, n), (pm, pk, pn), a_blob, b_blob, self.clock(), blocks=[],
                      origin=origin)
            self._jobs[computed] = job
            self._remember(computed, prepared)
            self._changed(job)
            return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or mining job (a mining one stays cancelled when its miner returns)."""
        with self._lock:
            job = self.get(job_id)
            if job.status not in WAITING:
                raise JobError("cannot-cancel", f"job {job_id} is {job.status}; only a queued or mining job "
                               "can be cancelled")
            job.status, job.finished = CANCELLED, self.clock()
            self._mining.pop(job_id, None)
            self._leases.pop(job_id, None)
            self._prepared.pop(job_id, None)
            self._changed(job)
            out = copy.copy(job)
        self._release(job)
        return out

    # --- the miner's side --------------------------------------------------------------------

    def take_next(self) -> tuple[Job, Prepared] | None:
        """Mark the next queued job (paid first, see the module docstring) as mining; return it with its
        padded, committed matrices."""
        self.expire()
        now = self.clock()
        while True:
            with self._lock:
                self._expire_leases()
                for stale in self._jobs.values():  # a miner that never finished (its round was cancelled)
                    if (stale.status == MINING and stale.job_id not in self._leases
                            and now - (stale.started or now) > MINING_STALE):
                        stale.status, stale.started = QUEUED, None
                        self._mining.pop(stale.job_id, None)
                        self._changed(stale)
                queued = [j for j in self._jobs.values() if j.status == QUEUED]
                if not queued:
                    return None
                job = self._pick(queued)
                if job.attempts < MAX_MINING_ATTEMPTS:
                    job.status, job.started, job.attempts = MINING, now, job.attempts + 1
                    self._changed(job)
                    prepared = self._prepared.pop(job.job_id, None)
                    break
            self.fail(job.job_id, f"handed to the miner {job.attempts} times without a result; not tried again")
        if prepared is None:
            try:  # after a restart: reload, pad and commit again
                a = load_matrix(self.blobs.get(job.a), "A")
                b = load_matrix(self.blobs.get(job.b), "B")
                prepared = prepare(*pad_pair(a, b))
            except Exception as e:  # a job whose blobs vanished fails, the node goes on
                self.fail(job.job_id, f"cannot load the matrices: {e}")
                return None
        with self._lock:
            if job.status != MINING:  # cancelled meanwhile
                return None
            self._mining[job.job_id] = prepared
        return job, prepared

    def add_block(self, job_id: str, block_id: bytes) -> None:
        with self._lock:
            job = self.get(job_id)
            job.blocks = [*(job.blocks or []), block_id.hex()]
            self._changed(job)

    def finish(self, job_id: str, product: np.ndarray, *, from_peer: bool = False,
               computed_by: str | None = None) -> Job:
        """Crop the padded product, check it with Freivalds, store it; mark the job done (or failed).

        A job no longer waiting (cancelled, or finished by a peer's product) is
        left as it is. From the miner (``from_peer`` false) this never leaves
        the job waiting: whatever goes wrong (the check, storing the product)
        fails it with the reason. ``from_peer``: the product came from another
        node; one that is wrong raises ``JobError("invalid")``, one that cannot
        be stored ``JobError("no-space")``, and the job stays as it was.
        ``computed_by``: who computed it (default ``"peer"`` or ``"this node"``).
        """
        job = self.get(job_id)
        with self._lock:
            if job.status not in WAITING:
                if not from_peer:
                    self._mining.pop(job_id, None)
                return job
            prepared = self._mining.pop(job_id, None) if not from_peer else self._mining.get(job_id)
        try:
            m, k, n = job.shape
            c = np.ascontiguousarray(product[:m, :n], dtype=np.int32)
            if c.shape != (m, n):
                raise JobError("invalid", f"product of shape {c.shape}, the job needs {(m, n)}")
            if prepared is not None:  # the padded matrices the miner multiplied: crop, do not reload
                a, b = prepared.a[:m, :k], prepared.b[:k, :n]
            else:
                a = load_matrix(self.blobs.get(job.a), "A")
                b = load_matrix(self.blobs.get(job.b), "B")
            evidence = freivalds_evidence(a, b, c, bytes.fromhex(job_id))
            if not evidence["passed"]:
                if from_peer:
                    who = "a peer's" if computed_by is None else f"{computed_by}'s"
                    raise ProductRejected("invalid", f"{who} product failed Freivalds' check")
                return self.fail(job_id, "the recovered product failed Freivalds' check")
            c_blob = self.blobs.put(encode_npy(c))
        except JobError as e:
            if from_peer:
                raise
            return self.fail(job_id, str(e))
        except BlobError as e:
            if from_peer:
                raise JobError("no-space" if e.kind == "no-space" else "invalid",
                               f"cannot take the peer's product: {e}") from None
            return self.fail(job_id, f"cannot store the product: {e}")
        except Exception as e:  # memory, disk: the job must not stay mining
            if from_peer:
                raise JobError("internal", f"cannot take the peer's product: {type(e).__name__}: {e}") from None
            return self.fail(job_id, f"cannot finish the job: {type(e).__name__}: {e}")
        with self._lock:
            if job.status not in WAITING:  # cancelled (or finished by a peer) while the product was checked
                return job
            job.status, job.finished = DONE, self.clock()
            job.result = {"c": c_blob, "c_blake3": evidence["c_blake3"], "freivalds": evidence,
                          "computed_by": computed_by or ("peer" if from_peer else "this node")}
            self._leases.pop(job_id, None)
            self._changed(job)
        return job

    def finish_from_peer(self, job_id: str, npy_bytes: bytes) -> Job:
        """A product computed elsewhere (``.npy``, int32, m x n): checked here before it counts."""
        return self.finish(job_id, _load_product(npy_bytes, "the peer's product"), from_peer=True)

    # --- external miners ---------------------------------------------------------------------

    def _expire_leases(self) -> None:
        """(lock held) Put the jobs of leases that ran out back in the queue."""
        if not self._leases:
            return
        now = self.clock()
        for lease in [x for x in self._leases.values() if x.expires <= now]:
            del self._leases[lease.job_id]
            job = self._jobs.get(lease.job_id)
            if job is not None and job.status == MINING:
                job.status, job.started = QUEUED, None
                self._changed(job)

    def lease(self, worker: str) -> tuple[Job, Lease] | None:
        """Lease the next queued job (paid first) to ``worker`` (the one it holds already, if any); None if none waits.

        The job becomes ``mining`` for ``lease_seconds`` of its padded shape; a
        job handed out ``MAX_MINING_ATTEMPTS`` times fails instead.
        """
        self.expire()
        while True:
            with self._lock:
                self._expire_leases()
                for held in self._leases.values():
                    if held.worker == worker:
                        return copy.copy(self._jobs[held.job_id]), held
                queued = [j for j in self._jobs.values() if j.status == QUEUED]
                if not queued:
                    return None
                job = self._pick(queued)
                if job.attempts < MAX_MINING_ATTEMPTS:
                    now = self.clock()
                    job.status, job.started, job.attempts = MINING, now, job.attempts + 1
                    lease = self._leases[job.job_id] = Lease(job.job_id, worker, now + lease_seconds(job.padded))
                    self._changed(job)
                    return copy.copy(job), lease
            self.fail(job.job_id, f"handed to miners {job.attempts} times without a result; not tried again")

    def leases(self) -> builtins.list[Lease]:
        with self._lock:
            self._expire_leases()
            return list(self._leases.values())

    def finish_from_miner(self, job_id: str, npy_bytes: bytes, worker: str) -> Job:
        """A product from external miner ``worker`` (``.npy``, int32, m x n): checked like a peer's.

        Raises ``JobError``: ``not-found``; ``not-waiting`` (the job is no
        longer waiting: done, failed or cancelled); ``invalid`` (not a 2-D int32
        ``.npy``, the wrong shape, or it fails Freivalds' check; the job keeps
        waiting and its lease holds); ``no-space``.
        """
        job = self.get(job_id)
        if job.status not in WAITING:
            raise JobError("not-waiting", f"job {job_id} is {job.status}; it takes no product")
        done = self.finish(job_id, _load_product(npy_bytes, "the product"), from_peer=True,
                           computed_by=f"pouw-miner {worker}")
        if done.status != DONE:
            raise JobError("not-waiting", f"job {job_id} is {done.status}; it takes no product")
        return done

    def fail(self, job_id: str, error: str) -> Job:
        """Mark a waiting job failed with ``error`` (a job already final is left as it is)."""
        with self._lock:
            job = self.get(job_id)
            self._mining.pop(job_id, None)
            if job.status not in WAITING:
                return job
            job.status, job.finished, job.error = FAILED, self.clock(), error
            self._leases.pop(job_id, None)
            self._prepared.pop(job_id, None)
            self._changed(job)
        self._release(job)
        return job
