"""The blob store: content-addressed files, atomic writes, limits, the quota and eviction, streamed writes and
paged reads; and the strict .npy matrix parser."""

from __future__ import annotations

import numpy as np
import pytest

from node.blobs import (
    NPY_MAX_HEADER,
    BlobError,
    BlobStore,
    blob_hash,
    encode_npy,
    load_matrix,
    matrix_check,
    npy_header_size,
    npy_max_size,
    npy_size,
    parse_npy_header,
    product_check,
)


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


# --- .npy headers ---------------------------------------------------------------------------------


def test_npy_headers_are_read_from_the_first_bytes():
    data = encode_npy(np.zeros((300, 70), np.int8))
    assert npy_size((300, 70), np.int8) == len(data) and npy_header_size((4096, 4096), np.int32) == 128
    for cut in (0, 3, 8, 11, 100):
        assert parse_npy_header(data[:cut]) is None  # not enough bytes yet
    header = parse_npy_header(data[:128])
    assert header.shape == (300, 70) and header.dtype == np.int8 and header.size == len(data)
    for bad in (b"PK\x03\x04", b"\x93NUMPY\x09\x00", _pickled_npy()):
        with pytest.raises(BlobError) as e:
            parse_npy_header(bad)
        assert e.value.kind == "invalid"
    long_header = b"\x93NUMPY\x01\x00" + (NPY_MAX_HEADER).to_bytes(2, "little")
    with pytest.raises(BlobError, match="header"):
        parse_npy_header(long_header)


def test_load_matrix_refuses_trailing_bytes():
    data = encode_npy(np.zeros((16, 16), np.int8))
    with pytest.raises(BlobError, match="bytes for a .npy matrix"):
        load_matrix(data + b"\x00", "A")


# --- quota and eviction ---------------------------------------------------------------------------


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def blob(i: int, size: int = 100) -> bytes:
    return bytes([i]) * size


def test_a_full_store_evicts_unreferenced_blobs_oldest_first(tmp_path):
    clock = Clock()
    store = BlobStore(tmp_path, quota_bytes=300, evict_min_age=60, clock=clock)
    kept: set[str] = set()
    store.set_referenced(lambda: kept)
    first, second, third = (store.put(blob(i)) for i in (1, 2, 3))
    kept.add(first)  # a live job's matrix
    clock.now += 120
    store.touch(third)  # used again just now: safe for a minute
    fourth = store.put(blob(4))
    assert not store.has(second) and store.has(first) and store.has(third) and store.has(fourth)
    assert store.usage() == 300 and sorted(p.name for p in tmp_path.iterdir()) == sorted([first, third, fourth])


def test_a_put_that_cannot_fit_is_refused_and_evicts_nothing(tmp_path):
    clock = Clock()
    store = BlobStore(tmp_path, quota_bytes=300, evict_min_age=60, clock=clock)
    live = store.put(blob(1))
    store.set_referenced(lambda: {live})
    recent = store.put(blob(2))
    with pytest.raises(BlobError) as e:
        store.put(blob(3, 200))  # the unreferenced one is too young, and too small anyway
    assert e.value.kind == "no-space" and "quota of 300 bytes" in str(e.value)
    assert store.has(live) and store.has(recent) and store.usage() == 200
    clock.now += 61
    with pytest.raises(BlobError):
        store.put(blob(3, 201))  # even evicting `recent`, 201 do not fit beside the live 100
    assert store.has(recent)
    assert store.has(store.put(blob(3, 200))) and not store.has(recent)


def test_the_quota_holds_across_a_restart(tmp_path):
    store = BlobStore(tmp_path, quota_bytes=250, evict_min_age=0)
    a = store.put(blob(1))
    again = BlobStore(tmp_path, quota_bytes=250, evict_min_age=0)
    assert again.usage() == 100
    again.set_referenced(lambda: {a})
    again.put(blob(2))
    with pytest.raises(BlobError):
        again.put(blob(3, 151))


def test_discard_unreferenced_keeps_the_blobs_of_live_jobs(tmp_path):
    store = BlobStore(tmp_path)
    a, b = store.put(blob(1)), store.put(blob(2))
    store.set_referenced(lambda: {a})
    assert store.discard_unreferenced([a, b, "00" * 32]) == [b]
    assert store.has(a) and not store.has(b) and store.usage() == 100


# --- streaming writes and paged reads -------------------------------------------------------------


def test_a_streamed_blob_is_hashed_checked_and_renamed_into_place(tmp_path):
    store = BlobStore(tmp_path)
    data = encode_npy(np.arange(-64, 64, dtype=np.int8).reshape(8, 16))
    digest = blob_hash(data)
    w = store.writer(digest, npy_max_size((8, 16), np.int8))
    assert store.usage() == 128 + 1024  # reserved while it is written
    for i in range(0, len(data), 50):
        w.write(data[i:i + 50])
    assert not store.has(digest)
    assert w.commit(matrix_check((8, 16), "A")) == digest
    assert store.get(digest) == data and store.usage() == len(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == [digest]


@pytest.mark.parametrize("case", ["wrong-hash", "not-a-matrix", "wrong-shape", "over-the-size"])
def test_anything_wrong_with_a_streamed_blob_deletes_it(tmp_path, case):
    store = BlobStore(tmp_path)
    good = encode_npy(np.ones((8, 16), np.int8))
    data = {"wrong-hash": good, "not-a-matrix": b"x" * 200, "wrong-shape": encode_npy(np.ones((16, 8), np.int8)),
            "over-the-size": good}[case]
    digest = blob_hash(b"something else") if case == "wrong-hash" else blob_hash(data)
    limit = 100 if case == "over-the-size" else 2000
    with pytest.raises(BlobError):
        with store.writer(digest, limit) as w:
            w.write(data)
            w.commit(matrix_check((8, 16), "A"))
    assert list(tmp_path.iterdir()) == [] and store.usage() == 0


def test_a_writer_reserves_its_size_in_the_quota(tmp_path):
    store = BlobStore(tmp_path, quota_bytes=1000, evict_min_age=0)
    w = store.writer("ab" * 32, 800)
    with pytest.raises(BlobError) as e:
        store.put(blob(1, 300))
    assert e.value.kind == "no-space"
    w.discard()
    store.put(blob(1, 300))
    with pytest.raises(BlobError) as e:
        store.writer("cd" * 32, store.max_bytes + 1)
    assert e.value.kind == "too-large"


def test_pages_are_read_with_a_seek(tmp_path):
    store = BlobStore(tmp_path)
    data = bytes(range(256)) * 40
    digest = store.put(data)
    assert store.read_page(digest, 0, 100) == (len(data), data[:100])
    assert store.read_page(digest, 10_000, 500) == (len(data), data[10_000:])
    assert store.read_page(digest, 20_000, 10) == (len(data), b"")
    assert store.read_page("00" * 32, 0, 10) is None


def test_product_check_wants_int32_of_the_exact_shape(tmp_path):
    good = tmp_path / "c"
    good.write_bytes(encode_npy(np.zeros((4, 5), np.int32)))
    product_check((4, 5))(good)
    for bad in (encode_npy(np.zeros((4, 5), np.int64)), encode_npy(np.zeros((5, 4), np.int32)),
                encode_npy(np.zeros((4, 5), np.int32)) + b"junk", b"junk"):
        good.write_bytes(bad)
        with pytest.raises(BlobError):
            product_check((4, 5))(good)
