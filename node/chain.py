"""The chain service: validates, stores, connects and reorganises blocks on a key-value store.

A plain synchronous class, not thread-safe; the daemon reaches it only through
``node.chainhandle.ChainHandle``, which runs every call on one thread.

How a block travels (``submit_block``):

1. Drop duplicates (the caller decoded the block and passes its encoded size;
   without it the block is encoded once, so the size limit always applies).
   A block whose parent is unknown passes the checks that need no parent
   (``check_block_alone``: size, transaction count, coinbase and transaction
   root, a target no easier than ``pow_limit``, the certificate against the
   header's own target) and waits in a bounded pool (``node.held``: per
   source and in total, random eviction) until the parent arrives.
2. Blocks that cannot win are refused before any validation, neither stored
   nor recorded as invalid: a branch that forks more than ``max_fork_depth``
   blocks below the tip (``FORK_TOO_DEEP``), and one out of reach of the tip
   (``LOW_WORK``: ``consensus.forkchoice.within_reach``: the parent's work plus
   this block's is not more than the tip's less ``side_branch_margin`` tip
   blocks). Storing a side branch costs disk and the branch's state check
   when it overtakes, so a branch that cannot overtake is worth neither; the
   refusal is checked first, from the header's claimed target (a claim of
   more work than the target allows fails the validation that follows).
   Headers-first sync may vouch for a block: ``check_headers`` weighs a run of
   headers and, when the run is in reach, remembers its ids (bounded), so
   their bodies are stored although the branch's stored part is still short.
3. ``consensus.validation.validate_block`` against the parent: everything but
   account state. An invalid block raises and changes nothing, on disk or in
   memory. A block that fails the future-time rule (``TimeTooNew``, a
   ``Transient``, checked before the target and the certificate) is not
   invalid, nor are its descendants: it is held (bounded, like orphans),
   retried with every check after each later submission once its time has
   come, and ``TimeTooNew`` is raised, which costs its sender nothing.
4. If the block's chain has no more work than the tip (ties keep the tip),
   it is stored as a side branch: one write batch (header, certificate, body,
   index record). Its state is not checked until its branch overtakes.
5. Otherwise the node moves its tip to the block: it finds the fork point,
   plans every disconnect (undo data) and connect (``consensus.state.apply_block``)
   in memory first, and only when the whole plan is valid writes it, one batch
   per block. A connect batch holds the block's state changes, its undo
   record, its index record, the height index and the tip (and, for the new
   block, its data); a disconnect batch restores the accounts from the undo
   record and moves the tip back. A block whose state transition fails (a
   nonce, a balance: whatever ``apply_block`` raises) is marked invalid with
   its descendants, in memory, nothing is written, and the submission raises
   ``node.errors.BlockStateInvalid``, not a ``PeerFault``: a peer cannot know
   the state of a branch that was not its best chain. Context-free faults
   (step 3) stay ``PeerFault`` errors.

Crash safety follows from the batches: every batch leaves the database at a
state where accounts equal a replay of the main chain up to the stored tip.
On open, the service loads the index and, if a crash interrupted a reorg,
moves to the most-work valid chain again. ``verify_chain`` checks all of this.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from consensus.codec import decode_header, encode_block, encode_block_body, encode_certificate, encode_header
from consensus.errors import (
    AncestorInvalid,
    BadHeaderVersion,
    BadLinkage,
    BadTarget,
    ConsensusError,
    InvalidBlock,
    TimeTooNew,
    UnknownParent,
)
from consensus.forkchoice import (
    ChainTip,
    HeaderRun,
    RunVerdict,
    compute_chain_work,
    is_better_chain,
    select_best_tip,
    within_reach,
)
from consensus.genesis import ZERO_ID, make_genesis_block
from consensus.networks import NetworkParams
from consensus.state import apply_block
from consensus.tx import compute_tx_id
from consensus.types import Account, Block, Header, JobRecord
from consensus.validation import (
    MEDIAN_TIME_SPAN,
    ParentInfo,
    check_body_shape,
    check_header,
    check_limits,
    check_tx_root,
    make_parent_info,
    validate_block,
    validate_certificate,
)
from pouw.constants import PROTOCOL_VERSION
from pouw.header import compute_work

from . import addrindex, schema
from .chaincheck import ChainReport, verify_store
from .errors import BlockStateInvalid, StorageError, WrongDatabaseError
from .held import HeldBlocks
from .records import DictView, PlannedView, StoreView, decode_stored, load_block
from .schema import STATUS_STORED, STATUS_VALID, IndexEntry
from .store import KeyValueReader, KeyValueStore, LevelDBStore, WriteBatch

DEFAULT_MAX_ORPHANS = 100
"""Blocks held for an unknown parent, from all sources together (a quarter of it per source)."""
DEFAULT_MAX_ORPHAN_BYTES = 32 << 20
"""Encoded bytes of those (eight blocks of the 4 MB limit; a quarter of it per source)."""
DEFAULT_MAX_FUTURE_BLOCKS = 16
"""Blocks held until their time comes (``TimeTooNew``), from all sources together."""
DEFAULT_MAX_FUTURE_BYTES = 16 << 20
"""Encoded bytes of those."""
FUTURE_HOLD_SECONDS = 2 * 3600
"""A block more than this beyond the future limit is not held (a clock that far off is not worth a slot)."""
MAX_PRESYNC_IDS = 8192
"""Ids a run of headers (``HeaderRun.pending``) keeps before its branch is in reach: 256 KiB per sync.
A branch that needs more headers than this beyond our stored blocks to come within reach of our
tip is not followed (``RunVerdict.TOO_LONG``); ``max_fork_depth`` (at most 2880 in the presets)
refuses deeper forks anyway."""
MAX_VOUCHED = 2 * MAX_PRESYNC_IDS
"""Ids of headers in reach (``check_headers``) the chain remembers for their bodies, oldest dropped first."""


class BlockStatus(StrEnum):
    """What ``ChainService.submit_block`` did with a valid block."""

    CONNECTED = "connected"
    """The block is now the tip (possibly after a reorg)."""
    SIDE_BRANCH = "side-branch"
    """Valid as far as checkable without its branch's state; stored, not on the main chain."""
    ORPHAN = "orphan"
    """Parent unknown; held in memory until it arrives."""
    DUPLICATE = "duplicate"
    """Already stored or already held (an orphan, a block from the future)."""
    LOW_WORK = "low-work"
    """Refused, not stored, not invalid: its branch is out of reach of the tip (``within_reach``)."""
    FORK_TOO_DEEP = "fork-too-deep"
    """Refused, not stored, not invalid: its branch forks more than ``max_fork_depth`` blocks below the tip."""


TAKEN = (BlockStatus.CONNECTED, BlockStatus.SIDE_BRANCH)
"""Statuses of a block that is stored now."""


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
    """Held blocks (orphans, blocks whose time came) this submission made the chain store or connect."""


def check_block_alone(block: Block, size: int, params: NetworkParams,
                      certificate_check: Callable[[Block, int], None] | None = validate_certificate) -> None:
    """Raise the ``PeerFault`` of a block that fails a check needing no parent (before it is held as an orphan).

    Size, transaction count, header version, not a second genesis, a target no
    easier than ``pow_limit``, the coinbase in first place, distinct
    transactions, the transaction root (it binds the body to the header, so
    nobody can hold a real header with another body and make the real block
    look like a duplicate), then the certificate against the header's own
    target (``certificate_check``; ``None`` skips it, for chains opened with
    ``check_certificates=False``): without the parent the expected target is
    unknown, and ``pow_limit`` bounds how cheap a held block can be.
    Signatures are not checked: the parent's arrival checks everything.
    """
    pre = block.header.pre
    check_limits(block, size, params)
    if pre.version != PROTOCOL_VERSION:
        raise BadHeaderVersion(f"expected {PROTOCOL_VERSION}, found {pre.version}")
    if pre.height == 0:
        raise BadLinkage(f"a second genesis block {block.header.block_id.hex()}")
    if not 1 <= pre.target <= params.pow_limit:
        raise BadTarget(f"expected a target in [1, pow_limit = {params.pow_limit:#x}], found {pre.target:#x}")
    check_body_shape(block)
    check_tx_root(block)
    if certificate_check is not None:
        certificate_check(block, pre.target)


def state_fault(error: ConsensusError) -> BlockStateInvalid:
    """``BlockStateInvalid`` for a consensus error that depends on state (raise it ``from error``)."""
    return BlockStateInvalid(str(error), error.rule)


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
        max_orphan_bytes: int = DEFAULT_MAX_ORPHAN_BYTES,
        max_orphans_per_source: int | None = None,
        max_future_blocks: int = DEFAULT_MAX_FUTURE_BLOCKS,
        max_future_bytes: int = DEFAULT_MAX_FUTURE_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        """Open the chain in ``store`` (writing the genesis block into an empty one).

        ``check_certificates=False`` skips ``pouw.verify`` for every block; it
        exists for tests and benchmarks that build long chains without mining,
        and shipped code never sets it. ``rng`` picks the held blocks to evict
        (``random.SystemRandom`` unless a test passes a seeded one).
        """
        if max_orphans < 1:
            raise ValueError(f"max_orphans must be at least 1, found {max_orphans}")
        self._store = store
        self.params = params
        self._clock = clock
        self._check_certificates = check_certificates
        self.on_certificate_checked: Callable[[float], None] | None = None
        """Called on the chain thread with the seconds of every certificate check (valid or not)."""
        self._index: dict[bytes, IndexEntry] = {}
        self._children: dict[bytes, list[bytes]] = {}
        self._main: list[bytes] = []
        self._invalid: set[bytes] = set()
        rng = rng or random.SystemRandom()
        self._orphans = HeldBlocks(max_orphans, max_orphan_bytes, max_count_per_source=max_orphans_per_source,
                                   rng=rng)
        self._future = HeldBlocks(max_future_blocks, max_future_bytes, rng=rng)
        self._vouched: OrderedDict[bytes, int] = OrderedDict()
        """Ids of headers ``check_headers`` found in reach -> the work of the run they were checked in."""
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

    def get_job_record(self, offer_id: bytes) -> JobRecord | None:
        """The live job record of ``offer_id`` at the tip (``None``: never offered on this chain, or final)."""
        return self._view.get_job_record(offer_id)

    def job_records(self, limit: int) -> list[tuple[bytes, JobRecord]]:
        """Up to ``limit`` live job records at the tip, in offer-id order."""
        out: list[tuple[bytes, JobRecord]] = []
        for key, raw in self._store.iterate(schema.OFFER):
            out.append((key[1:], schema.decode_record(raw)))
            if len(out) >= limit:
                break
        return out

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

    def future_count(self) -> int:
        """Blocks waiting for their time to come (``TimeTooNew``)."""
        return len(self._future)

    def fork_height(self, block_id: bytes) -> int:
        """Height of the last main-chain block at or below stored block ``block_id`` (its fork point)."""
        cursor = self._index[block_id]
        while not self.is_main_chain(cursor.block_id):
            cursor = self._index[cursor.parent]
        return cursor.height

    # --- writing ------------------------------------------------------------------------------

    def submit_block(self, block: Block, size: int | None = None, *, source: str = "local") -> SubmitResult:
        """Validate and accept a block; raise a ``ConsensusError`` or ``BlockStateInvalid`` if it is invalid.

        ``size`` is the block's encoded size when the caller has it (it decoded
        the block from bytes); otherwise the block is encoded once to learn it.
        ``source`` (a peer id, ``"miner"``, ...) is whom a held block counts
        against. On error nothing changes on disk (a state fault marks the
        block invalid in memory; a block from the future is held). After the
        block, held blocks from the future whose time has come are retried;
        what they did is in the result (``orphans_accepted``, ``tip_change``).
        """
        if size is None:
            size = len(encode_block(block))
        old_tip = self.tip_id
        block_id = block.header.block_id
        if block_id in self._future and block.header.pre.time <= int(self._clock()) + self.params.max_future:
            self._future.remove(block_id)  # held, and its time has come: take it as it comes now
        if block_id in self._index or block_id in self._orphans or block_id in self._future:
            result = SubmitResult(block_id, BlockStatus.DUPLICATE)
        else:
            result = self._submit_new(block, size, source)
        retried = self.retry_future_blocks()
        if not retried:
            return result
        return replace(result, orphans_accepted=result.orphans_accepted + tuple(retried),
                       tip_change=self._change_since(old_tip))

    def retry_future_blocks(self) -> list[bytes]:
        """Submit the held blocks whose time has come; the ids stored or connected (with their orphans)."""
        now = int(self._clock())
        due = self._future.take_if(lambda held: held.block.header.pre.time <= now + self.params.max_future)
        taken: list[bytes] = []
        for held in due:
            if held.block_id in self._index:
                continue
            try:
                result = self._submit_new(held.block, held.size, held.source)
            except (ConsensusError, BlockStateInvalid):
                continue  # invalid after all (or ahead of the clock again: held again); its sender had its answer
            if result.status in TAKEN:
                taken += [held.block_id, *result.orphans_accepted]
        return taken

    def _submit_new(self, block: Block, size: int, source: str) -> SubmitResult:
        block_id = block.header.block_id
        if block_id in self._invalid or block.prev_id in self._invalid:
            fault = AncestorInvalid(f"block {block_id.hex()} is or descends from a block found invalid")
            raise state_fault(fault) from fault
        parent = self._index.get(block.prev_id)
        if parent is None:
            self._add_orphan(block, size, source)
            return SubmitResult(block_id, BlockStatus.ORPHAN)
        old_tip = self.tip_id
        result = self._accept(block, parent, size, source)
        if result.status not in TAKEN:
            return result
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

    # --- headers-first sync -------------------------------------------------------------------

    def check_headers(self, headers: Sequence[Header], run: HeaderRun | None = None) -> HeaderRun:
        """Check a page of headers of a branch and weigh it; ``run`` is the previous page's answer.

        Without ``run`` the first header's parent must be stored (``UnknownParent``
        otherwise). Each header is checked against the one before it
        (``consensus.validation.check_header``: a ``PeerFault``, or
        ``TimeTooNew``); a header that is, or descends from, a block found
        invalid raises ``BlockStateInvalid``. The verdict is ``TOO_DEEP`` when
        the branch forks more than ``max_fork_depth`` blocks below the tip,
        ``FETCH`` when its work is in reach of the tip (then the ids we lack are
        remembered, bounded, so their bodies are stored however little work the
        stored part of the branch has yet), else ``PRESYNC`` while at most
        ``MAX_PRESYNC_IDS`` ids wait, and ``TOO_LONG`` beyond.
        """
        if not headers:
            raise ValueError("check_headers needs at least one header")
        if run is None:
            anchor = self._index.get(headers[0].pre.prev_id)
            if anchor is None:
                raise UnknownParent(f"headers start on unknown block {headers[0].pre.prev_id.hex()}")
            if anchor.block_id in self._invalid:
                fault = AncestorInvalid(f"headers start on block {anchor.block_id.hex()}, found invalid")
                raise state_fault(fault) from fault
            last, work = self.get_parent_info(anchor.block_id), anchor.chain_work
            fork, pending = self.fork_height(anchor.block_id), []
        else:
            last, work, fork = run.last, run.chain_work, run.fork_height
            pending = list(run.pending)
        now = int(self._clock())
        for header in headers:
            check_header(header, last, self.params, now)
            block_id = header.block_id
            if block_id in self._invalid:
                fault = AncestorInvalid(f"header {block_id.hex()} is of a block found invalid")
                raise state_fault(fault) from fault
            work = compute_chain_work(work, header.pre.target)
            last = make_parent_info(header, last)
            if self.is_main_chain(block_id):
                fork = header.pre.height
            elif block_id not in self._index:
                pending.append(block_id)
        tip = self.tip
        if self.is_main_chain(last.block_id):  # nothing of the branch beyond our main chain yet
            return HeaderRun(last, work, fork, RunVerdict.PRESYNC)
        if tip.height - fork > self.params.max_fork_depth:
            return HeaderRun(last, work, fork, RunVerdict.TOO_DEEP)
        if within_reach(work, tip.chain_work, tip.target, self.params.side_branch_margin):
            for block_id in pending:
                self._vouched[block_id] = max(work, self._vouched.pop(block_id, 0))
            while len(self._vouched) > MAX_VOUCHED:
                self._vouched.popitem(last=False)
            return HeaderRun(last, work, fork, RunVerdict.FETCH, fetch=tuple(pending))
        if len(pending) > MAX_PRESYNC_IDS:
            return HeaderRun(last, work, fork, RunVerdict.TOO_LONG)
        return HeaderRun(last, work, fork, RunVerdict.PRESYNC, pending=tuple(pending))

    # --- start-up -----------------------------------------------------------------------------

    def _open(self) -> None:
        raw_meta = self._store.get(schema.META_KEY)
        if raw_meta is None:
            self._write_genesis()
        else:
            meta = schema.decode_meta(raw_meta)
            if meta.schema != schema.SCHEMA_VERSION:
                raise WrongDatabaseError(
                    f"database schema {meta.schema}, this node reads {schema.SCHEMA_VERSION}: remove the data "
                    f"directory's chain database (or the whole data directory) and start again to resync")
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

    def _accept(self, block: Block, parent: IndexEntry, size: int, source: str) -> SubmitResult:
        block_id = block.header.block_id
        pre = block.header.pre
        chain_work = compute_chain_work(parent.chain_work, pre.target)
        refusal = self._refusal(parent, max(chain_work, self._vouched.get(block_id, 0)))
        if refusal is not None:
            return SubmitResult(block_id, refusal)
        try:
            self._validate(block, parent, size, int(self._clock()))
        except TimeTooNew:
            self._hold_future(block, size, source)
            raise
        self._vouched.pop(block_id, None)
        entry = IndexEntry(block_id, pre.height, pre.prev_id, pre.time, pre.target, chain_work, STATUS_STORED,
                           self._next_seq)
        if not is_better_chain(entry.chain_work, self.tip.chain_work):
            batch = WriteBatch()
            self._put_block(batch, block, entry)
            self._store.write(batch)
            self._remember(entry)
            return SubmitResult(block_id, BlockStatus.SIDE_BRANCH)
        change = self._reorganize(entry, block)
        assert change is not None
        return SubmitResult(block_id, BlockStatus.CONNECTED, change)

    def _refusal(self, parent: IndexEntry, branch_work: int) -> BlockStatus | None:
        """Why a child of ``parent`` whose branch has ``branch_work`` is not worth storing, if it is not.

        The fork point is found by walking down from the parent; the walk stops
        as soon as it is below ``max_fork_depth`` (so it is bounded by that depth
        plus the stored side branch above it).
        """
        tip = self.tip
        if not within_reach(branch_work, tip.chain_work, tip.target, self.params.side_branch_margin):
            return BlockStatus.LOW_WORK
        floor = tip.height - self.params.max_fork_depth
        cursor = parent
        while cursor.height >= floor and not self.is_main_chain(cursor.block_id):
            cursor = self._index[cursor.parent]
        return BlockStatus.FORK_TOO_DEEP if cursor.height < floor else None

    def _validate(self, block: Block, parent: IndexEntry, size: int, now: int) -> None:
        """``validate_block``, its certificate check timed (``on_certificate_checked``) at its own place in
        the order: after the cheap header checks, before any signature."""
        validate_block(block, self.get_parent_info(parent.block_id), self.params, now,
                       encoded_size=size, check_certificate=self._check_certificates,
                       certificate_check=self._timed_certificate_check)

    def _hold_future(self, block: Block, size: int, source: str) -> None:
        """Hold a block that failed the future-time rule until its time comes (bounded per source and in total).

        Nothing after the time rule is checked now (the target, the
        certificate, the signatures): a block from the future costs no
        certificate check, so sending them buys an attacker nothing but a
        slot of its own share, and the retry checks everything. A block more
        than ``FUTURE_HOLD_SECONDS`` beyond the limit is not held.
        """
        if block.header.pre.time <= int(self._clock()) + self.params.max_future + FUTURE_HOLD_SECONDS:
            self._future.add(block, size, source)

    def _timed_certificate_check(self, block: Block, expected_target: int) -> None:
        start = time.perf_counter()
        try:
            validate_certificate(block, expected_target)
        finally:
            if self.on_certificate_checked is not None:
                self.on_certificate_checked(time.perf_counter() - start)

    def _reorganize(self, target: IndexEntry, pending: Block | None) -> TipChange | None:
        """Make ``target`` the tip. ``pending`` is ``target``'s block when it is not stored yet.

        Plans every step in memory first. A block whose state transition fails
        is marked invalid with its descendants (``pending`` too, when it is or
        descends from it). For a stored block of the branch, ``None`` is
        returned when there is no ``pending``; otherwise ``BlockStateInvalid``
        is raised. Nothing is written in either case.
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
            except InvalidBlock as e:  # whatever apply_block raises depends on the branch's state
                self._mark_invalid(entry.block_id)
                if pending is None:
                    return None
                self._invalid.add(target.block_id)
                if is_pending:
                    raise state_fault(e) from e
                fault = AncestorInvalid(f"ancestor {entry.block_id.hex()} at height {entry.height} is invalid: {e}")
                raise state_fault(fault) from e
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
        change = apply_block(planned, block, self.params)
        connected = replace(entry, status=STATUS_VALID)
        batch = WriteBatch()
        if store_block:
            self._put_block(batch, block, connected)
        elif entry.status != STATUS_VALID:
            batch.put(schema.index_key(entry.block_id), schema.encode_index(connected))
        for address, account in change.accounts:
            batch.put(schema.account_key(address), schema.encode_account(account))
            planned.set(address, account)
        for offer_id, record in change.records:
            if record is None:
                batch.delete(schema.offer_key(offer_id))
            else:
                batch.put(schema.offer_key(offer_id), schema.encode_record(record))
            planned.set_record(offer_id, record)
        batch.put(schema.undo_key(entry.block_id), schema.encode_undo(change.undo))
        for tx in block.transactions:
            batch.put(schema.tx_key(compute_tx_id(tx)), entry.block_id)
        batch.ops.extend(addrindex.connect_ops(self._store, planned, block))  # same batch: index = chain
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
        for offer_id, prior_record in undo.records:
            planned.set_record(offer_id, prior_record)
            if prior_record is None:
                batch.delete(schema.offer_key(offer_id))
            else:
                batch.put(schema.offer_key(offer_id), schema.encode_record(prior_record))
        batch.delete(schema.undo_key(entry.block_id))
        block = self._load_block(entry.block_id)
        for tx in block.transactions:
            batch.delete(schema.tx_key(compute_tx_id(tx)))
        batch.ops.extend(addrindex.disconnect_ops(self._store, planned, block))
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

    def _add_orphan(self, block: Block, size: int, source: str) -> None:
        """Hold a block whose parent is unknown, once it passed ``check_block_alone``; raise its fault if not."""
        check_block_alone(block, size, self.params,
                          self._timed_certificate_check if self._check_certificates else None)
        self._orphans.add(block, size, source)

    def _process_orphans(self, parent_id: bytes) -> list[bytes]:
        accepted: list[bytes] = []
        queue = deque([parent_id])
        while queue:
            pid = queue.popleft()
            for held in self._orphans.take_children(pid):
                if pid in self._invalid or pid not in self._index:
                    continue
                try:
                    result = self._accept(held.block, self._index[pid], held.size, held.source)
                except (ConsensusError, BlockStateInvalid):
                    continue  # an invalid orphan is dropped (one from the future is held); its sender had its answer
                if result.status in TAKEN:
                    accepted.append(held.block_id)
                    queue.append(held.block_id)
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
