"""Gossiped blocks whose parent is unknown yet, held (bounded) until the parent arrives.

The network holds these itself instead of handing them to the chain: it knows
which peer sent each one, so it can bound each peer's share and drop a banned
peer's blocks, and it holds raw bytes only (the chain would keep decoded
blocks, several times larger). ``PeerNetwork`` holds a block here only after
``ChainAccess.check_orphan`` passed it (size, encoding, transaction count,
target no easier than ``pow_limit``, certificate against the header's own
target), so every held block cost its sender a real certificate.

Bounds: ``per_peer_count`` blocks and ``per_peer_bytes`` bytes per peer, and
``max_count`` / ``max_bytes`` in total. Eviction is random, never oldest
first: with FIFO anybody can flush every honest orphan by sending more of its
own. A peer over its own share loses one of its own blocks, chosen at random,
so it can only displace itself; when the whole pool is full, a random block of
the peer that holds the most goes, so a flood from many identities displaces
mostly itself: a peer holding fewer blocks than an equal share (``max_count``
over the peers holding blocks) keeps every one. The choice is not consensus: ``random.SystemRandom`` (or the
``rng`` a test passes) picks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

MAX_PENDING_ORPHANS = 256
"""Blocks held for an unknown parent, from all peers together."""
MAX_PENDING_ORPHAN_BYTES = 32 << 20
"""Bytes of those blocks, from all peers together."""
MAX_ORPHANS_PER_PEER = 16
"""Blocks held for one peer (honest peers send an orphan now and then: a block that overtook its parent)."""
MAX_ORPHAN_BYTES_PER_PEER = 8 << 20
"""Bytes held for one peer: two blocks of the largest size (4,000,000 bytes)."""
MAX_ORPHAN_CHECKS_PER_PEER = 2
"""A peer's orphans fetched or checked at once (``PeerNetwork``); more are dropped unread."""
MAX_ORPHAN_CHECKS_WAITING = 8
"""Orphans fetched or checked at once, from all peers (at most 8 x 4 MB waiting in memory)."""


@dataclass(frozen=True)
class Orphan:
    """One held block: its id, its parent's id, its bytes and the peer that sent it."""

    block_id: bytes
    parent_id: bytes
    raw: bytes
    peer: str


class PendingOrphans:
    """Raw blocks by id, with their parent and sender, within per-peer and total bounds (random eviction)."""

    def __init__(self, max_count: int = MAX_PENDING_ORPHANS, max_bytes: int = MAX_PENDING_ORPHAN_BYTES, *,
                 per_peer_count: int = MAX_ORPHANS_PER_PEER, per_peer_bytes: int = MAX_ORPHAN_BYTES_PER_PEER,
                 rng: random.Random | None = None) -> None:
        if min(max_count, max_bytes, per_peer_count, per_peer_bytes) < 1:
            raise ValueError("every orphan bound must be at least 1")
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.per_peer_count = min(per_peer_count, max_count)
        self.per_peer_bytes = min(per_peer_bytes, max_bytes)
        self._rng = rng if rng is not None else random.SystemRandom()
        self._blocks: dict[bytes, Orphan] = {}
        self._by_peer: dict[str, dict[bytes, None]] = {}
        self._by_parent: dict[bytes, dict[bytes, None]] = {}
        self._peer_bytes: dict[str, int] = {}
        self._bytes = 0
        self.evicted = 0
        """Blocks dropped to make room (not those taken or dropped with a banned peer)."""

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block_id: object) -> bool:
        return block_id in self._blocks

    def __iter__(self) -> Iterator[Orphan]:
        return iter(list(self._blocks.values()))

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def held_by(self, peer: str) -> tuple[int, int]:
        """``(blocks, bytes)`` held for ``peer``."""
        return len(self._by_peer.get(peer, ())), self._peer_bytes.get(peer, 0)

    def add(self, block_id: bytes, parent_id: bytes, raw: bytes, peer: str) -> bool:
        """Hold ``raw`` for ``peer`` (evicting at random to stay within the bounds); False if not held.

        A block already held, or bigger than a peer's whole byte share, is not held.
        """
        if block_id in self._blocks or len(raw) > self.per_peer_bytes:
            return False
        size = len(raw)
        while self._by_peer.get(peer) and (len(self._by_peer[peer]) >= self.per_peer_count
                                           or self._peer_bytes[peer] + size > self.per_peer_bytes):
            self._evict_from(peer)
        while self._blocks and (len(self._blocks) >= self.max_count or self._bytes + size > self.max_bytes):
            self._evict_from(self._largest_holder(by_bytes=self._bytes + size > self.max_bytes))
        orphan = Orphan(bytes(block_id), bytes(parent_id), bytes(raw), peer)
        self._blocks[orphan.block_id] = orphan
        self._by_peer.setdefault(peer, {})[orphan.block_id] = None
        self._by_parent.setdefault(orphan.parent_id, {})[orphan.block_id] = None
        self._peer_bytes[peer] = self._peer_bytes.get(peer, 0) + size
        self._bytes += size
        return True

    def take_children(self, parent_id: bytes) -> list[Orphan]:
        """Remove and return every held block whose parent is ``parent_id``."""
        return [self._remove(cid) for cid in list(self._by_parent.get(parent_id, ()))]

    def drop_peer(self, peer: str) -> int:
        """Drop every block held for ``peer`` (it was banned); how many."""
        ids = list(self._by_peer.get(peer, ()))
        for block_id in ids:
            self._remove(block_id)
        return len(ids)

    def _largest_holder(self, *, by_bytes: bool) -> str:
        """The peer holding the most blocks (or bytes); a random one of them on a tie."""
        def share(p: str) -> int:
            return self._peer_bytes[p] if by_bytes else len(self._by_peer[p])

        most = max(share(p) for p in self._by_peer)
        return self._rng.choice(sorted(p for p in self._by_peer if share(p) == most))

    def _evict_from(self, peer: str) -> None:
        self._remove(self._rng.choice(list(self._by_peer[peer])))
        self.evicted += 1

    def _remove(self, block_id: bytes) -> Orphan:
        orphan = self._blocks.pop(block_id)
        siblings = self._by_parent[orphan.parent_id]
        del siblings[block_id]
        if not siblings:
            del self._by_parent[orphan.parent_id]
        own = self._by_peer[orphan.peer]
        del own[block_id]
        self._peer_bytes[orphan.peer] -= len(orphan.raw)
        if not own:
            del self._by_peer[orphan.peer]
            del self._peer_bytes[orphan.peer]
        self._bytes -= len(orphan.raw)
        return orphan
