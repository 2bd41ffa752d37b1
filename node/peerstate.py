"""What the networking service knows and needs: the node's side (``ChainAccess``) and per-peer state.

Split from ``node.sync`` so the service, its headers-first sync and the node's
glue (``node.netglue``, ``node.chainaccess``) share these without importing
each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from p2p.protocol import Status

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
ORPHAN = "orphan"
REJECTED = "rejected"


class ChainAccess(Protocol):
    """What ``PeerNetwork`` needs from the node (the ``Node`` implements it).

    Every method is called on the event loop's thread. The plain methods are
    called for each request and gossip message, so they must be quick reads.
    """

    def status(self) -> tuple[bytes, int, int]:
        """``(tip id, height, cumulative work)`` of the main chain."""
        ...

    def locator(self) -> list[bytes]:
        """Block locator of the main chain: ids newest first, exponentially spaced, genesis last."""
        ...

    def headers_after(self, locator: list[bytes], max_count: int) -> list[bytes]:
        """Encoded headers (212 bytes each) of the main-chain blocks after the newest locator
        entry that is on our main chain (after genesis if none is), oldest first, at most ``max_count``."""
        ...

    def has_block(self, block_id: bytes) -> bool:
        """Whether the block is stored (main chain or side branch; orphans do not count)."""
        ...

    def get_block_bytes(self, block_id: bytes) -> bytes | None:
        """The encoded block, or ``None`` if unknown."""
        ...

    def get_blob(self, digest_hex: str) -> bytes | None:
        """A stored blob (job matrix or product), or ``None``."""
        ...

    async def submit_block(self, block: bytes, peer: str) -> str:
        """``"accepted"`` (connected or stored as a side branch), ``"duplicate"`` or ``"orphan"``.

        Raises ``consensus.errors.PeerFault`` when the block is invalid (the peer is
        penalised) and any other exception when it cannot be taken now (no penalty).
        """
        ...

    async def submit_txs(self, txs: list[bytes], peer: str) -> list[str]:
        """Per transaction: ``"accepted"``, ``"duplicate"`` or ``"rejected: <reason>"`` (a peer fault)."""
        ...

    async def on_job_announcement(self, data: bytes, peer: str) -> None:
        """A jobs-topic message (``p2p.protocol.decode_job_message`` bytes, already decoded once) from ``peer``.

        Raise ``PeerFault`` for an announcement that is wrong (penalised, not forwarded);
        any other exception is transient (not forwarded, no penalty).
        """
        ...


@dataclass
class PeerState:
    """What we know about one connected peer."""

    peer_id: str
    direction: str
    connected_since: float
    status: Status | None = None
    status_time: float = 0.0
    sync_hint: bool = False
    """Sent us a block we could not place (unknown parent): sync from it."""
    tried_work: int = -1
    """Work of this peer's status when a sync from it last made no progress (do not retry that)."""


@dataclass
class NetworkStats:
    """Counters for metrics and tests."""

    blocks_received: int = 0
    blocks_accepted: int = 0
    blocks_synced: int = 0
    txs_received: int = 0
    txs_accepted: int = 0
    syncs: int = 0
    published: dict[str, int] = field(default_factory=dict)
