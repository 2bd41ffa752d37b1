"""The key-value store seam: a small ``KeyValueStore`` protocol, LevelDB behind it, and an in-memory fake.

Everything the chain writes goes through ``write(batch)``, which applies all
of a ``WriteBatch`` or nothing. ``LevelDBStore`` uses plyvel's
``write_batch(transaction=True)``; ``MemoryStore`` applies a batch to a dict in
one step and is what unit tests use. Shipped code always uses ``LevelDBStore``.

``sync=True`` makes LevelDB fsync its log on every batch, so a batch that
returned survives a power cut; without it a batch survives a process crash
(the OS holds the written log) but maybe not a power cut.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Protocol

from .errors import StorageError


class WriteBatch:
    """Puts and deletes to apply together; later operations on a key win."""

    def __init__(self) -> None:
        self.ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value`` when the batch is written."""
        self.ops.append((bytes(key), bytes(value)))

    def delete(self, key: bytes) -> None:
        """Remove ``key`` (if present) when the batch is written."""
        self.ops.append((bytes(key), None))

    def __len__(self) -> int:
        return len(self.ops)


class KeyValueStore(Protocol):
    """What the chain needs from a database."""

    def get(self, key: bytes) -> bytes | None:
        """The value at ``key``, or ``None``."""
        ...

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, in key order."""
        ...

    def write(self, batch: WriteBatch) -> None:
        """Apply every operation of ``batch`` atomically."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...


class LevelDBStore:
    """``KeyValueStore`` on LevelDB through plyvel. One owner per directory (LevelDB holds a lock)."""

    def __init__(self, path: str, *, sync: bool = False, create: bool = True) -> None:
        import plyvel

        self._plyvel = plyvel
        self.path = str(path)
        self.sync = sync
        try:
            self._db = plyvel.DB(self.path, create_if_missing=create)
        except plyvel.Error as e:
            raise StorageError(f"cannot open LevelDB at {self.path}: {e}") from e

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._db.get(key)
        except self._plyvel.Error as e:
            raise StorageError(f"LevelDB get failed: {e}") from e

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        try:
            it = self._db.iterator(prefix=prefix) if prefix else self._db.iterator()
            with it:
                yield from it
        except self._plyvel.Error as e:
            raise StorageError(f"LevelDB iteration failed: {e}") from e

    def write(self, batch: WriteBatch) -> None:
        try:
            with self._db.write_batch(transaction=True, sync=self.sync) as wb:
                for key, value in batch.ops:
                    if value is None:
                        wb.delete(key)
                    else:
                        wb.put(key, value)
        except self._plyvel.Error as e:
            raise StorageError(f"LevelDB write failed: {e}") from e

    def close(self) -> None:
        self._db.close()

    @property
    def closed(self) -> bool:
        return self._db.closed


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
        """A copy of the contents (tests compare before and after)."""
        return dict(self.data)

    def close(self) -> None:
        pass
