"""Per-peer state and the network's counters, shared by ``p2p.network`` and ``p2p.headersync``."""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import Status


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
    peers: dict[str, int] = field(default_factory=dict)
    """Connected peers by direction (``inbound``, ``outbound``), recounted from the host on every
    connect and disconnect."""
    gossip_received: dict[str, int] = field(default_factory=dict)
    """Gossip messages that reached our topic handlers, by topic name (``blocks``, ``txs``, ``jobs``),
    whatever their verdict."""
    gossip_published: dict[str, int] = field(default_factory=dict)
    """Messages this node published, by topic name: its own announcements (gossipsub's forwarding of
    the messages a handler accepted is not counted)."""
    request_timeouts: dict[str, int] = field(default_factory=dict)
    """Our requests that got no answer in time, by protocol name (``status``, ``headers``,
    ``blocks_by_id``, ``blob``)."""
