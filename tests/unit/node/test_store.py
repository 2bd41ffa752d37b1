"""The ``KeyValueStore`` contract, run against the in-memory fake and against LevelDB."""

from __future__ import annotations

import pytest

from node.store import LevelDBStore, WriteBatch
from tests.support.memstore import MemoryStore


@pytest.fixture(params=["memory", "leveldb"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else LevelDBStore(str(tmp_path / "db"))
    yield s
    s.close()


def test_batch_applies_puts_and_deletes_in_order(store):
    batch = WriteBatch()
    batch.put(b"a1", b"x")
    batch.put(b"a2", b"y")
    batch.put(b"b1", b"z")
    store.write(batch)
    batch = WriteBatch()
    batch.delete(b"a1")
    batch.put(b"a3", b"w")
    batch.put(b"a2", b"v1")
    batch.put(b"a2", b"v2")  # later operation on the same key wins
    store.write(batch)
    assert store.get(b"a1") is None
    assert list(store.iterate(b"a")) == [(b"a2", b"v2"), (b"a3", b"w")]
    assert list(store.iterate(b"b")) == [(b"b1", b"z")]
    assert [k for k, _ in store.iterate(b"")] == [b"a2", b"a3", b"b1"]


def test_delete_of_missing_key_is_harmless(store):
    batch = WriteBatch()
    batch.delete(b"nothing")
    store.write(batch)
    assert list(store.iterate(b"")) == []


def test_iteration_is_in_key_order(store):
    batch = WriteBatch()
    for key in [b"k\x02", b"k\x00\xff", b"k\x01", b"k"]:
        batch.put(key, key)
    store.write(batch)
    assert [k for k, _ in store.iterate(b"k")] == [b"k", b"k\x00\xff", b"k\x01", b"k\x02"]
