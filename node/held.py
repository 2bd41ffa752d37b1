"""``HeldBlocks``: a bounded pool of blocks the chain cannot take yet (orphans, blocks from the future).

Whatever is held was sent by someone and costs memory until it is taken or
dropped, so the pool is bounded three ways: blocks and bytes per source (the
peer id, ``"miner"``, ``"rpc"``, ...), and blocks and bytes in total. Bytes are
the blocks' encoded sizes (a decoded block takes a few times more memory; the
bound is what a sender controls).

When a bound is passed, a block is evicted at random: of the same source when
that source is over its share, else of the whole pool. Oldest-first eviction
would let a sender that floods the pool push out every block of every other
source; at random, a flood of ``F`` blocks into a full pool of ``C`` leaves
each earlier block a chance of ``(1 - 1/C)^F``, about ``e^(-F/C)``, to stay
(a third for a flood as large as the pool), and a single source can never
hold more than its share, so a flood needs many sources. The randomness decides nothing of
consensus: ``random.SystemRandom`` by default, a seeded ``random.Random`` in
tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from consensus.types import Block


@dataclass(frozen=True)
class HeldBlock:
    """One held block, with its encoded size and who sent it."""

    block: Block
    size: int
    source: str

    @property
    def block_id(self) -> bytes:
        return self.block.header.block_id


class HeldBlocks:
    """Blocks keyed by id and by parent id, bounded per source and in total, evicted at random."""

    def __init__(self, max_count: int, max_bytes: int, *, max_count_per_source: int | None = None,
                 max_bytes_per_source: int | None = None, rng: random.Random | None = None) -> None:
        """``max_count_per_source`` and ``max_bytes_per_source`` default to a quarter of the totals."""
        per_count = max_count_per_source if max_count_per_source is not None else max(1, max_count // 4)
        per_bytes = max_bytes_per_source if max_bytes_per_source is not None else max(1, max_bytes // 4)
        if min(max_count, max_bytes, per_count, per_bytes) < 1:
            raise ValueError("every bound of a pool of held blocks must be at least 1")
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_count_per_source = min(per_count, max_count)
        self.max_bytes_per_source = min(per_bytes, max_bytes)
        self._rng = rng or random.SystemRandom()
        self._held: dict[bytes, HeldBlock] = {}
        self._ids: list[bytes] = []
        """Every held id, for a uniform random pick (removal swaps with the last entry)."""
        self._slot: dict[bytes, int] = {}
        self._by_parent: dict[bytes, dict[bytes, None]] = {}
        """Parent id -> the ids of its held children, in arrival order."""
        self._by_source: dict[str, list[bytes]] = {}
        self._source_slot: dict[bytes, int] = {}
        self._source_bytes: dict[str, int] = {}
        self.bytes = 0
        """Encoded bytes held."""

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, block_id: object) -> bool:
        return block_id in self._held

    def __iter__(self) -> Iterator[HeldBlock]:
        return iter(list(self._held.values()))

    def count_of(self, source: str) -> int:
        """Blocks held from ``source``."""
        return len(self._by_source.get(source, ()))

    def add(self, block: Block, size: int, source: str) -> list[bytes]:
        """Hold ``block`` (a block over a per-source byte bound is not held); the ids evicted to make room.

        The caller checked ``size`` against the network's block size limit; a
        block alone larger than a source's byte share is refused here (the id
        is returned as "evicted", so the caller sees it is not held).
        """
        block_id = block.header.block_id
        if block_id in self._held:
            return []
        if size > self.max_bytes_per_source:
            return [block_id]
        evicted: list[bytes] = []
        while self._by_source.get(source) and (
            len(self._by_source[source]) >= self.max_count_per_source
            or self._source_bytes[source] + size > self.max_bytes_per_source
        ):
            evicted.append(self._evict(self._by_source[source]))
        while self._held and (len(self._held) >= self.max_count or self.bytes + size > self.max_bytes):
            evicted.append(self._evict(self._ids))
        held = HeldBlock(block, size, source)
        self._held[block_id] = held
        self._slot[block_id] = len(self._ids)
        self._ids.append(block_id)
        self._by_parent.setdefault(block.prev_id, {})[block_id] = None
        ids = self._by_source.setdefault(source, [])
        self._source_slot[block_id] = len(ids)
        ids.append(block_id)
        self._source_bytes[source] = self._source_bytes.get(source, 0) + size
        self.bytes += size
        return evicted

    def _evict(self, candidates: list[bytes]) -> bytes:
        block_id = candidates[self._rng.randrange(len(candidates))]
        self.remove(block_id)
        return block_id

    def remove(self, block_id: bytes) -> HeldBlock | None:
        """Take ``block_id`` out of the pool (``None`` if it is not held)."""
        held = self._held.pop(block_id, None)
        if held is None:
            return None
        _swap_remove(self._ids, self._slot, block_id)
        siblings = self._by_parent.get(held.block.prev_id)
        if siblings is not None:
            siblings.pop(block_id, None)
            if not siblings:
                del self._by_parent[held.block.prev_id]
        ids = self._by_source[held.source]
        _swap_remove(ids, self._source_slot, block_id)
        self._source_bytes[held.source] -= held.size
        if not ids:
            del self._by_source[held.source]
            del self._source_bytes[held.source]
        self.bytes -= held.size
        return held

    def take_children(self, parent_id: bytes) -> list[HeldBlock]:
        """Remove and return the blocks whose parent is ``parent_id``, in arrival order (the first seen of
        equal-work siblings stays the tip)."""
        return [h for i in list(self._by_parent.get(parent_id, ())) if (h := self.remove(i)) is not None]

    def take_if(self, ready: Callable[[HeldBlock], bool]) -> list[HeldBlock]:
        """Remove and return the blocks for which ``ready(held)`` is true, lowest height first."""
        due = sorted((h for h in self._held.values() if ready(h)), key=lambda h: h.block.height)
        return [h for h in due if self.remove(h.block_id) is not None]


def _swap_remove(ids: list[bytes], slot: dict[bytes, int], block_id: bytes) -> None:
    """Remove ``block_id`` from ``ids`` in O(1): the last entry takes its place."""
    index = slot.pop(block_id)
    last = ids.pop()
    if last != block_id:
        ids[index] = last
        slot[last] = index
