"""The key-value store seam: a small ``KeyValueStore`` protocol and LevelDB behind it.

Everything the chain writes goes through ``write(batch)``, which applies all
of a ``WriteBatch`` or nothing. ``LevelDBStore`` uses plyvel's
``write_batch(transaction=True)``. Unit tests use an in-memory fake
(``tests.support.memstore.MemoryStore``); shipped code always uses ``LevelDBStore``.

``sync=True`` makes LevelDB fsync its log on every batch, so a batch that
returned survives a power cut; without it a batch survives a process crash
(the OS holds the written log) but maybe not a power cut.
"""

from __future__ import annotations

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


class KeyValueReader(Protocol):
    """Point reads of a store, or of an immutable snapshot of one."""

    def get(self, key: bytes) -> bytes | None:
        """The value at ``key``, or ``None``."""
        ...


class KeyValueStore(Protocol):
    """What the chain needs from a database."""

    def get(self, key: bytes) -> bytes | None:
        """The value at ``key``, or ``None``."""
        ...

    def snapshot(self) -> KeyValueReader:
        """An immutable view of the store as it is now: later writes do not show through it.

        Readable from any thread while the owner keeps writing; it stops working
        (raises) once the store is closed.
        """
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

    def snapshot(self) -> KeyValueReader:
        return _LevelDBSnapshot(self._db.snapshot(), self._plyvel)

    def close(self) -> None:
        self._db.close()

    @property
    def closed(self) -> bool:
        return self._db.closed


class _LevelDBSnapshot:
    """``KeyValueReader`` over a plyvel snapshot."""

    def __init__(self, snapshot, plyvel) -> None:
        self._snapshot = snapshot
        self._plyvel = plyvel

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._snapshot.get(key)
        except (self._plyvel.Error, RuntimeError) as e:  # RuntimeError: the database was closed
            raise StorageError(f"LevelDB snapshot read failed: {e}") from e
