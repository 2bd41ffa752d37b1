"""Claimed products (PROTOCOL.md section 11): the products a node holds for job offers, and when it serves them.

A paid job's product is worth a bond until its claim confirms: a claimant that
served ``C`` before its own claim was buried could be robbed by a copy of its
claim (the honest path of section 11). So every product held for an offer is
*withheld* (not announced, its blob not served to peers or ``GET /blobs``)
until a claim carrying its ``root_C`` has ``confirmations`` confirmations on
this node's main chain (``tip - claim_height + 1 >= confirmations``,
``--claim-confirmations``, default 2). Then it is *served*: announced as the
job's result and its blob handed to whoever asks.

Products come from four places (``ClaimProduct.source``): ``mined`` (this
node's miner computed the job and claimed it, node/claimer.py), ``miner`` (a
``pouw-miner`` handed it in with ``submitmatmulresult``), ``upload``
(``PUT /blobs?claim_of=OFFER_ID``: a claimant that computed ``C`` elsewhere),
and ``peer`` (fetched after a peer announced it; kept when its ``root_C``
equals an on-chain claim's, *even when Freivalds fails*: the client needs the
wrong product to prove fraud, so relaying it is no fault of the peer).
``freivalds_ok`` is the check's outcome where this node holds the job's
matrices, else ``None``.

Bounds: at most ``max_products`` products and ``max_bytes`` of product blobs
are held. Eviction rule: when a new product does not fit, products whose offer
is no longer live (its record is final, or gone from the chain) are dropped,
oldest first; a product of a live offer (open or claimed) is never evicted,
and when nothing can be dropped the new product is refused
(``ClaimError("full")``). Held products are referenced in the blob store (never
evicted there) and their metadata is kept in the jobs database under the
``P`` prefix, so a restart keeps serving (or withholding) them.

``OfferIndex`` keeps the live job records by job id, refreshed from the chain
on every tip change (``ChainService.job_records``, at most ``INDEX_LIMIT`` in
offer-id order: beyond that an offer's job is mined as a free one): the queue
order, the claimer and the intake of peers' products read it. It is a
thread-safe copy (the miner's thread reads it for the queue order); the
``OfferBook`` (node/offers.py) is the node's history for RPC.

Locking: one lock guards the products; the blob store is never called while it
is held (the store calls ``referenced`` and ``withheld`` under its own lock).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from consensus.jobmarket import padded_dims
from consensus.types import RECORD_CLAIMED, RECORD_OPEN, JobRecord
from pouw.jobs import product_hash
from pouw.tiles import compute_root_c

from .blobs import BlobError, BlobStore, encode_npy, load_matrix
from .jobs import JobError, JobService, freivalds_evidence
from .store import KeyValueStore, WriteBatch

PREFIX = b"P"
"""Key prefix of claim products in the jobs database (``P`` + offer id)."""
MAX_PRODUCTS = 256
DEFAULT_MAX_BYTES = 1 << 30
"""Product bytes held at most by default (also at most half the blob quota, see ``ClaimProducts``)."""
INDEX_LIMIT = 4096
"""Live job records the index reads from the chain on each tip change."""
SOURCES = ("mined", "miner", "upload", "peer")


class ClaimError(Exception):
    """A product was refused; ``kind``: ``not-found`` (no live offer), ``invalid``, ``full``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class ClaimProduct:
    """One product held for one offer."""

    offer_id: bytes
    job_id: bytes
    blob: str
    """Blob hash of the product's ``.npy`` (int32, m x n)."""
    h_c: bytes
    """``H(C)`` (section 9), the hash a result announcement carries."""
    root_c: bytes
    m: int
    n: int
    size: int
    freivalds_ok: bool | None
    source: str
    added: float
    served: bool = False
    live: bool = True
    """The offer's record was open or claimed when last seen."""
    claim_root: bytes | None = None
    """``root_C`` of the on-chain claim of the offer, as last seen."""
    claimant: bytes | None = None
    """This node's own products: the claim key's address; only its own claim serves them (a copy of its claim
    that wins the race is never served, section 11). None: any claim with the root (uploads, peers' products)."""

    def info(self) -> dict:
        """The ``product`` of ``getjoboffer``."""
        return {"blob": self.blob, "h_c": self.h_c.hex(), "root_c": self.root_c.hex(),
                "root_c_ok": self.claim_root is not None and self.claim_root == self.root_c,
                "freivalds_ok": self.freivalds_ok, "source": self.source, "served": self.served}

    def encode(self) -> bytes:
        return json.dumps({"offer_id": self.offer_id.hex(), "job_id": self.job_id.hex(), "blob": self.blob,
                           "h_c": self.h_c.hex(), "root_c": self.root_c.hex(), "m": self.m, "n": self.n,
                           "size": self.size, "freivalds_ok": self.freivalds_ok, "source": self.source,
                           "added": self.added, "served": self.served, "live": self.live,
                           "claim_root": None if self.claim_root is None else self.claim_root.hex(),
                           "claimant": None if self.claimant is None else self.claimant.hex()},
                          sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ClaimProduct:
        d = json.loads(raw)
        return cls(bytes.fromhex(d["offer_id"]), bytes.fromhex(d["job_id"]), d["blob"], bytes.fromhex(d["h_c"]),
                   bytes.fromhex(d["root_c"]), d["m"], d["n"], d["size"], d["freivalds_ok"], d["source"],
                   d["added"], d["served"], d["live"],
                   None if d["claim_root"] is None else bytes.fromhex(d["claim_root"]),
                   None if d.get("claimant") is None else bytes.fromhex(d["claimant"]))


class OfferIndex:
    """Live job records at the tip, by offer id and by job id (thread-safe; replaced whole on refresh)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_offer: dict[bytes, JobRecord] = {}
        self._by_job: dict[bytes, list[bytes]] = {}
        self.height = -1

    def refresh(self, records: Iterable[tuple[bytes, JobRecord]], height: int) -> None:
        by_offer = dict(records)
        by_job: dict[bytes, list[bytes]] = {}
        for offer_id, rec in by_offer.items():
            by_job.setdefault(rec.job_id, []).append(offer_id)
        with self._lock:
            self._by_offer, self._by_job, self.height = by_offer, by_job, height

    def get(self, offer_id: bytes) -> JobRecord | None:
        with self._lock:
            return self._by_offer.get(offer_id)

    def _for_job(self, job_id: bytes, status: int) -> list[tuple[bytes, JobRecord]]:
        with self._lock:
            return [(o, self._by_offer[o]) for o in self._by_job.get(job_id, ()) if self._by_offer[o].status == status]

    def open_offers_for_job(self, job_id: bytes) -> list[tuple[bytes, JobRecord]]:
        """Open offers of a job, best (highest reward) first; the contract's ``OfferBook`` method."""
        return sorted(self._for_job(job_id, RECORD_OPEN), key=lambda x: (-x[1].reward, x[0]))

    def claimed_for_job(self, job_id: bytes) -> list[tuple[bytes, JobRecord]]:
        return self._for_job(job_id, RECORD_CLAIMED)

    def claimed_by(self, address: bytes) -> list[tuple[bytes, JobRecord]]:
        with self._lock:
            return [(o, r) for o, r in self._by_offer.items() if r.status == RECORD_CLAIMED and r.claimant == address]

    def reward_per_mac(self, job_id: str) -> float | None:
        """The queue's priority of a job: the best open offer's reward per padded multiply-add; None if free."""
        offers = self.open_offers_for_job(bytes.fromhex(job_id))
        if not offers:
            return None
        rec = offers[0][1]
        m_p, k_p, n_p = padded_dims(rec.m, rec.k, rec.n)
        return rec.reward / (m_p * k_p * n_p)


def load_product(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """An int32 ``m x n`` product from ``.npy`` bytes; ``ClaimError("invalid")`` otherwise."""
    try:
        c = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # whatever np.load raises on garbage
        raise ClaimError("invalid", f"product: not a .npy file: {e}") from None
    if not isinstance(c, np.ndarray) or c.dtype != np.dtype("<i4") or c.shape != tuple(shape):
        raise ClaimError("invalid", f"product: expected an int32 {shape[0]}x{shape[1]} matrix")
    return c


def product_root(c: np.ndarray, rec: JobRecord) -> bytes:
    """``root_C`` of an ``m x n`` product for the padded shape of ``rec``'s job."""
    m_p, _, n_p = padded_dims(rec.m, rec.k, rec.n)
    return compute_root_c(c, m_p, n_p)


def freivalds_of(jobs: JobService | None, job_id: bytes, c: np.ndarray) -> bool | None:
    """Freivalds' check of ``c`` when this node holds the job's matrices; None when it cannot tell."""
    if jobs is None:
        return None
    try:
        job = jobs.get(job_id.hex())
        a = load_matrix(jobs.blobs.get(job.a), "A")
        b = load_matrix(jobs.blobs.get(job.b), "B")
    except (JobError, BlobError):
        return None
    if a.shape[0] != c.shape[0] or b.shape[1] != c.shape[1]:
        return None
    return bool(freivalds_evidence(a, b, c, job_id)["passed"])


class ClaimProducts:
    """Products held per offer, withheld until their claim confirms (see the module docstring). Thread-safe."""

    def __init__(self, blobs: BlobStore, store: KeyValueStore | None, index: OfferIndex, *,
                 jobs: JobService | None = None, confirmations: int = 2, max_products: int = MAX_PRODUCTS,
                 max_bytes: int | None = None, clock: Callable[[], float] = time.time,
                 get_record: Callable[[bytes], JobRecord | None] | None = None) -> None:
        if confirmations < 1:
            raise ValueError("confirmations must be at least 1")
        self.blobs = blobs
        self.store = store
        self.index = index
        self.jobs = jobs
        self.confirmations = confirmations
        self.max_products = max_products
        self.max_bytes = max_bytes if max_bytes is not None else min(DEFAULT_MAX_BYTES, blobs.quota_bytes // 2)
        self.clock = clock
        self.get_record = get_record or index.get
        """The live record of an offer at the tip (uploads; default: the index)."""
        self._lock = threading.RLock()
        self._products: dict[bytes, ClaimProduct] = {}
        self._held_jobs: set[bytes] = set()
        """Jobs whose product is being claimed (``hold_job``): not announced until released or served."""
        if store is not None:
            for _, raw in store.iterate(PREFIX):
                p = ClaimProduct.decode(raw)
                self._products[p.offer_id] = p
        blobs.add_referenced(self.referenced)
        blobs.set_withheld(self.withheld_blob)

    # --- reading -----------------------------------------------------------------------------

    def get(self, offer_id: bytes) -> ClaimProduct | None:
        with self._lock:
            return self._products.get(offer_id)

    def for_job(self, job_id: bytes) -> list[ClaimProduct]:
        with self._lock:
            return [p for p in self._products.values() if p.job_id == job_id]

    def product_info(self, offer_id: bytes) -> dict | None:
        """``getjoboffer``'s ``product``: ``{"blob", "h_c", "root_c", "root_c_ok", "freivalds_ok", "source",
        "served"}``, or None when no product is held for the offer."""
        p = self.get(offer_id)
        return None if p is None else p.info()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"held": len(self._products), "served": sum(p.served for p in self._products.values()),
                    "bytes": sum(p.size for p in self._products.values())}

    def referenced(self) -> set[str]:
        with self._lock:
            return {p.blob for p in self._products.values()}

    def withheld_blob(self, digest: str) -> bool:
        """A held product's blob whose claim has not confirmed (one served copy under the name serves it)."""
        with self._lock:
            held = [p for p in self._products.values() if p.blob == digest]
        return bool(held) and not any(p.served for p in held)

    def withholds_job(self, job_id: bytes) -> bool:
        """Whether the job's result must not be announced now (its product is being claimed or waits)."""
        with self._lock:
            if job_id in self._held_jobs:
                return True
            held = [p for p in self._products.values() if p.job_id == job_id]
        return bool(held) and not any(p.served for p in held)

    def hold_job(self, job_id: bytes) -> None:
        with self._lock:
            self._held_jobs.add(job_id)

    def release_job(self, job_id: bytes) -> None:
        with self._lock:
            self._held_jobs.discard(job_id)

    def wants_product(self, job_id: bytes) -> list[tuple[bytes, JobRecord]]:
        """Live claimed offers of the job for which no product is held yet (a peer's product is fetched for them)."""
        return [(o, r) for o, r in self.index.claimed_for_job(job_id) if self.get(o) is None]

    # --- adding ------------------------------------------------------------------------------

    def add(self, product: ClaimProduct) -> ClaimProduct:
        """Hold ``product`` (replacing one of the same offer); evict per the rule above, or ``ClaimError("full")``."""
        if product.source not in SOURCES:
            raise ValueError(f"unknown source {product.source!r}")
        with self._lock:
            old = self._products.get(product.offer_id)
            count = len(self._products) - (old is not None) + 1
            size = sum(p.size for p in self._products.values()) - (old.size if old else 0) + product.size
            evict: list[ClaimProduct] = []
            for p in sorted((p for p in self._products.values() if not p.live and p is not old),
                            key=lambda p: p.added):
                if count <= self.max_products and size <= self.max_bytes:
                    break
                evict.append(p)
                count -= 1
                size -= p.size
            if count > self.max_products or size > self.max_bytes:
                raise ClaimError("full", f"this node holds {len(self._products)} claim products "
                                 f"({sum(p.size for p in self._products.values())} bytes) of live offers, the most "
                                 f"it keeps ({self.max_products} products, {self.max_bytes} bytes); try later")
            batch = WriteBatch()
            for p in evict:
                del self._products[p.offer_id]
                batch.delete(PREFIX + p.offer_id)
            self._products[product.offer_id] = product
            batch.put(PREFIX + product.offer_id, product.encode())
            if self.store is not None:
                self.store.write(batch)
        dropped = [p.blob for p in evict] + ([old.blob] if old is not None and old.blob != product.blob else [])
        if dropped:
            self.blobs.discard_unreferenced(dropped)
        return product

    def make(self, offer_id: bytes, rec: JobRecord, data: bytes, source: str, *,
             freivalds_ok: bool | None = None, check: bool = True) -> ClaimProduct:
        """Store ``.npy`` product bytes as a blob and hold them for ``offer_id`` (of live record ``rec``).

        ``check``: run Freivalds when the job's matrices are here (``freivalds_ok``
        given otherwise). Raises ``ClaimError`` or ``BlobError``.
        """
        c = load_product(data, (rec.m, rec.n))
        if check:
            freivalds_ok = freivalds_of(self.jobs, rec.job_id, c)
        root = product_root(c, rec)
        digest = self.blobs.put(data if data[:6] == b"\x93NUMPY" else encode_npy(c))
        product = ClaimProduct(offer_id, rec.job_id, digest, product_hash(c), root, rec.m, rec.n,
                               self.blobs.size(digest), freivalds_ok, source, self.clock(),
                               claim_root=rec.root_c if rec.status == RECORD_CLAIMED else None)
        try:
            return self.add(product)
        except ClaimError:
            self.blobs.discard_unreferenced([digest])
            raise

    # --- PUT /blobs?claim_of= ------------------------------------------------------------------

    def claim_shape(self, offer_id_hex: str) -> tuple[int, int] | None:
        """``(m, n)`` of the product a live (open or claimed) offer takes, or None."""
        rec = self.get_record(bytes.fromhex(offer_id_hex))
        return None if rec is None else (rec.m, rec.n)

    def take_upload(self, offer_id_hex: str, data: bytes) -> dict:
        """An uploaded product for a live offer (work pool): ``{"blob", "root_c", "h_c"}``."""
        offer_id = bytes.fromhex(offer_id_hex)
        rec = self.get_record(offer_id)
        if rec is None:
            raise ClaimError("not-found", f"claim_of: no live offer {offer_id_hex}")
        p = self.make(offer_id, rec, data, "upload")
        return {"blob": p.blob, "root_c": p.root_c.hex(), "h_c": p.h_c.hex()}

    # --- a peer's product ------------------------------------------------------------------------

    def take_from_peer(self, job_id: bytes, digest: str,
                       claims: list[tuple[bytes, JobRecord]]) -> list[ClaimProduct]:
        """A fetched product of ``job_id``: held for each claimed offer whose ``root_C`` it has (work pool)."""
        if not claims:
            return []
        rec0 = claims[0][1]
        c = load_product(self.blobs.get(digest), (rec0.m, rec0.n))
        root = product_root(c, rec0)
        matching = [(o, r) for o, r in claims if r.root_c == root]
        if not matching:
            return []
        ok = freivalds_of(self.jobs, job_id, c)
        out = []
        for offer_id, rec in matching:
            confirmed = self.index.height - rec.claim_height + 1 >= self.confirmations  # else at the next tip
            out.append(self.add(ClaimProduct(offer_id, job_id, digest, product_hash(c), root, rec.m, rec.n,
                                             self.blobs.size(digest), ok, "peer", self.clock(), served=confirmed,
                                             claim_root=rec.root_c)))
        return out

    # --- the chain moved ----------------------------------------------------------------------

    def update(self, get_record: Callable[[bytes], JobRecord | None], tip_height: int
               ) -> tuple[list[ClaimProduct], list[ClaimProduct]]:
        """Bring the held products up to the tip: ``(now served, given up)``.

        Served: a claim with the product's ``root_C`` (and, for this node's own
        products, from its claim key) has ``confirmations``. Given up (only this
        node's own products, ``mined``/``miner``): the offer is final or claimed
        with another ``root_C``, or still open past its deadline, with the
        product never served. A copy of this node's claim that won stays
        withheld until the offer is final. The caller announces the
        served ones, and the given-up ones as a plain job result (they passed
        Freivalds); the latter are dropped here.
        """
        served: list[ClaimProduct] = []
        gone: list[ClaimProduct] = []
        with self._lock:
            products = list(self._products.values())
        changed: list[ClaimProduct] = []
        for p in products:
            rec = get_record(p.offer_id)
            live = rec is not None
            claim_root = rec.root_c if rec is not None and rec.status == RECORD_CLAIMED else p.claim_root
            ready = (rec is not None and rec.status == RECORD_CLAIMED and rec.root_c == p.root_c
                     and (p.claimant is None or rec.claimant == p.claimant)
                     and tip_height - rec.claim_height + 1 >= self.confirmations)
            lost = (not p.served and p.source in ("mined", "miner")
                    and (rec is None or (rec.status == RECORD_CLAIMED and rec.root_c != p.root_c)
                         or (rec.status == RECORD_OPEN and tip_height >= rec.deadline)))
            if lost:
                gone.append(p)
                continue
            if ready and not p.served:
                p.served = True
                served.append(p)
            if live != p.live or claim_root != p.claim_root or p in served:
                p.live, p.claim_root = live, claim_root
                changed.append(p)
        batch = WriteBatch()
        with self._lock:
            for p in gone:
                if self._products.get(p.offer_id) is p:
                    del self._products[p.offer_id]
                    batch.delete(PREFIX + p.offer_id)
            for p in changed:
                if self._products.get(p.offer_id) is p:
                    batch.put(PREFIX + p.offer_id, p.encode())
            if self.store is not None and len(batch):
                self.store.write(batch)
        return served, gone

    def drop(self, offer_id: bytes) -> None:
        """Forget the product of an offer (a claim that could not be sent)."""
        with self._lock:
            p = self._products.pop(offer_id, None)
            if p is not None and self.store is not None:
                batch = WriteBatch()
                batch.delete(PREFIX + offer_id)
                self.store.write(batch)
        if p is not None:
            self.blobs.discard_unreferenced([p.blob])
