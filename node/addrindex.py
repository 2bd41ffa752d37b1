"""The address index: every main-chain transaction an address took part in, readable newest first by point reads.

Why this shape: readers (the explorer's RPC views) work on a ``ChainSnapshot``,
whose store view only has ``get``; a per-address counter plus numbered entries
(``schema.addr_count_key`` / ``schema.addr_tx_key``, layout in ``node.schema``)
turns "the newest ``limit`` entries before ``cursor``" into ``limit + 1`` point
reads, whatever the address's history length.

Writes ride in the chain's own batches: ``connect_ops`` and ``disconnect_ops``
return the puts (``(key, value)``) and deletes (``(key, None)``) for one block,
and ``ChainService._plan_connect`` / ``_plan_disconnect`` append them to the
block's batch, so the index is exactly as crash-safe as the accounts. A reorg
plans every step before writing any, so a step must see the counts the steps
before it planned: they live in an overlay keyed by the plan's object (the
chain's ``PlannedView``) and vanish with it.

Which addresses a transaction touches: a coinbase, its recipient; a transfer,
its sender and recipient; a job transaction (section 11), its sender, and the
addresses it pays: accept and settle pay the claimant and the client, fraud
and refund the client (reject pays nobody; offer and claim only pay in). The
genesis block is written apart from the connect path and is not indexed; its
allocations are a constant of the network (the explorer lists them itself).

Why the index keeps its own "parties" record per offer (client, and claimant
once claimed; ``parties_key``) instead of reading the job record: the chain
plans a block's index ops after ``apply_block`` has changed the planned view's
records, and a final transaction deletes its record, so at that point the
record that named the claimant is gone; in a reorg plan the record as of
before the block is not reachable either. The parties record is derived from
the blocks alone (an offer writes the client, a claim the claimant; a
disconnect puts back what was there before), so it is as reorg-safe as the
counts (it rides in the same overlay), costs one point read per job
transaction, and ``add_block`` replays (``verify_store``) rebuild it exactly.
It lives under the ``ADDR_COUNT`` prefix with a longer key (``N`` + ``o`` +
offer id, 34 bytes, where counts are 21), so it is read, written and checked
with the rest of the index. One such record per offer ever mined (20 or 40
bytes): the index grows with the chain's transactions anyway.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from consensus.codec import encode_transaction
from consensus.jobmarket import compute_offer_id
from consensus.tx import compute_tx_id, get_sender
from consensus.types import (
    ADDRESS_SIZE,
    KIND_ACCEPT,
    KIND_CLAIM,
    KIND_FRAUD,
    KIND_OFFER,
    KIND_REFUND,
    KIND_SETTLE,
    Block,
    Coinbase,
    JobTxBody,
    Transaction,
    TxBody,
)

from . import schema
from .errors import StorageError
from .store import KeyValueReader

ROLE_SENDER = 1
ROLE_RECIPIENT = 2

_ENTRY = struct.Struct(">QIIB32s")
_COUNT = struct.Struct(">Q")

PARTIES_TAG = b"o"
"""Second byte of a parties record's key (``ADDR_COUNT`` + tag + offer id)."""

Parties = tuple[bytes, bytes | None]
"""An offer's client and claimant (None while unclaimed)."""
PartiesOf = Callable[[bytes], Parties | None]

Op = tuple[bytes, bytes | None]
"""A put ``(key, value)`` or a delete ``(key, None)``, as ``WriteBatch.ops`` holds them."""

_overlays: weakref.WeakKeyDictionary[object, dict[bytes, bytes | None]] = weakref.WeakKeyDictionary()
"""Counts planned but not yet written, per plan object (one reorg); gone with the plan."""


@dataclass(frozen=True)
class Entry:
    """One address-index entry: where a transaction that touched the address sits on the main chain."""

    seq: int
    """Number of the entry among the address's (0 = oldest)."""
    height: int
    position: int
    """Index of the transaction in its block (0 = coinbase)."""
    offset: int
    """Byte offset of the transaction's ``u32`` length prefix in the stored block body."""
    role: int
    """``ROLE_SENDER``, ``ROLE_RECIPIENT`` or both."""
    tx_id: bytes


def encode_entry(height: int, position: int, offset: int, role: int, tx_id: bytes) -> bytes:
    return _ENTRY.pack(height, position, offset, role, tx_id)


def decode_entry(seq: int, data: bytes) -> Entry:
    """Parse an entry; ``StorageError`` if malformed."""
    if len(data) != _ENTRY.size:
        raise StorageError(f"address index entry is {len(data)} bytes, expected {_ENTRY.size}")
    return Entry(seq, *_ENTRY.unpack(data))


def decode_count(data: bytes | None) -> int:
    if data is None:
        return 0
    if len(data) != _COUNT.size:
        raise StorageError(f"address index count is {len(data)} bytes, expected {_COUNT.size}")
    return _COUNT.unpack(data)[0]


def parties_key(offer_id: bytes) -> bytes:
    """Key of an offer's parties record (client, claimant) in the address index."""
    return schema.ADDR_COUNT + PARTIES_TAG + offer_id


def encode_parties(parties: Parties) -> bytes:
    client, claimant = parties
    return client + (claimant or b"")


def decode_parties(data: bytes | None) -> Parties | None:
    """Parse a parties record; ``StorageError`` if malformed."""
    if data is None:
        return None
    if len(data) not in (ADDRESS_SIZE, 2 * ADDRESS_SIZE):
        raise StorageError(f"address index parties record is {len(data)} bytes, expected 20 or 40")
    return data[:ADDRESS_SIZE], data[ADDRESS_SIZE:] or None


_PAID = {KIND_ACCEPT: (True, True), KIND_SETTLE: (True, True), KIND_FRAUD: (True, False),
         KIND_REFUND: (True, False)}
"""Job kinds that pay out: (pays the client, pays the claimant)."""


def tx_addresses(tx: Transaction, parties: PartiesOf | None = None) -> dict[bytes, int]:
    """The addresses a transaction touches, each with its role bits (a self-transfer is one address, both roles).

    ``parties`` gives an offer's client and claimant as of the transaction;
    without it (or when it knows nothing of the offer) a job transaction
    touches its sender only.
    """
    if isinstance(tx, Coinbase):
        return {tx.to: ROLE_RECIPIENT}
    out = {get_sender(tx): ROLE_SENDER}
    b = tx.body
    if isinstance(b, TxBody):
        out[b.to] = out.get(b.to, 0) | ROLE_RECIPIENT
    elif isinstance(b, JobTxBody) and b.kind in _PAID and parties is not None:
        known = parties(b.id)
        if known is not None:
            pays_client, pays_claimant = _PAID[b.kind]
            client, claimant = known
            for address, paid in ((client, pays_client), (claimant, pays_claimant)):
                if paid and address is not None:
                    out[address] = out.get(address, 0) | ROLE_RECIPIENT
    return out


def _block_entries(block: Block, before: PartiesOf) -> tuple[list[tuple[bytes, int, int, int, bytes]],
                                                             dict[bytes, Parties | None]]:
    """``(address, position, offset, role, tx id)`` for every (transaction, address) of a block, in block order,
    and the parties records the block's offers and claims leave (``before``: the records as of before the block)."""
    after: dict[bytes, Parties | None] = {}

    def current(offer_id: bytes) -> Parties | None:
        return after[offer_id] if offer_id in after else before(offer_id)

    out = []
    offset = 4  # after the body's u32 tx_count
    for position, tx in enumerate(block.transactions):
        raw = encode_transaction(tx)
        tx_id = compute_tx_id(tx)
        for address, role in tx_addresses(tx, current).items():
            out.append((address, position, offset, role, tx_id))
        if not isinstance(tx, Coinbase) and isinstance(tx.body, JobTxBody):
            b = tx.body
            if b.kind == KIND_OFFER:
                after[compute_offer_id(get_sender(tx), b.nonce)] = (get_sender(tx), None)
            elif b.kind == KIND_CLAIM:
                known = current(b.id)
                if known is not None:
                    after[b.id] = (known[0], get_sender(tx))
        offset += 4 + len(raw)
    return out, after


def _parties_before(block: Block, view: _Planned) -> dict[bytes, Parties | None]:
    """The parties records a block's offers and claims changed, as they were before it (read from after it):
    an offer's did not exist, a claimed offer's had no claimant. Walked tip-side first, so an offer and its
    claim in one block end as "did not exist"."""
    before: dict[bytes, Parties | None] = {}
    for tx in reversed(block.signed):
        b = tx.body
        if isinstance(b, JobTxBody) and b.kind == KIND_OFFER:
            before[compute_offer_id(get_sender(tx), b.nonce)] = None
        elif isinstance(b, JobTxBody) and b.kind == KIND_CLAIM:
            known = before[b.id] if b.id in before else decode_parties(view.get(parties_key(b.id)))
            if known is not None:
                before[b.id] = (known[0], None)
    return before


class _Planned:
    """Reads counts through a plan's overlay to the store; every write goes to the returned ops.

    Only ``ADDR_COUNT`` keys need the overlay (the counts and the offers'
    parties records): a plan disconnects (tip first) before it connects, a
    disconnect reads the entries just below the count it reads, which no
    earlier step of the plan wrote or deleted, and a connect reads counts and
    parties only. So the overlay holds one count per address and one parties
    record per offer the plan touches, however long the reorg.
    """

    def __init__(self, store: KeyValueReader, plan: object | None) -> None:
        self.store = store
        self.overlay: dict[bytes, bytes | None] = {} if plan is None else _overlays.setdefault(plan, {})
        self.ops: list[Op] = []

    def get(self, key: bytes) -> bytes | None:
        if key in self.overlay:
            return self.overlay[key]
        return self.store.get(key)

    def put(self, key: bytes, value: bytes | None) -> None:
        if key[:1] == schema.ADDR_COUNT:
            self.overlay[key] = value
        self.ops.append((key, value))


def connect_ops(store: KeyValueReader, plan: object | None, block: Block) -> list[Op]:
    """The index records that connecting ``block`` on top of ``store`` (plus the plan so far) adds.

    ``plan``: the object that lives as long as one reorg plan (``None``: a
    plan of this block alone).
    """
    if block.height == 0:
        return []
    view = _Planned(store, plan)
    entries, parties = _block_entries(block, lambda offer_id: decode_parties(view.get(parties_key(offer_id))))
    counts: dict[bytes, int] = {}
    for address, position, offset, role, tx_id in entries:
        seq = counts[address] if address in counts else decode_count(view.get(schema.addr_count_key(address)))
        view.put(schema.addr_tx_key(address, seq), encode_entry(block.height, position, offset, role, tx_id))
        counts[address] = seq + 1
    for address, count in counts.items():
        view.put(schema.addr_count_key(address), _COUNT.pack(count))
    for offer_id, p in parties.items():
        view.put(parties_key(offer_id), None if p is None else encode_parties(p))
    return view.ops


def disconnect_ops(store: KeyValueReader, plan: object | None, block: Block) -> list[Op]:
    """The index records that disconnecting ``block`` (the tip of ``store`` plus the plan so far) removes.

    The block's entries are the newest of each address it touches; only
    entries that name the block's height are removed, so an index that
    missed the block (a database written before the index existed) loses
    nothing else; ``verify_store`` reports such a gap.
    """
    if block.height == 0:
        return []
    view = _Planned(store, plan)
    before = _parties_before(block, view)
    block_entries, _ = _block_entries(
        block, lambda o: before[o] if o in before else decode_parties(view.get(parties_key(o))))
    per_address: dict[bytes, int] = {}
    for address, *_ in block_entries:
        per_address[address] = per_address.get(address, 0) + 1
    for address, entries in per_address.items():
        count = decode_count(view.get(schema.addr_count_key(address)))
        new_count = count
        while new_count > 0 and count - new_count < entries:
            raw = view.get(schema.addr_tx_key(address, new_count - 1))
            if raw is None or decode_entry(new_count - 1, raw).height != block.height:
                break
            new_count -= 1
            view.put(schema.addr_tx_key(address, new_count), None)
        if new_count != count:
            view.put(schema.addr_count_key(address), _COUNT.pack(new_count) if new_count else None)
    for offer_id, p in before.items():
        view.put(parties_key(offer_id), None if p is None else encode_parties(p))
    return view.ops


def entry_count(reader: KeyValueReader, address: bytes) -> int:
    """How many index entries ``address`` has."""
    return decode_count(reader.get(schema.addr_count_key(address)))


def history(reader: KeyValueReader, address: bytes, before: int | None, limit: int) -> tuple[int, list[Entry]]:
    """The address's entry count and its newest ``limit`` entries with ``seq < before`` (all if None), newest first.

    Costs ``limit + 1`` point reads.
    """
    count = entry_count(reader, address)
    start = count if before is None else min(before, count)
    out = []
    for seq in range(start - 1, max(start - limit, 0) - 1, -1):
        raw = reader.get(schema.addr_tx_key(address, seq))
        if raw is None:
            raise StorageError(f"address index of {address.hex()} counts {count} entries but lacks number {seq}")
        out.append(decode_entry(seq, raw))
    return count, out


def add_block(records: dict[bytes, bytes], block: Block) -> None:
    """Add to ``records`` (an index held in memory) what connecting ``block`` adds: replays and checks build the
    index a main chain should have this way, one block at a time."""
    for key, value in connect_ops(_DictReader(records), None, block):
        if value is None:
            records.pop(key, None)
        else:
            records[key] = value


class _DictReader:
    """``KeyValueReader`` over a plain dict."""

    def __init__(self, records: dict[bytes, bytes]) -> None:
        self.records = records

    def get(self, key: bytes) -> bytes | None:
        return self.records.get(key)
