"""The blob store: content-addressed files, atomic writes, limits; and the strict .npy matrix parser."""

from __future__ import annotations

import numpy as np
import pytest

from node.blobs import BlobError, BlobStore, blob_hash, encode_npy, load_matrix


def test_put_get_is_content_addressed_and_idempotent(tmp_path):
    store = BlobStore(tmp_path)
    digest = store.put(b"hello")
    assert digest == blob_hash(b"hello") and store.put(b"hello") == digest
    assert store.has(digest) and store.get(digest) == b"hello" and store.size(digest) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [digest]


def test_missing_bad_names_and_limits(tmp_path):
    store = BlobStore(tmp_path, max_bytes=10)
    for call in (store.get, store.size):
        with pytest.raises(BlobError) as e:
            call("00" * 32)
        assert e.value.kind == "missing"
    with pytest.raises(BlobError) as e:
        store.get("../../etc/passwd")
    assert e.value.kind == "invalid"
    with pytest.raises(BlobError) as e:
        store.put(b"x" * 11)
    assert e.value.kind == "too-large" and not list(tmp_path.iterdir())


def test_leftovers_of_a_crash_mid_write_are_removed_on_open(tmp_path):
    (tmp_path / ".tmp-abc").write_bytes(b"half a blob")
    BlobStore(tmp_path)
    assert not list(tmp_path.iterdir())


def _pickled_npy() -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_load_matrix_accepts_int7_and_refuses_the_rest():
    good = np.arange(-64, 64, dtype=np.int8).reshape(8, 16)
    assert np.array_equal(load_matrix(encode_npy(good), "A"), good)
    cases = [
        (b"garbage", "invalid"),
        (encode_npy(good.astype(np.int16)), "invalid"),
        (encode_npy(good.reshape(2, 4, 16)), "invalid"),
        (encode_npy(np.zeros((0, 3), np.int8)), "invalid"),
        (encode_npy(np.full((2, 2), 64, np.int8)), "invalid"),
        (_pickled_npy(), "invalid"),  # an object array would need pickle: never loaded
    ]
    for data, kind in cases:
        with pytest.raises(BlobError) as e:
            load_matrix(data, "A")
        assert e.value.kind == kind
    with pytest.raises(BlobError) as e:
        load_matrix(encode_npy(np.zeros((1, 40), np.int8)), "A", max_dim=32)
    assert e.value.kind == "too-large"
