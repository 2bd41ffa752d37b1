"""Per-peer state and the network's counters, shared by ``p2p.network`` and ``p2p.headersync``;
the connection admission rules ``p2p.host`` applies (``ConnectionLimits``, ``ConnectionSlots``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

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
    tx_batches_dropped: int = 0
    """Gossiped transaction batches dropped because the admission queue was full."""
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


# --- connection admission ----------------------------------------------------------------------
#
# An eclipse attacker fills every connection slot of a node with its own peers. Three rules stop
# it, decided here (pure logic, no libp2p; ``p2p.host`` applies them and holds the lock):
#
# - Outbound slots: ``outbound_slots`` of the ``max_connections`` are never given to inbound
#   connections, so the node can always dial the peers it chose (``--connect``, ``--bootstrap``,
#   ``addnode``) however many inbound ones arrive.
# - Per-address inbound limit: at most ``max_inbound_per_ip`` inbound connections from one
#   address (an IPv4 address, or an IPv6 /64, which one end user typically holds whole).
#   Fresh keys are free; addresses are not.
# - Address bans: a ban covers the banned peer's address too (``p2p.scoring``), so a new key from
#   that address is refused.
#
# Loopback (127.0.0.0/8, ::1) is exempt from the last two by default: on a loopback devnet every
# node is 127.0.0.1, and one misbehaving test peer must not cut the others off. Slot limits
# always apply. ``limit_loopback`` lifts the exemption (how tests check the rules on 127.0.0.1).


def address_key(host: str | None) -> str | None:
    """The unit the per-address rules count: ``"1.2.3.4"``, ``"2001:db8:1:2::/64"`` or ``"::1"``.

    IPv4-mapped IPv6 addresses count as their IPv4 address; an IPv6 address counts as its /64
    (one subscriber's allocation: counting single IPv6 addresses would give an attacker 2**64 of
    them). ``None`` for anything that is not an IP address (the rules cannot apply).
    """
    if not host:
        return None
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address) or ip.is_loopback:
        return str(ip)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def is_loopback_key(key: str) -> bool:
    """Whether an ``address_key`` is a loopback address."""
    try:
        return ipaddress.ip_network(key, strict=False).network_address.is_loopback
    except ValueError:
        return False


MAX_CONNECTIONS_LIMIT = 4096
"""Upper bound on ``max_connections`` (py-libp2p runs every connection's tasks on one thread)."""


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections a host holds, and from where (``pouwd --max-connections`` etc.)."""

    max_connections: int = 64
    """All connections, inbound and outbound."""
    outbound_slots: int = 8
    """Of ``max_connections``, the ones inbound connections never take."""
    max_inbound_per_ip: int = 4
    """Inbound connections from one address (IPv4 address or IPv6 /64)."""
    limit_loopback: bool = False
    """Apply the per-address limit and address bans to loopback addresses too."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_connections <= MAX_CONNECTIONS_LIMIT:
            raise ValueError(f"max_connections must be 1-{MAX_CONNECTIONS_LIMIT}, found {self.max_connections}")
        if not 0 <= self.outbound_slots <= self.max_connections:
            raise ValueError(f"outbound_slots must be 0-{self.max_connections} (max_connections), "
                             f"found {self.outbound_slots}")
        if self.max_inbound_per_ip < 1:
            raise ValueError(f"max_inbound_per_ip must be at least 1, found {self.max_inbound_per_ip}")

    @property
    def max_inbound(self) -> int:
        """Inbound connections at most: every slot but the outbound ones."""
        return self.max_connections - self.outbound_slots

    def per_address(self, key: str | None) -> bool:
        """Whether the per-address rules (the per-address limit, address bans) apply to ``key``."""
        return key is not None and (self.limit_loopback or not is_loopback_key(key))


class Refusal(StrEnum):
    """Why an inbound connection was closed before its handshake."""

    BANNED_ADDRESS = "banned-address"
    INBOUND_FULL = "inbound-full"
    """Every inbound slot is taken (the outbound ones stay free)."""
    ALL_FULL = "connections-full"
    """Inbound and outbound connections together fill ``max_connections``."""
    ADDRESS_FULL = "address-full"
    """This address holds ``max_inbound_per_ip`` inbound connections already."""


class InboundTicket:
    """One admitted inbound connection's slot, held until ``ConnectionSlots.release``."""

    __slots__ = ("key",)

    def __init__(self, key: str | None) -> None:
        self.key = key
        """The ``address_key`` it counts against (``None``: not counted per address)."""


class ConnectionSlots:
    """Inbound admission: who gets an inbound slot, counted from admission to close.

    A slot is taken before the security handshake (an attacker cannot make the node run
    handshakes beyond its limits) and released when the connection closes. Not thread-safe: the
    host calls it under its own lock. Outbound connections are the host's to count; it passes
    how many are open.
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._tickets: set[InboundTicket] = set()
        self._by_key: dict[str, int] = {}

    @property
    def inbound(self) -> int:
        """Inbound connections holding a slot (in handshake or open)."""
        return len(self._tickets)

    def inbound_from(self, key: str) -> int:
        """Inbound connections holding a slot from one ``address_key``."""
        return self._by_key.get(key, 0)

    def admit_inbound(self, host: str | None, *, outbound: int,
                      address_banned: bool = False) -> InboundTicket | Refusal:
        """A slot for an inbound connection from ``host`` (an IP address), or why not.

        ``outbound``: outbound connections open now. ``address_banned``: the ban book's answer for
        ``address_key(host)``; it counts only where ``per_address`` applies (loopback exemption).
        """
        limits = self.limits
        key = address_key(host)
        per_address = limits.per_address(key)
        if per_address and address_banned:
            return Refusal.BANNED_ADDRESS
        if len(self._tickets) >= limits.max_inbound:
            return Refusal.INBOUND_FULL
        if len(self._tickets) + outbound >= limits.max_connections:
            return Refusal.ALL_FULL
        if per_address and key is not None and self._by_key.get(key, 0) >= limits.max_inbound_per_ip:
            return Refusal.ADDRESS_FULL
        ticket = InboundTicket(key if per_address else None)
        self._tickets.add(ticket)
        if ticket.key is not None:
            self._by_key[ticket.key] = self._by_key.get(ticket.key, 0) + 1
        return ticket

    def release(self, ticket: InboundTicket) -> None:
        """Give the slot back (idempotent)."""
        if ticket not in self._tickets:
            return
        self._tickets.remove(ticket)
        if ticket.key is not None:
            left = self._by_key[ticket.key] - 1
            if left:
                self._by_key[ticket.key] = left
            else:
                del self._by_key[ticket.key]
