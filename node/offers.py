"""``OfferBook``: the node's view of paid job offers (section 11), live ones and the history consensus forgets.

Consensus keeps a job record only while it is live and deletes it when final,
so "who claimed it, in which block, how did it end" exists nowhere on chain
after the end. The book keeps it, per offer id: the offer's txid and height,
the claim's, the final transaction's kind, txid and height, and the last
record the tip snapshot showed (``None`` once final).

Fed from the ``TipMoved`` event (``on_tip_change``): disconnected blocks are
undone first (tip first, their job transactions in reverse: an offer taken
back forgets the offer, a claim its claim fields, a final its final fields),
then the connected blocks are applied, then every touched offer's record is
read again from the new tip's snapshot. Reorgs therefore leave the book as if
the new branch had always been the chain.

Storage: one JSON value per offer under ``OFFER_BOOK + offer_id`` in the jobs
database (``node.jobs`` uses other prefixes), written in one batch per tip
change, so a restart keeps the history. On start, ``rebuild`` reads the
stored history and the chain's live records (``ChainService.job_records``):
live records win, and a stored offer that is neither live nor final (a crash
between the chain's write and the book's) is forgotten.

Bounds: live offers are bounded by the chain's state (each one escrows coins
and paid a fee). Final offers are kept up to ``max_final`` (``MAX_FINAL``,
10,000); beyond that the oldest final one (lowest final height, then oldest
offer) is evicted, from memory and the store. ``list`` answers at most 1,000.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from consensus.jobmarket import compute_offer_id
from consensus.networks import NetworkParams
from consensus.tx import compute_tx_id, get_sender
from consensus.types import (
    KIND_ACCEPT,
    KIND_CLAIM,
    KIND_FRAUD,
    KIND_OFFER,
    KIND_REFUND,
    KIND_REJECT,
    KIND_SETTLE,
    RECORD_CLAIMED,
    RECORD_OPEN,
    Block,
    ClaimPayload,
    JobRecord,
    JobTxBody,
    OfferPayload,
)

from .snapshot import ChainSnapshot
from .store import KeyValueStore, WriteBatch

OFFER_BOOK = b"W"
"""Key prefix of the book's entries in the jobs database."""
MAX_FINAL = 10_000
"""Final offers kept; the oldest final one is evicted beyond."""
MAX_LIST = 1000
"""Most offers one ``list`` answers."""

FINAL_STATUS = {KIND_ACCEPT: "accepted", KIND_SETTLE: "settled", KIND_REJECT: "rejected", KIND_FRAUD: "fraud",
                KIND_REFUND: "refunded"}
"""The status of an offer that ended with each kind."""
STATUSES = ("open", "claimed", *FINAL_STATUS.values())


class AddressCodec(Protocol):
    """What the book needs of ``node.api.views.Addresses``: bech32m text of an address."""

    def encode(self, address: bytes) -> str: ...


@dataclass
class OfferInfo:
    """One offer as this node saw it; ``record`` is the live record at the tip (``None`` once final)."""

    offer_id: bytes
    job_id: bytes
    client: bytes
    m: int
    k: int
    n: int
    root_a: bytes
    root_b: bytes
    reward: int
    deposit: int
    bond: int
    deadline: int
    window: int
    """The network's challenge window ``W``."""
    seq: int
    """Order of arrival in the book (newest highest)."""
    encode_address: Callable[[bytes], str] | None = field(repr=False, compare=False, default=None)
    offer_txid: bytes | None = None
    offer_height: int | None = None
    claimant: bytes | None = None
    root_c: bytes | None = None
    claim_txid: bytes | None = None
    claim_height: int | None = None
    final_kind: int | None = None
    final_txid: bytes | None = None
    final_height: int | None = None
    record: JobRecord | None = None

    @property
    def live(self) -> bool:
        return self.record is not None

    @property
    def status(self) -> str:
        if self.record is not None:
            return "claimed" if self.record.status == RECORD_CLAIMED else "open"
        if self.final_kind is not None:
            return FINAL_STATUS[self.final_kind]
        return "claimed" if self.claim_height is not None else "open"

    def _addr(self, address: bytes | None) -> str | None:
        if address is None:
            return None
        encode = self.encode_address
        return encode(address) if encode is not None else address.hex()

    def to_json(self, tip_height: int, product: dict | None, pending: Sequence[bytes] = ()) -> dict:
        """The ``getjoboffer`` answer (amounts in base units, addresses bech32m, hashes hex).

        ``tip_height`` is accepted for the caller's view of the window (kept in the
        signature of the contract); ``pending`` are the txids of this offer's job
        transactions in the mempool.
        """
        claim_height = self.claim_height
        window_end = None if claim_height is None else claim_height + self.window
        return {
            "offer_id": self.offer_id.hex(), "job_id": self.job_id.hex(), "client": self._addr(self.client),
            "status": self.status, "live": self.live, "m": self.m, "k": self.k, "n": self.n,
            "root_a": self.root_a.hex(), "root_b": self.root_b.hex(), "reward": self.reward,
            "deposit": self.deposit, "bond": self.bond, "deadline": self.deadline,
            "offer_txid": _hex(self.offer_txid), "offer_height": self.offer_height,
            "claimant": self._addr(self.claimant), "root_c": _hex(self.root_c),
            "claim_txid": _hex(self.claim_txid), "claim_height": claim_height, "window_end": window_end,
            "settle_height": None if window_end is None else window_end + 1,
            "final_txid": _hex(self.final_txid), "final_height": self.final_height,
            "pending": [t.hex() for t in pending], "product": product,
        }

    def encode(self) -> bytes:
        """The stored form (JSON; the live record is not stored: it comes from the chain)."""
        d = {"offer_id": self.offer_id.hex(), "job_id": self.job_id.hex(), "client": self.client.hex(),
             "m": self.m, "k": self.k, "n": self.n, "root_a": self.root_a.hex(), "root_b": self.root_b.hex(),
             "reward": self.reward, "deposit": self.deposit, "bond": self.bond, "deadline": self.deadline,
             "seq": self.seq, "offer_txid": _hex(self.offer_txid), "offer_height": self.offer_height,
             "claimant": _hex(self.claimant), "root_c": _hex(self.root_c), "claim_txid": _hex(self.claim_txid),
             "claim_height": self.claim_height, "final_kind": self.final_kind, "final_txid": _hex(self.final_txid),
             "final_height": self.final_height}
        return json.dumps(d, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes, window: int) -> OfferInfo:
        d = json.loads(raw)
        return cls(bytes.fromhex(d["offer_id"]), bytes.fromhex(d["job_id"]), bytes.fromhex(d["client"]),
                   d["m"], d["k"], d["n"], bytes.fromhex(d["root_a"]), bytes.fromhex(d["root_b"]),
                   d["reward"], d["deposit"], d["bond"], d["deadline"], window, d["seq"],
                   offer_txid=_unhex(d["offer_txid"]), offer_height=d["offer_height"],
                   claimant=_unhex(d["claimant"]), root_c=_unhex(d["root_c"]), claim_txid=_unhex(d["claim_txid"]),
                   claim_height=d["claim_height"], final_kind=d["final_kind"], final_txid=_unhex(d["final_txid"]),
                   final_height=d["final_height"])


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def _unhex(s: str | None) -> bytes | None:
    return None if s is None else bytes.fromhex(s)


class OfferBook:
    """Every offer this node knows: live ones from the chain, final ones from its own history (bounded)."""

    def __init__(self, store: KeyValueStore, params: NetworkParams, addresses: AddressCodec | None = None, *,
                 max_final: int = MAX_FINAL) -> None:
        self._store = store
        self.params = params
        self._encode = addresses.encode if addresses is not None else None
        self.max_final = max_final
        self._offers: dict[bytes, OfferInfo] = {}
        """Offer id -> info, in ``seq`` order (oldest first)."""
        self._by_job: dict[bytes, set[bytes]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._offers)

    # --- start --------------------------------------------------------------------------------

    def rebuild(self, live: Iterable[tuple[bytes, JobRecord]]) -> None:
        """Load the stored history, then the chain's live records (``ChainService.job_records``)."""
        stored = [OfferInfo.decode(raw, self.params.job_window) for _, raw in self._store.iterate(OFFER_BOOK)]
        self._offers.clear()
        self._by_job.clear()
        for info in sorted(stored, key=lambda i: i.seq):
            info.encode_address = self._encode
            self._put(info)
            self._seq = max(self._seq, info.seq)
        seen: set[bytes] = set()
        batch = WriteBatch()
        for offer_id, record in live:
            seen.add(offer_id)
            info = self._offers.get(offer_id) or self._new(offer_id, record)
            self._set_record(info, record)
            batch.put(OFFER_BOOK + offer_id, info.encode())
        for offer_id in [o for o, i in self._offers.items() if o not in seen and i.final_kind is None]:
            self._forget(offer_id, batch)
        self._evict(batch)
        if len(batch):
            self._store.write(batch)

    # --- tip changes --------------------------------------------------------------------------

    def on_tip_change(self, connected: Sequence[Block], disconnected: Sequence[Block],
                      snapshot: ChainSnapshot) -> None:
        """Undo ``disconnected`` (tip first), apply ``connected`` (lowest first), refresh touched records."""
        touched: set[bytes] = set()
        batch = WriteBatch()
        for block in disconnected:
            for tx in reversed(block.signed):
                if isinstance(tx.body, JobTxBody):
                    self._undo(tx.body, get_sender(tx), touched, batch)
        for block in connected:
            for tx in block.signed:
                if isinstance(tx.body, JobTxBody):
                    self._do(tx.body, get_sender(tx), compute_tx_id(tx), block.height, touched)
        for offer_id in touched:
            info = self._offers.get(offer_id)
            if info is None:
                continue
            self._set_record(info, snapshot.get_job_record(offer_id))
            batch.put(OFFER_BOOK + offer_id, info.encode())
        self._evict(batch)
        if len(batch):
            self._store.write(batch)

    def _do(self, body: JobTxBody, sender: bytes, txid: bytes, height: int, touched: set[bytes]) -> None:
        if body.kind == KIND_OFFER:
            offer = body.payload
            assert isinstance(offer, OfferPayload)
            offer_id = compute_offer_id(sender, body.nonce)
            info = self._offers.get(offer_id)
            if info is None:
                self._seq += 1
                info = OfferInfo(offer_id, body.id, sender, offer.m, offer.k, offer.n, offer.root_a, offer.root_b,
                                 offer.reward, offer.deposit, offer.bond, offer.deadline, self.params.job_window,
                                 self._seq, self._encode)
                self._put(info)
            info.offer_txid, info.offer_height = txid, height
            touched.add(offer_id)
            return
        info = self._offers.get(body.id)
        if info is None:  # an offer older than this book (its history began after it): learn it from the record
            touched.add(body.id)
            return
        if body.kind == KIND_CLAIM:
            claim = body.payload
            assert isinstance(claim, ClaimPayload)
            info.claimant, info.root_c, info.claim_txid, info.claim_height = sender, claim.root_c, txid, height
        else:
            info.final_kind, info.final_txid, info.final_height = body.kind, txid, height
        touched.add(body.id)

    def _undo(self, body: JobTxBody, sender: bytes, touched: set[bytes], batch: WriteBatch) -> None:
        if body.kind == KIND_OFFER:
            offer_id = compute_offer_id(sender, body.nonce)
            if offer_id in self._offers:
                self._forget(offer_id, batch)
            touched.discard(offer_id)
            return
        info = self._offers.get(body.id)
        if info is None:
            return
        if body.kind == KIND_CLAIM:
            info.claimant = info.root_c = info.claim_txid = info.claim_height = None
        else:
            info.final_kind = info.final_txid = info.final_height = None
        touched.add(body.id)

    # --- bookkeeping --------------------------------------------------------------------------

    def _new(self, offer_id: bytes, record: JobRecord) -> OfferInfo:
        self._seq += 1
        info = OfferInfo(offer_id, record.job_id, record.client, record.m, record.k, record.n, record.root_a,
                         record.root_b, record.reward, record.deposit, record.bond, record.deadline,
                         self.params.job_window, self._seq, self._encode)
        self._put(info)
        return info

    def _set_record(self, info: OfferInfo, record: JobRecord | None) -> None:
        info.record = record
        if record is not None and record.status == RECORD_CLAIMED and info.claim_height is None:
            info.claimant, info.root_c, info.claim_height = record.claimant, record.root_c, record.claim_height

    def _put(self, info: OfferInfo) -> None:
        self._offers[info.offer_id] = info
        self._by_job.setdefault(info.job_id, set()).add(info.offer_id)

    def _forget(self, offer_id: bytes, batch: WriteBatch) -> None:
        info = self._offers.pop(offer_id)
        ids = self._by_job.get(info.job_id)
        if ids is not None:
            ids.discard(offer_id)
            if not ids:
                del self._by_job[info.job_id]
        batch.delete(OFFER_BOOK + offer_id)

    def _evict(self, batch: WriteBatch) -> None:
        final = [i for i in self._offers.values() if i.record is None and i.final_kind is not None]
        excess = len(final) - self.max_final
        if excess <= 0:
            return
        final.sort(key=lambda i: (i.final_height or 0, i.seq))
        for info in final[:excess]:
            self._forget(info.offer_id, batch)

    # --- reads --------------------------------------------------------------------------------

    def get(self, offer_id: bytes) -> OfferInfo | None:
        return self._offers.get(offer_id)

    def list(self, status: str | None = None, limit: int = 100) -> list[OfferInfo]:
        """Offers newest first, of one status (``STATUSES``) or all, at most ``min(limit, MAX_LIST)``."""
        limit = max(0, min(limit, MAX_LIST))
        out: list[OfferInfo] = []
        for info in reversed(self._offers.values()):
            if len(out) >= limit:
                break
            if status is None or info.status == status:
                out.append(info)
        return out

    def offers_for_job(self, job_id: bytes) -> builtins.list[OfferInfo]:
        """Every offer carrying ``job_id``, newest first."""
        infos = [self._offers[o] for o in self._by_job.get(job_id, ())]
        return sorted(infos, key=lambda i: -i.seq)

    def open_offers_for_job(self, job_id: bytes) -> builtins.list[tuple[bytes, JobRecord]]:
        """Live open records carrying ``job_id`` (as of the last tip change)."""
        return [(i.offer_id, i.record) for i in self.offers_for_job(job_id)
                if i.record is not None and i.record.status == RECORD_OPEN]

    def claimed_by(self, address: bytes) -> builtins.list[tuple[bytes, JobRecord]]:
        """Live claimed records whose claimant is ``address`` (the claim-key miner settles them after ``W``)."""
        return [(i.offer_id, i.record) for i in self._offers.values()
                if i.record is not None and i.record.status == RECORD_CLAIMED and i.record.claimant == address]
