"""The chain service: validates, stores, connects and reorganises blocks on a key-value store.

A plain synchronous class, not thread-safe; the daemon reaches it only through
``node.chainhandle.ChainHandle``, which runs every call on one thread.

How a block travels (``submit_block``):

1. Drop duplicates (the caller decoded the block and passes its encoded size).
   A block whose parent is unknown waits in a bounded orphan pool (oldest
   evicted first) until the parent arrives.
2. ``consensus.validation.validate_block`` against the parent: everything but
   account state. An invalid block raises and changes nothing, on disk or in
   memory.
3. If the block's chain has no more work than the tip (ties keep the tip),
   it is stored as a side branch: one write batch (header, certificate, body,
   index record).
4. Otherwise the node moves its tip to the block: it finds the fork point,
   plans every disconnect (undo data) and connect (``consensus.state.apply_block``)
   in memory first, and only when the whole plan is valid writes it, one batch
   per block. A connect batch holds the block's state changes, its undo
   record, its index record, the height index and the tip (and, for the new
   block, its data); a disconnect batch restores the accounts from the undo
   record and moves the tip back. If a block of a stored side branch turns
   out invalid, it and its descendants are marked invalid in memory and
   nothing is written.

Crash safety follows from the batches: every batch leaves the database at a
state where accounts equal a replay of the main chain up to the stored tip.
On open, the service loads the index and, if a crash interrupted a reorg,
moves to the most-work valid chain again. ``verify_chain`` checks all of this.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from consensus.codec import decode_header, encode_block, encode_block_body, encode_certificate, encode_header
from consensus.errors import AncestorInvalid, BadLinkage, BlockTooLarge, ConsensusError, InvalidBlock
from consensus.forkchoice import ChainTip, compute_chain_work, is_better_chain, select_best_tip
from consensus.genesis import ZERO_ID, make_genesis_block
from consensus.networks import NetworkParams
from consensus.state import apply_block
from consensus.tx import compute_tx_id
from consensus.types import Account, Block, Header
from consensus.validation import MEDIAN_TIME_SPAN, ParentInfo, validate_block, validate_certificate
from pouw.header import compute_work

from . import schema
from .chaincheck import ChainReport, verify_store
from .errors import StorageError, WrongDatabaseError
from .records import DictView, PlannedView, StoreView, decode_stored, load_block
from .schema import STATUS_STORED, STATUS_VALID, IndexEntry
from .store import KeyValueReader, KeyValueStore, LevelDBStore, WriteBatch

DEFAULT_MAX_ORPHANS = 100



class BlockStatus(StrEnum):
    """What ``ChainService.submit_block`` did with a valid block."""

    CONNECTED = "connected"
    """The block is now the tip (possibly after a reorg)."""
    SIDE_BRANCH = "side-branch"
    """Valid as far as checkable without its branch's state; stored, not on the main chain."""
    ORPHAN = "orphan"
    """Parent unknown; held in memory until it arrives."""
    DUPLICATE = "duplicate"
    """Already stored or already waiting as an orphan."""


@dataclass(frozen=True)
class TipChange:
    """How the main chain moved."""

    old_tip: bytes
    new_tip: bytes
    disconnected: tuple[bytes, ...]
    """Ids taken off the main chain, tip first."""
    connected: tuple[bytes, ...]
    """Ids put on the main chain, lowest first."""


@dataclass(frozen=True)
class SubmitResult:
    """What ``submit_block`` did with a block."""

    block_id: bytes
    status: BlockStatus
    tip_change: TipChange | None = None
    orphans_accepted: tuple[bytes, ...] = ()
    """Orphans that this block's arrival made acceptable (stored or connected)."""


class ChainService:
    """Block storage, validation, fork choice and reorgs over a ``KeyValueStore``."""

    def __init__(
        self,
        store: KeyValueStore,
        params: NetworkParams,
        *,
        clock: Callable[[], float] = time.time,
        check_certificates: bool = True,
        max_orphans: int = DEFAULT_MAX_ORPHANS,
    ) -> None:
        """Open the chain in ``store`` (writing the genesis block into an empty one).

        ``check_certificates=False`` skips ``pouw.verify`` for every block; it
        exists for tests and benchmarks that build long chains without mining,
        and shipped code never sets it.
        """
        if max_orphans < 1:
            raise ValueError(f"max_orphans must be at least 1, found {max_orphans}")
        self._store = store
        self.params = params
        self._clock = clock
        self._check_certificates = check_certificates
        self.on_certificate_checked: Callable[[float], None] | None = None
        """Called on the chain thread with the seconds of every certificate check (valid or not)."""
        self._max_orphans = max_orphans
        self._index: dict[bytes, IndexEntry] = {}
        self._children: dict[bytes, list[bytes]] = {}
        self._main: list[bytes] = []
        self._invalid: set[bytes] = set()
        self._orphans: OrderedDict[bytes, tuple[Block, int]] = OrderedDict()
        self._orphans_by_parent: dict[bytes, list[bytes]] = {}
        self._next_seq = 0
        self._view = StoreView(store)
        self.genesis = make_genesis_block(params)
        self.genesis_id = self.genesis.header.block_id
        self._open()

    @classmethod
    def open(cls, path: str, params: NetworkParams, *, sync: bool = False, **kwargs) -> ChainService:
        """A chain service on a LevelDB database in directory ``path``."""
        return cls(LevelDBStore(path, sync=sync), params, **kwargs)

    def close(self) -> None:
        """Close the store."""
        self._store.close()

    # --- reading ------------------------------------------------------------------------------

    @property
    def tip(self) -> IndexEntry:
        """Index entry of the main-chain tip."""
        return self._index[self._main[-1]]

    @property
    def tip_id(self) -> bytes:
        """Id of the main-chain tip."""
        return self._main[-1]

    @property
    def height(self) -> int:
        """Height of the main-chain tip."""
        return len(self._main) - 1

    def get_entry(self, block_id: bytes) -> IndexEntry | None:
        """Index entry of a stored block."""
        return self._index.get(block_id)

    def get_block_id(self, height: int) -> bytes | None:
        """Id of the main-chain block at ``height``."""
        return self._main[height] if 0 <= height < len(self._main) else None

    def is_main_chain(self, block_id: bytes) -> bool:
        """True iff ``block_id`` is on the main chain."""
        entry = self._index.get(block_id)
        return entry is not None and self.get_block_id(entry.height) == block_id

    def is_invalid(self, block_id: bytes) -> bool:
        """True iff the block (or an ancestor) failed its state transition in this process."""
        return block_id in self._invalid

    def get_header(self, block_id: bytes) -> Header | None:
        """Header of a stored block."""
        raw = self._store.get(schema.header_key(block_id))
        return None if raw is None else decode_stored(decode_header, raw)

    def get_block(self, block_id: bytes) -> Block | None:
        """A stored block (main chain or side branch)."""
        return self._load_block(block_id) if block_id in self._index else None

    def get_account(self, address: bytes) -> Account:
        """The account of ``address`` at the tip (zero balance and nonce if untouched)."""
        return self._view.get_account(address) or Account()

    def get_parent_info(self, block_id: bytes) -> ParentInfo:
        """What a child of stored block ``block_id`` is validated against (and built on)."""
        entry = self._index[block_id]
        times: list[int] = []
        cursor: IndexEntry | None = entry
        while cursor is not None and len(times) < MEDIAN_TIME_SPAN:
            times.append(cursor.time)
            cursor = self._index.get(cursor.parent)
        return ParentInfo(entry.block_id, entry.height, entry.time, entry.target, tuple(times))

    def entries(self) -> list[IndexEntry]:
        """Index entries of every stored block (main chain and side branches)."""
        return list(self._index.values())

    def get_tx_block(self, tx_id: bytes) -> bytes | None:
        """Id of the main-chain block that carries transaction ``tx_id``, if any."""
        return self._store.get(schema.tx_key(tx_id))

    def orphan_count(self) -> int:
        """Blocks waiting for their parent."""
        return len(self._orphans)

    # --- writing ------------------------------------------------------------------------------

    def submit_block(self, block: Block, size: int | None = None) -> SubmitResult:
        """Validate and accept a block; raise a ``consensus.errors.ConsensusError`` if it is invalid.

        ``size`` is the block's encoded size when the caller has it (it decoded
        the block from bytes); otherwise the block is encoded once to learn it.
        On error nothing changes (neither the database nor the in-memory state).
        """
        if size is None:
            size = len(encode_block(block))
        block_id = block.header.block_id
        if block_id in self._index or block_id in self._orphans:
            return SubmitResult(block_id, BlockStatus.DUPLICATE)
        if block_id in self._invalid or block.prev_id in self._invalid:
            raise AncestorInvalid(f"block {block_id.hex()} is or descends from a block found invalid")
        parent = self._index.get(block.prev_id)
        if parent is None:
            self._add_orphan(block, size)
            return SubmitResult(block_id, BlockStatus.ORPHAN)
        old_tip = self.tip_id
        result = self._accept(block, parent, size)
        accepted = self._process_orphans(block_id)
        if not accepted:
            return result
        # Orphans that connected behind the block moved the tip further: report the whole move.
        return replace(result, orphans_accepted=tuple(accepted), tip_change=self._change_since(old_tip))

    def _change_since(self, old_tip: bytes) -> TipChange | None:
        """How the main chain moved from ``old_tip`` (a stored block) to the current tip."""
        if old_tip == self.tip_id:
            return None
        disconnected = []
        cursor = self._index[old_tip]
        while not self.is_main_chain(cursor.block_id):
            disconnected.append(cursor.block_id)
            cursor = self._index[cursor.parent]
        return TipChange(old_tip, self.tip_id, tuple(disconnected), tuple(self._main[cursor.height + 1:]))

    def snapshot_state(self) -> KeyValueReader:
        """An immutable view of the store (accounts and blocks) as of now; readable from any thread."""
        return self._store.snapshot()

    # --- start-up -----------------------------------------------------------------------------

    def _open(self) -> None:
        raw_meta = self._store.get(schema.META_KEY)
        if raw_meta is None:
            self._write_genesis()
        else:
            meta = schema.decode_meta(raw_meta)
            if meta.schema != schema.SCHEMA_VERSION:
                raise WrongDatabaseError(f"database schema {meta.schema}, this node reads {schema.SCHEMA_VERSION}")
            if meta.network != self.params.name or meta.genesis_id != self.genesis_id:
                raise WrongDatabaseError(
                    f"database holds network {meta.network!r} with genesis {meta.genesis_id.hex()}, "
                    f"expected {self.params.name!r} with genesis {self.genesis_id.hex()}"
                )
        self._load_index()
        self._load_main()
        self._activate_best_chain()

    def _write_genesis(self) -> None:
        genesis = self.genesis
        pre = genesis.header.pre
        entry = IndexEntry(self.genesis_id, 0, ZERO_ID, pre.time, pre.target, compute_work(pre.target),
                           STATUS_VALID, 0)
        change = apply_block(DictView({}), genesis)
        batch = WriteBatch()
        self._put_block(batch, genesis, entry)
        for address, account in change.accounts:
            batch.put(schema.account_key(address), schema.encode_account(account))
        for tx in genesis.transactions:
            batch.put(schema.tx_key(compute_tx_id(tx)), self.genesis_id)
        batch.put(schema.main_key(0), self.genesis_id)
        batch.put(schema.TIP_KEY, self.genesis_id)
        batch.put(schema.META_KEY, schema.encode_meta(
            schema.Meta(schema.SCHEMA_VERSION, self.params.name, self.genesis_id)))
        self._store.write(batch)

    def _load_index(self) -> None:
        for key, value in self._store.iterate(schema.INDEX):
            entry = schema.decode_index(key[1:], value)
            self._index[entry.block_id] = entry
            self._next_seq = max(self._next_seq, entry.seq + 1)
        for entry in self._index.values():
            if entry.height > 0:
                self._children.setdefault(entry.parent, []).append(entry.block_id)

    def _load_main(self) -> None:
        for key, value in self._store.iterate(schema.MAIN):
            height = schema.decode_main_key(key)
            if height != len(self._main):
                raise StorageError(f"main-chain index jumps from height {len(self._main) - 1} to {height}")
            self._main.append(value)
        tip = self._store.get(schema.TIP_KEY)
        if not self._main or self._main[0] != self.genesis_id:
            raise StorageError("main-chain index does not start at the genesis block")
        if tip != self._main[-1]:
            raise StorageError(f"tip record {tip!r} is not the last main-chain block {self._main[-1].hex()}")
        missing = [b.hex() for b in self._main if b not in self._index]
        if missing:
            raise StorageError(f"main-chain blocks without an index record: {missing[:3]}")

    def _activate_best_chain(self) -> None:
        """Move to the most-work valid chain known (after a crash in the middle of a reorg)."""
        while True:
            best = select_best_tip(
                ChainTip(e.block_id, e.chain_work, e.seq) for e in self._index.values()
                if e.block_id not in self._invalid
            )
            if best is None or not is_better_chain(best.chain_work, self.tip.chain_work):
                return
            if self._reorganize(self._index[best.block_id], None) is not None:
                return

    # --- accepting ----------------------------------------------------------------------------

    def _accept(self, block: Block, parent: IndexEntry, size: int) -> SubmitResult:
        block_id = block.header.block_id
        self._validate(block, parent, size)
        pre = block.header.pre
        entry = IndexEntry(block_id, pre.height, pre.prev_id, pre.time, pre.target,
                           compute_chain_work(parent.chain_work, pre.target), STATUS_STORED, self._next_seq)
        if not is_better_chain(entry.chain_work, self.tip.chain_work):
            batch = WriteBatch()
            self._put_block(batch, block, entry)
            self._store.write(batch)
            self._remember(entry)
            return SubmitResult(block_id, BlockStatus.SIDE_BRANCH)
        change = self._reorganize(entry, block)
        assert change is not None
        return SubmitResult(block_id, BlockStatus.CONNECTED, change)

    def _validate(self, block: Block, parent: IndexEntry, size: int) -> None:
        """``validate_block``, its certificate check timed (``on_certificate_checked``) at its own place in
        the order: after the cheap header checks, before any signature."""
        validate_block(block, self.get_parent_info(parent.block_id), self.params, int(self._clock()),
                       encoded_size=size, check_certificate=self._check_certificates,
                       certificate_check=self._timed_certificate_check)

    def _timed_certificate_check(self, block: Block, expected_target: int) -> None:
        start = time.perf_counter()
        try:
            validate_certificate(block, expected_target)
        finally:
            if self.on_certificate_checked is not None:
                self.on_certificate_checked(time.perf_counter() - start)

    def _reorganize(self, target: IndexEntry, pending: Block | None) -> TipChange | None:
        """Make ``target`` the tip. ``pending`` is ``target``'s block when it is not stored yet.

        Plans every step in memory first. If a stored block of the branch is
        invalid it is marked (with its descendants) and ``None`` is returned;
        if ``pending`` itself, or its ancestor, is invalid the error is raised.
        Nothing is written in either case.
        """
        branch: list[IndexEntry] = []
        cursor = target
        while not self.is_main_chain(cursor.block_id):
            branch.append(cursor)
            cursor = self._index[cursor.parent]
        fork = cursor
        branch.reverse()
        old_tip = self.tip_id
        disconnect = list(reversed(self._main[fork.height + 1 :]))

        planned = PlannedView(self._view)
        steps: list[tuple[bool, IndexEntry, WriteBatch]] = []
        for block_id in disconnect:
            entry = self._index[block_id]
            steps.append((False, entry, self._plan_disconnect(entry, planned)))
        for entry in branch:
            is_pending = pending is not None and entry is target
            block = pending if is_pending and pending is not None else self._load_block(entry.block_id)
            try:
                connected, batch = self._plan_connect(entry, block, planned, store_block=is_pending)
            except InvalidBlock as e:
                if is_pending:
                    raise
                self._mark_invalid(entry.block_id)
                if pending is not None:
                    raise AncestorInvalid(
                        f"ancestor {entry.block_id.hex()} at height {entry.height} is invalid: {e}"
                    ) from e
                return None
            steps.append((True, connected, batch))

        for is_connect, entry, batch in steps:
            self._store.write(batch)
            if is_connect:
                self._main.append(entry.block_id)
                self._remember(entry)
            else:
                self._main.pop()
        return TipChange(old_tip, target.block_id, tuple(disconnect), tuple(e.block_id for e in branch))

    def _plan_connect(self, entry: IndexEntry, block: Block, planned: PlannedView, *,
                      store_block: bool) -> tuple[IndexEntry, WriteBatch]:
        """The write batch that connects ``block`` on top of ``planned`` (updated); raises ``InvalidBlock``."""
        change = apply_block(planned, block)
        connected = replace(entry, status=STATUS_VALID)
        batch = WriteBatch()
        if store_block:
            self._put_block(batch, block, connected)
        elif entry.status != STATUS_VALID:
            batch.put(schema.index_key(entry.block_id), schema.encode_index(connected))
        for address, account in change.accounts:
            batch.put(schema.account_key(address), schema.encode_account(account))
            planned.set(address, account)
        batch.put(schema.undo_key(entry.block_id), schema.encode_undo(change.undo))
        for tx in block.transactions:
            batch.put(schema.tx_key(compute_tx_id(tx)), entry.block_id)
        batch.put(schema.main_key(entry.height), entry.block_id)
        batch.put(schema.TIP_KEY, entry.block_id)
        return connected, batch

    def _plan_disconnect(self, entry: IndexEntry, planned: PlannedView) -> WriteBatch:
        raw = self._store.get(schema.undo_key(entry.block_id))
        if raw is None:
            raise StorageError(f"main-chain block {entry.block_id.hex()} has no undo record")
        undo = schema.decode_undo(raw)
        batch = WriteBatch()
        for address, prior in undo.entries:
            planned.set(address, prior)
            if prior is None:
                batch.delete(schema.account_key(address))
            else:
                batch.put(schema.account_key(address), schema.encode_account(prior))
        batch.delete(schema.undo_key(entry.block_id))
        for tx in self._load_block(entry.block_id).transactions:
            batch.delete(schema.tx_key(compute_tx_id(tx)))
        batch.delete(schema.main_key(entry.height))
        batch.put(schema.TIP_KEY, entry.parent)
        return batch

    def _mark_invalid(self, block_id: bytes) -> None:
        stack = [block_id]
        while stack:
            current = stack.pop()
            self._invalid.add(current)
            stack.extend(self._children.get(current, ()))

    def _remember(self, entry: IndexEntry) -> None:
        if entry.block_id not in self._index and entry.height > 0:
            self._children.setdefault(entry.parent, []).append(entry.block_id)
        self._index[entry.block_id] = entry
        self._next_seq = max(self._next_seq, entry.seq + 1)

    # --- orphans ------------------------------------------------------------------------------

    def _add_orphan(self, block: Block, size: int) -> None:
        block_id = block.header.block_id
        if block.height == 0:
            raise BadLinkage(f"a second genesis block {block_id.hex()}; expected {self.genesis_id.hex()}")
        if size > self.params.max_block_size:
            raise BlockTooLarge(f"expected at most {self.params.max_block_size} bytes, found {size}")
        while len(self._orphans) >= self._max_orphans:
            old_id, (old, _) = self._orphans.popitem(last=False)
            siblings = self._orphans_by_parent.get(old.prev_id, [])
            if old_id in siblings:
                siblings.remove(old_id)
            if not siblings:
                self._orphans_by_parent.pop(old.prev_id, None)
        self._orphans[block_id] = (block, size)
        self._orphans_by_parent.setdefault(block.prev_id, []).append(block_id)

    def _process_orphans(self, parent_id: bytes) -> list[bytes]:
        accepted: list[bytes] = []
        queue = deque([parent_id])
        while queue:
            pid = queue.popleft()
            for orphan_id in self._orphans_by_parent.pop(pid, []):
                block, size = self._orphans.pop(orphan_id)
                if pid in self._invalid or pid not in self._index:
                    continue
                try:
                    self._accept(block, self._index[pid], size)
                except ConsensusError:
                    continue  # an invalid orphan is dropped; whoever sent it already got its answer
                accepted.append(orphan_id)
                queue.append(orphan_id)
        return accepted

    # --- records ------------------------------------------------------------------------------

    def _put_block(self, batch: WriteBatch, block: Block, entry: IndexEntry) -> None:
        block_id = entry.block_id
        batch.put(schema.header_key(block_id), encode_header(block.header))
        batch.put(schema.certificate_key(block_id), encode_certificate(block.certificate))
        batch.put(schema.body_key(block_id), encode_block_body(block))
        batch.put(schema.index_key(block_id), schema.encode_index(entry))

    def _load_block(self, block_id: bytes) -> Block:
        return load_block(self._store, block_id)

    # --- consistency check --------------------------------------------------------------------

    def verify_chain(self) -> ChainReport:
        """``verify_store`` on this service's store, plus: the in-memory main chain equals the one on disk."""
        report = verify_store(self._store, self.params)
        stored_main = [value for _, value in self._store.iterate(schema.MAIN)]
        if stored_main != self._main:
            problems = (*report.problems, "in-memory main chain differs from the height index on disk")
            return replace(report, ok=False, problems=problems)
        return report
