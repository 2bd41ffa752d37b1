"""The NumPy backend is bit-identical to ``pouw.reference`` and recovers the exact product."""

import numpy as np
import pytest

from kernels import get_backend, prepare
from kernels.base import BackendError
from kernels.numpy_backend import NumpyBackend, _exact_dtype, _row_max
from kernels.select import self_test
from pouw.reference import mine_reference
from pouw.verify import verify
from tests.helpers import EASY_TARGET, int7, template


@pytest.mark.parametrize("m,k,n,panel", [
    (16, 256, 16, 64), (64, 256, 48, 64), (48, 384, 32, 64), (80, 512, 112, 32), (128, 1024, 64, 64),
])
def test_matches_reference_bit_for_bit(m, k, n, panel):
    rng = np.random.default_rng(m * 7 + k + n)
    a, b = int7(rng, m, k), int7(rng, k, n)
    prepared = prepare(a, b)
    pre = template(m, k, n)
    ref = mine_reference(a, b, prepared.commitment, pre)
    backend = NumpyBackend(workers=2, block_rows=panel, block_cols=32)
    got = backend.mine(prepared, pre, 0, want_product=True, all_tickets=True)
    assert np.array_equal(got.tickets, ref.tickets)
    assert np.array_equal(got.product, ref.product)
    assert np.array_equal(got.product, a.astype(np.int64) @ b.astype(np.int64))


def test_reused_buffers_across_shapes_nonces_and_concurrent_calls():
    """One backend keeps its scratch buffers: shapes that grow and shrink, and two calls at once, stay exact."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(9)
    cases = []
    for m, k, n in [(64, 512, 96), (160, 256, 48), (32, 1024, 160), (64, 512, 96)]:
        a, b = int7(rng, m, k), int7(rng, k, n)
        prepared = prepare(a, b)
        cases.append((prepared, template(m, k, n), mine_reference(a, b, prepared.commitment, template(m, k, n))))
    backend = NumpyBackend(workers=2, block_rows=32, block_cols=64)
    for prepared, pre, ref in cases:
        got = backend.mine(prepared, pre, 0, want_product=True, all_tickets=True)
        assert np.array_equal(got.tickets, ref.tickets) and np.array_equal(got.product, ref.product)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda c: backend.mine(c[0], c[1], 0, want_product=True, all_tickets=True), cases))
    for got, (_, _, ref) in zip(results, cases, strict=True):
        assert np.array_equal(got.tickets, ref.tickets) and np.array_equal(got.product, ref.product)


@pytest.mark.parametrize("seed", range(4))
def test_peeling_identity_on_random_shapes(seed):
    rng = np.random.default_rng(100 + seed)
    m = 16 * int(rng.integers(1, 9))
    n = 16 * int(rng.integers(1, 9))
    k = 128 * int(rng.integers(2, 7))
    a, b = int7(rng, m, k), int7(rng, k, n)
    got = get_backend("numpy").mine(prepare(a, b), template(m, k, n), int(rng.integers(0, 2**63)),
                                    want_product=True)
    assert np.array_equal(got.product, a.astype(np.int64) @ b.astype(np.int64))


def test_extreme_entries_stay_exact():
    # All -64 / 63: the largest partial sums the rules allow.
    m, k, n = 32, 2048, 32
    a = np.full((m, k), -64, np.int8)
    b = np.full((k, n), -64, np.int8)
    b[:, ::2] = 63
    prepared = prepare(a, b)
    pre = template(m, k, n)
    got = get_backend("numpy").mine(prepared, pre, 3, want_product=True, all_tickets=True)
    ref = mine_reference(a, b, prepared.commitment, pre.with_nonce(3))
    assert np.array_equal(got.tickets, ref.tickets)
    assert np.array_equal(got.product, a.astype(np.int64) @ b.astype(np.int64))


def test_exact_dtype_falls_back_to_float64_when_bound_exceeds_2_24():
    small = np.ones((4, 8), np.int64)
    assert _exact_dtype(small, _row_max(small.T * 1000)) is np.float32
    assert _exact_dtype(small, _row_max(small.T * (1 << 22))) is np.float64


def test_winners_verify_and_are_row_major():
    rng = np.random.default_rng(5)
    m, k, n = 64, 256, 64
    prepared = prepare(int7(rng, m, k), int7(rng, k, n))
    target = (1 << 256) // (8 * 256 * k)  # a tile wins with probability ~1/8
    result = get_backend("numpy").mine(prepared, template(m, k, n, target), 1, all_tickets=True)
    tiles = [(w.tile_i, w.tile_j) for w in result.winners]
    assert tiles == sorted(tiles) and 0 < len(tiles) < 16
    for w in result.winners:
        assert int.from_bytes(w.ticket, "little") <= result.threshold
        assert verify(result.header(prepared, w).encode(), result.certificate(prepared, w).encode(), target)
    losers = {(i, j) for i in range(m // 16) for j in range(n // 16)} - set(tiles)
    for i, j in losers:
        assert int.from_bytes(result.tickets[i, j].tobytes(), "little") > result.threshold


def test_template_shape_must_match():
    rng = np.random.default_rng(1)
    prepared = prepare(int7(rng, 16, 256), int7(rng, 256, 16))
    with pytest.raises(ValueError, match="does not match"):
        get_backend("numpy").mine(prepared, template(32, 256, 16), 0)


def test_self_test_refuses_a_backend_that_disagrees():
    class Broken(NumpyBackend):
        name = "broken"

        def mine(self, *a, **kw):
            r = super().mine(*a, **kw)
            r.product[0, 0] += 1
            return r

    with pytest.raises(BackendError, match="product"):
        self_test(Broken())


def test_unknown_backend_name():
    with pytest.raises(BackendError, match="unknown backend"):
        get_backend("tpu")


def test_every_ticket_wins_at_saturated_threshold():
    rng = np.random.default_rng(2)
    prepared = prepare(int7(rng, 32, 256), int7(rng, 256, 32))
    result = get_backend("numpy").mine(prepared, template(32, 256, 32, EASY_TARGET), 0)
    assert len(result.winners) == 4
