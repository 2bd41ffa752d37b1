"""``wallet.matmul.Client`` against an in-process node double: exactness, tiling, reuse, checks, retries, cleanup."""

import numpy as np
import pytest

from tests.support.matmul_nodes import Corrupting, InProcessNode
from wallet.matmul import Client, MatmulError, check_int64_bound, quantize_rows, tile_ranges
from wallet.rpc import RpcError

SMALL_TILE = (32, 256, 48)


def client(node, **kw) -> Client:
    kw.setdefault("tile", SMALL_TILE)
    kw.setdefault("poll_interval", 0.001)
    kw.setdefault("progress", False)
    return Client("http://127.0.0.1:1/", node=node, **kw)


def exact(a, b):
    return a.astype(np.int64) @ b.astype(np.int64)


def test_tile_ranges_cover_with_a_ragged_edge():
    assert tile_ranges(70, 32) == [(0, 32), (32, 64), (64, 70)]
    assert tile_ranges(64, 32) == [(0, 32), (32, 64)]
    assert tile_ranges(5, 32) == [(0, 5)]
    assert tile_ranges(0, 32) == []


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_full_range_products_are_exact_with_ragged_tiles(dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, int(info.max) + 1, (70, 600), dtype=dtype)
    b = rng.integers(info.min, int(info.max) + 1, (600, 50), dtype=dtype)
    a[0, :] = info.min
    b[:, 0] = info.min  # the extreme corner: k * min * min
    node = InProcessNode()
    c = client(node)
    got = c.matmul(a, b)
    assert got.dtype == np.int64 and np.array_equal(got, exact(a, b))
    digits = {np.int8: 2, np.uint8: 2, np.int16: 3}[dtype]
    # 3 row blocks x 3 k slices x 2 column blocks, one job per digit pair.
    assert c.last_stats["sub_jobs"] == 3 * 3 * 2 * digits * digits
    assert c.last_stats["retries"] == 0 and c.last_stats["computed_by"] == {"this node": c.last_stats["sub_jobs"]}
    assert c.last_stats["bytes_up"] > 0 and c.last_stats["bytes_down"] > 0 and c.last_stats["seconds"] >= 0


def test_mixed_dtypes_int32_and_shapes_smaller_than_a_tile():
    rng = np.random.default_rng(2)
    a = rng.integers(-(1 << 31), 1 << 31, (3, 5), dtype=np.int64).astype(np.int32)
    b = rng.integers(-128, 128, (5, 2), dtype=np.int8)
    assert np.array_equal(client(InProcessNode()).matmul(a, b), exact(a, b))
    u = rng.integers(0, 256, (17, 9), dtype=np.uint8)
    s = rng.integers(-32768, 32768, (9, 4), dtype=np.int16)
    assert np.array_equal(client(InProcessNode()).matmul(u, s), exact(u, s))


def test_int64_bound_is_checked_exactly():
    top = np.full((1, 2), -(1 << 31), np.int32)  # k * 2^31 * 2^31 = 2 * 2^62 = 2^63: may not fit
    with pytest.raises(MatmulError, match="may not fit int64"):
        check_int64_bound(top, top.T.copy())
    with pytest.raises(MatmulError, match="may not fit int64"):
        client(InProcessNode()).matmul(top, top.T.copy())
    one = top[:, :1]  # k = 1: 2^62 < 2^63 fits, and is computed exactly
    assert client(InProcessNode()).matmul(one, one.T.copy())[0, 0] == 1 << 62
    big = np.array([[(1 << 62) - 1]], np.int64)
    check_int64_bound(big, np.array([[2]], np.int64))  # 2^63 - 2: fits
    with pytest.raises(MatmulError):
        check_int64_bound(big + 1, np.array([[2]], np.int64))  # 2^63: does not
    assert client(InProcessNode()).matmul(big, np.array([[-1]], np.int64))[0, 0] == -((1 << 62) - 1)


def test_small_values_send_no_high_digit_and_repeated_blocks_are_computed_once():
    rng = np.random.default_rng(3)
    block = rng.integers(-64, 64, (32, 256), dtype=np.int8)
    a = np.tile(block, (3, 2))  # 96 x 512: three equal row blocks, two equal k slices
    b = rng.integers(-64, 64, (512, 48), dtype=np.int8)
    b[256:] = b[:256]
    node = InProcessNode()
    c = client(node)
    assert np.array_equal(c.matmul(a, b), exact(a, b))
    # Entries in [-64, 63]: only the low digits, so one job per distinct tile pair: all 6 uses are one job.
    assert c.last_stats["sub_jobs"] == 1 and c.last_stats["reused"] == 5
    assert len(set(node.submissions)) == 1
    assert node.uploads == 2  # each distinct tile is uploaded once


def test_zero_matrices_and_empty_dimensions_need_no_jobs():
    node = InProcessNode()
    c = client(node)
    assert not c.matmul(np.zeros((4, 300), np.int8), np.ones((300, 5), np.int8)).any()
    assert c.last_stats["sub_jobs"] == 0 and node.submissions == []
    assert c.matmul(np.zeros((0, 3), np.int8), np.zeros((3, 2), np.int8)).shape == (0, 2)


def test_a_corrupted_product_is_caught_by_freivalds_and_retried():
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, (40, 300), dtype=np.int8)
    b = rng.integers(-128, 128, (300, 30), dtype=np.int8)
    node = Corrupting(InProcessNode(), times=1)
    c = client(node)
    assert np.array_equal(c.matmul(a, b), exact(a, b))
    assert len(node.corrupted) == 1 and c.last_stats["retries"] == 1


def test_a_product_that_keeps_failing_raises_with_its_job_id():
    rng = np.random.default_rng(5)
    a = rng.integers(-64, 64, (16, 256), dtype=np.int8)
    b = rng.integers(-64, 64, (256, 16), dtype=np.int8)
    inner = InProcessNode()
    node = Corrupting(inner, times=100)
    with pytest.raises(MatmulError, match="Freivalds") as e:
        client(node, max_retries=2).matmul(a, b)
    assert len(e.value.job_ids) == 1 and e.value.job_ids[0] in str(e.value)
    assert node.corrupted == e.value.job_ids * 3  # the first try and two retries


def test_failed_jobs_are_submitted_again_and_a_full_queue_waits():
    rng = np.random.default_rng(6)
    a = rng.integers(-128, 128, (64, 512), dtype=np.int8)
    b = rng.integers(-128, 128, (512, 96), dtype=np.int8)
    node = InProcessNode(max_queued=2, mine_after=1, fail_first=2)
    c = client(node)
    assert np.array_equal(c.matmul(a, b), exact(a, b))
    assert c.last_stats["retries"] == 2 and c.last_stats["sub_jobs"] == 2 * 2 * 2 * 4


def test_a_timeout_cancels_the_waiting_sub_jobs_and_names_them():
    rng = np.random.default_rng(7)
    a = rng.integers(-64, 64, (40, 256), dtype=np.int8)
    b = rng.integers(-64, 64, (256, 20), dtype=np.int8)
    node = InProcessNode(mine_after=10**9)
    with pytest.raises(MatmulError, match="timed out") as e:
        client(node, timeout=0.3).matmul(a, b)
    assert len(e.value.job_ids) == 2
    assert sorted(node.cancelled) == sorted(e.value.job_ids)


class Interrupting(InProcessNode):
    def jobs(self, job_ids):
        raise KeyboardInterrupt


def test_an_interrupt_cancels_the_sub_jobs_on_the_node():
    a = np.ones((20, 256), np.int8)
    node = Interrupting(mine_after=10**9)
    with pytest.raises(KeyboardInterrupt):
        client(node).matmul(a, a.T.copy())
    assert node.cancelled == node.submissions and len(node.cancelled) == 1


def test_node_errors_propagate_after_cleanup():
    class Refusing(InProcessNode):
        def submit(self, a_hash, b_hash):
            raise RpcError(-42, "too large here")

    with pytest.raises(MatmulError, match="smaller Client"):
        client(Refusing()).matmul(np.ones((16, 256), np.int8), np.ones((256, 16), np.int8))


def test_quantized_float_product_is_close_and_uses_exact_integers():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((50, 300))
    b = rng.standard_normal((300, 20)).astype(np.float32)
    c = client(InProcessNode())
    got = c.matmul(a, b, quantize="int8")
    qa, sa = quantize_rows(a, 127)
    qb, sb = quantize_rows(b.T, 127)
    assert np.array_equal(got, exact(qa, qb.T).astype(np.float64) * sa[:, None] * sb[None, :])
    want = a @ b.astype(np.float64)
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert rel < 0.02
    assert c.last_stats["sub_jobs"] > 0
    rel16 = np.linalg.norm(c.matmul(a, b, quantize="int16") - want) / np.linalg.norm(want)
    assert rel16 < rel / 50


def test_bad_inputs_are_clear_errors():
    c = client(InProcessNode())
    i8 = np.ones((2, 2), np.int8)
    with pytest.raises(MatmulError, match="quantize='int8'"):
        c.matmul(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(MatmulError, match="quantize is for float"):
        c.matmul(i8, i8, quantize="int8")
    with pytest.raises(MatmulError, match="quantize must be"):
        c.matmul(np.ones((2, 2)), np.ones((2, 2)), quantize="int4")
    with pytest.raises(MatmulError, match="columns must equal"):
        c.matmul(np.ones((2, 3), np.int8), i8)
    with pytest.raises(MatmulError, match="2-D"):
        c.matmul(np.ones(3, np.int8), i8)
    with pytest.raises(MatmulError, match="NaN"):
        c.matmul(np.array([[np.nan, 1.0]]), np.ones((2, 1)), quantize="int8")
    with pytest.raises(MatmulError, match="uint64"):
        c.matmul(np.ones((2, 2), np.uint64), i8)
    with pytest.raises(ValueError):
        Client("http://x/", tile=(0, 256, 16))


def test_progress_is_quiet_unless_asked(capsys):
    a = np.ones((16, 256), np.int8)
    client(InProcessNode(), progress=False).matmul(a, a.T.copy())
    assert capsys.readouterr().err == ""
    client(InProcessNode(), progress=True).matmul(a, a.T.copy())
    err = capsys.readouterr().err
    assert "matmul: 1 sub-jobs done" in err
