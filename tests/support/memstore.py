"""``MemoryStore``: the in-memory ``node.store.KeyValueStore`` that unit tests use."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from node.store import WriteBatch


class MemoryStore:
    """In-memory ``KeyValueStore`` for unit tests: a dict plus a sorted key list."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self.writes = 0
        """Number of batches applied (tests count them)."""

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        i = bisect.bisect_left(self._keys, prefix)
        keys = []
        while i < len(self._keys) and self._keys[i].startswith(prefix):
            keys.append(self._keys[i])
            i += 1
        for key in keys:
            yield key, self.data[key]

    def write(self, batch: WriteBatch) -> None:
        for key, value in batch.ops:
            if value is None:
                if key in self.data:
                    del self.data[key]
                    self._keys.pop(bisect.bisect_left(self._keys, key))
            else:
                if key not in self.data:
                    bisect.insort(self._keys, key)
                self.data[key] = value
        self.writes += 1

    def snapshot(self) -> dict[bytes, bytes]:
        """A copy of the contents: a ``KeyValueReader`` (``dict.get``), and what tests compare."""
        return dict(self.data)

    def close(self) -> None:
        pass
