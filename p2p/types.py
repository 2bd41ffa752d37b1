"""Plain types of the p2p layer's asyncio face (no libp2p, no trio: cheap to import)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    """What a topic handler decided about one gossip message.

    Only ``ACCEPT`` forwards the message to the mesh. ``IGNORE`` drops it without
    blaming the sender (duplicate, not usable yet); ``REJECT`` drops it and says
    the sender misbehaved (the handler penalises; the host only stops propagation).
    """

    ACCEPT = "accept"
    IGNORE = "ignore"
    REJECT = "reject"


INBOUND = "inbound"
OUTBOUND = "outbound"


@dataclass(frozen=True)
class PeerInfo:
    """One connected peer, as the host sees it."""

    peer_id: str
    """Base58 libp2p peer id (``12D3KooW...``)."""
    addrs: tuple[str, ...]
    """Remote transport multiaddrs of the open connections."""
    direction: str
    """``inbound`` (they dialed us) or ``outbound`` (we dialed), of the first connection."""
    connected_since: float
    """Unix time the first connection to this peer opened."""
