"""The one path of a transfer into the node: the mempool, then ``TxAdmitted`` for whoever listens.

From RPC a transfer must be next in its sender's line; from a peer, one
slightly ahead of its sender's nonce is held until the gap closes (gossip
reorders). Listeners (RPC subscribers, metrics, the network, which announces
local transfers) hear of every admitted one.
"""

from __future__ import annotations

from consensus.tx import compute_tx_id
from consensus.types import Tx

from .events import LOCAL_SOURCES, Events, TxAdmitted
from .mempool import Mempool


class TxIntake:
    """Admits transfers to the mempool and announces them on ``events``."""

    def __init__(self, mempool: Mempool, events: Events) -> None:
        self.mempool = mempool
        self._events = events

    async def submit(self, tx: Tx, source: str) -> bytes:
        """Admit ``tx`` (raises ``MempoolError`` or ``consensus.errors.InvalidTx``); return its id."""
        entries = [self.mempool.add(tx)] if source in LOCAL_SOURCES else self.mempool.add_or_hold(tx)
        for entry in entries:
            await self._events.emit(TxAdmitted(entry, source))
        return compute_tx_id(tx)
