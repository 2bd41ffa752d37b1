"""What happened in the node, and who hears it: typed events on one small hub.

Services announce what they did (the chain handle moved the tip or took a
block, the transaction intake admitted a transfer, the job service changed a
job) and the composition root (``node.app``) subscribes the interested ones:
the mempool, metrics, RPC subscribers and the network. No service calls another
to tell it news, so none needs to know the others.

Handlers run on the event loop, in subscription order; a handler may be a plain
function or a coroutine function (awaited). One failing handler is logged and
does not stop the others.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from consensus.types import Block

from .chain import BlockStatus
from .jobs import Job
from .mempool import Entry
from .snapshot import ChainSnapshot

log = logging.getLogger(__name__)
E = TypeVar("E")


@dataclass(frozen=True)
class TipMoved:
    """The main chain changed: blocks connected (lowest first) and disconnected (tip first)."""

    connected: tuple[Block, ...]
    disconnected: tuple[Block, ...]
    snapshot: ChainSnapshot
    """The chain as of the new tip."""


@dataclass(frozen=True)
class BlockAccepted:
    """The chain took a valid block (connected it or stored it on a side branch)."""

    block: Block
    source: str
    """``miner``, ``rpc``, or the peer id it came from."""
    status: BlockStatus
    seconds: float
    """Time spent validating and storing it."""


@dataclass(frozen=True)
class TxAdmitted:
    """The mempool admitted a transaction (a transfer or a job transaction)."""

    entry: Entry
    source: str


@dataclass(frozen=True)
class JobChanged:
    """A job was created or changed state (a copy of the record at that moment)."""

    job: Job


LOCAL_SOURCES = ("miner", "rpc")
"""Sources of data this node produced itself (the network announces these; gossip forwards the rest)."""


class Events:
    """A typed publish/subscribe hub on the event loop."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Callable[[Any], Awaitable[None] | None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task] = set()

    def subscribe(self, kind: type[E], handler: Callable[[E], Awaitable[None] | None]) -> None:
        """Call ``handler(event)`` for every event of type ``kind``."""
        self._handlers.setdefault(kind, []).append(handler)

    def bind_loop(self) -> None:
        """Remember the running loop, for ``emit_threadsafe``."""
        self._loop = asyncio.get_running_loop()

    async def emit(self, event: object) -> None:
        """Tell every subscriber of ``type(event)``, in order."""
        for handler in self._handlers.get(type(event), ()):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("handler %r failed on %s", handler, type(event).__name__)

    def emit_threadsafe(self, event: object) -> None:
        """``emit`` from any thread: scheduled on the loop, not awaited (dropped before ``bind_loop``)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._spawn, event)
        except RuntimeError:  # the loop closed meanwhile (shutdown)
            pass

    def _spawn(self, event: object) -> None:
        task = asyncio.ensure_future(self.emit(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for events scheduled by ``emit_threadsafe`` so far (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
