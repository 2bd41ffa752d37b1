"""Gossiped blocks whose parent is unknown yet, held (bounded) until the parent arrives."""

from __future__ import annotations

from collections import OrderedDict

from consensus.codec import decode_header
from consensus.errors import DecodeError
from pouw.constants import HEADER_SIZE

MAX_PENDING_ORPHAN_BYTES = 32 << 20
"""Memory for gossiped blocks whose parent is unknown yet (oldest dropped first)."""


class PendingOrphans:
    """Encoded blocks by id, with their parent; at most ``max_count`` blocks and ``max_bytes`` bytes."""

    def __init__(self, max_count: int = 256, max_bytes: int = MAX_PENDING_ORPHAN_BYTES) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._blocks: OrderedDict[bytes, tuple[bytes, bytes]] = OrderedDict()  # id -> (parent, block)
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def add(self, block_id: bytes, block: bytes) -> None:
        """Hold ``block`` (dropping the oldest beyond the limits); a block whose header does not decode is not held."""
        try:
            parent = decode_header(block[:HEADER_SIZE]).pre.prev_id
        except DecodeError:
            return
        if block_id in self._blocks:
            return
        self._blocks[block_id] = (parent, bytes(block))
        self._bytes += len(block)
        while len(self._blocks) > self.max_count or self._bytes > self.max_bytes:
            _, (_, old) = self._blocks.popitem(last=False)
            self._bytes -= len(old)

    def take_children(self, parent_id: bytes) -> list[tuple[bytes, bytes]]:
        """Remove and return ``(id, block)`` of every held block whose parent is ``parent_id``."""
        children = [(cid, raw) for cid, (parent, raw) in self._blocks.items() if parent == parent_id]
        for cid, raw in children:
            del self._blocks[cid]
            self._bytes -= len(raw)
        return children
