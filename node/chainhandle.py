"""``ChainHandle``: the one owner of the chain thread, and the snapshots readers on the loop see.

``ChainService`` is not thread-safe. The handle owns it and a single worker
thread, and every read and every write of chain state runs on that thread
(``read``, ``submit_block``), so "the chain is only ever touched by one thread"
holds by construction: nothing else in the node holds the service.

State faults (``node.errors.BlockStateInvalid``: a nonce or a balance that
does not fit the branch) are no fault of a peer that relayed or served the
block, so the chain raises them apart from ``PeerFault`` faults. A local submitter
(``events.LOCAL_SOURCES``: the miner, RPC ``submitblock``) is judged by nobody;
it gets the consensus error itself, as for any other invalid block.

Readers on the event loop that need an answer now (the tip for a status
handshake, the height for ``getblockcount``, an account for the mempool) use
``snapshot``: an immutable ``ChainSnapshot`` taken on the chain thread after
every write. It pairs the tip's index entry with a store snapshot of the same
moment, so the accounts it reads always belong to the tip it names, even while
the chain thread is writing the next block.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from consensus.errors import ConsensusError
from consensus.forkchoice import HeaderRun
from consensus.networks import NetworkParams
from consensus.types import Block, Header

from .chain import TAKEN, BlockStatus, ChainService, SubmitResult
from .errors import BlockStateInvalid
from .events import LOCAL_SOURCES, BlockAccepted, Events, TipMoved
from .snapshot import ChainSnapshot, take_snapshot

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """What became of a submitted block, with the blocks the main chain gained and lost."""

    result: SubmitResult
    connected: tuple[Block, ...] = ()
    """Blocks put on the main chain, lowest first."""
    disconnected: tuple[Block, ...] = ()
    """Blocks taken off the main chain, tip first."""
    seconds: float = 0.0
    """Time spent on the chain thread."""

    @property
    def status(self) -> BlockStatus:
        return self.result.status


class ChainHandle:
    """Owns a ``ChainService`` and the thread every call on it runs on.

    Open it with ``async with ChainHandle.open(path, params, events) as chain``;
    leaving closes the service on its thread and joins the thread. ``events``
    is told of every move of the tip (``TipMoved``) and every block the chain
    took (``BlockAccepted``), after the snapshot was updated.
    """

    def __init__(self, chain: ChainService, executor: ThreadPoolExecutor, events: Events) -> None:
        self._chain = chain
        self._exec = executor
        self._events = events
        self._snapshot = take_snapshot(chain)
        self.params: NetworkParams = chain.params
        self.genesis_id = chain.genesis_id
        self._certificate_listeners: list[Callable[[float], None]] = []
        chain.on_certificate_checked = self._certificate_checked  # set on the chain thread, like every call

    def on_certificate_checked(self, fn: Callable[[float], None]) -> None:
        """Call ``fn(seconds)`` after every certificate check of a submitted block (valid or not).

        ``fn`` runs on the chain thread, in the middle of the block's
        validation: it must be quick and thread-safe (a Prometheus observe).
        """
        self._certificate_listeners.append(fn)

    def _certificate_checked(self, seconds: float) -> None:
        for fn in tuple(self._certificate_listeners):
            try:
                fn(seconds)
            except Exception:  # a listener must never change what becomes of a block
                log.exception("certificate listener failed")

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str, params: NetworkParams, events: Events, *, sync: bool = True,
                   **options: object) -> AsyncIterator[ChainHandle]:
        """A handle on the LevelDB chain database in directory ``path`` (created if missing)."""
        executor = ThreadPoolExecutor(1, thread_name_prefix="pouw-chain")
        try:
            loop = asyncio.get_running_loop()
            chain = await loop.run_in_executor(executor, lambda: ChainService.open(path, params, sync=sync,
                                                                                  **options))
            try:
                handle = await loop.run_in_executor(executor, cls, chain, executor, events)
                yield handle
            finally:
                await loop.run_in_executor(executor, chain.close)
        finally:
            executor.shutdown(wait=True)

    @property
    def snapshot(self) -> ChainSnapshot:
        """The tip and its state as of the last write (a new object after every write)."""
        return self._snapshot

    @property
    def tip_id(self) -> bytes:
        return self._snapshot.tip_id

    async def read(self, fn: Callable[[ChainService], T]) -> T:
        """``fn(chain)`` on the chain thread; ``fn`` must only read."""
        return await asyncio.get_running_loop().run_in_executor(self._exec, fn, self._chain)

    async def submit_block(self, block: Block, source: str, size: int | None = None) -> Submission:
        """Validate and store ``block`` (from ``source``); raise if it is invalid.

        A context-free fault raises its ``ConsensusError`` (a ``PeerFault``); a
        state fault raises ``BlockStateInvalid`` for a peer's block and its
        ``ConsensusError`` for a local one (``LOCAL_SOURCES``); a block ahead of
        the clock raises ``TimeTooNew`` (held and retried by the chain). A
        refused block (``LOW_WORK``, ``FORK_TOO_DEEP``) is a status, not an
        error. On acceptance, listeners hear ``TipMoved`` (if the tip moved) and
        then ``BlockAccepted`` before this returns.
        """
        try:
            sub = await asyncio.get_running_loop().run_in_executor(self._exec, self._submit, block, source, size)
        except BlockStateInvalid as e:
            if source in LOCAL_SOURCES and isinstance(e.__cause__, ConsensusError):
                raise e.__cause__ from None
            raise
        if sub.result.tip_change is not None:
            await self._events.emit(TipMoved(sub.connected, sub.disconnected, self._snapshot))
        if sub.status in TAKEN or sub.result.tip_change is not None:
            await self._events.emit(BlockAccepted(block, source, sub.status, sub.seconds))
        return sub

    async def check_headers(self, headers: Sequence[Header], run: HeaderRun | None) -> HeaderRun:
        """``ChainService.check_headers`` on the chain thread (it remembers the ids of a run in reach)."""
        return await asyncio.get_running_loop().run_in_executor(self._exec, self._chain.check_headers, headers, run)

    def _submit(self, block: Block, source: str, size: int | None) -> Submission:
        start = time.perf_counter()
        result = self._chain.submit_block(block, size, source=source)
        change = result.tip_change
        if change is None:
            unchanged = (BlockStatus.DUPLICATE, BlockStatus.LOW_WORK, BlockStatus.FORK_TOO_DEEP)
            if result.status not in unchanged or result.orphans_accepted:
                self._snapshot = take_snapshot(self._chain)  # a side branch or an orphan: counts changed
            return Submission(result, seconds=time.perf_counter() - start)
        get = self._chain.get_block
        connected = tuple(b for b in map(get, change.connected) if b is not None)
        disconnected = tuple(b for b in map(get, change.disconnected) if b is not None)
        self._snapshot = take_snapshot(self._chain)
        return Submission(result, connected, disconnected, time.perf_counter() - start)
