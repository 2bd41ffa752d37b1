"""The CPU backend: vectorised NumPy, exact, bit-identical to ``pouw.reference``.

How it keeps the overhead over a plain float32 matmul small:
- Blocks: the output is cut into blocks of about 256 x 512; a worker owns a row
  panel of ``A'`` and walks its column blocks, and for each block the 128-wide
  chunks of the inner dimension. Blocks of that size keep BLAS near its
  square-matrix speed and the block's int32 accumulator in cache.
- Chunk products are float32 GEMMs, exact because ``127^2 * 128 < 2^24``; the
  running sum across chunks is int32.
- A block's transcript words, tickets and (on request) its slice of the exact
  product are finished while it is hot. Workers are threads (BLAS and NumPy
  release the GIL), one per core, each with single-threaded BLAS; the noise of
  a row panel is added by the worker that owns it.
- The rank-r peel is one GEMM of inner width 256 per block, in float32 only when
  a bound computed from the actual factors proves every partial sum is below
  2^24, else in float64 (exact below 2^53).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from pouw.constants import R, TILE
from pouw.header import HeaderPre
from pouw.noise import MiningNoise, noised_a, noised_b, sparse_dense
from pouw.seeds import compute_seeds
from pouw.transcript import compute_tickets, fold_words, win_threshold, winning_tiles

from .base import MineResult, Prepared, Winner, check_template

F32_EXACT = 1 << 24
BLOCK_ROWS = 256
BLOCK_COLS = 512


def _row_max(right: np.ndarray) -> np.ndarray:
    """``max_col |right[j, col]|`` per row, exact (int64)."""
    return np.abs(right.astype(np.int64)).max(axis=1)


def _exact_dtype(left: np.ndarray, right_row_max: np.ndarray) -> type:
    """float32 if every partial sum of ``left @ right`` is provably at most 2^24, else float64.

    Bound: ``max_i sum_j |left[i, j]| * max_col |right[j, col]|`` bounds every
    partial sum of every output entry in any summation order.
    """
    bound = int((np.abs(left.astype(np.int64)) @ right_row_max).max()) if left.size else 0
    return np.float32 if bound <= F32_EXACT else np.float64


def _spans(total: int, step: int) -> list[tuple[int, int]]:
    return [(s, min(s + step, total)) for s in range(0, total, step)]


class NumpyBackend:
    """Vectorised CPU mining backend."""

    name = "numpy"

    def __init__(self, workers: int | None = None, block_rows: int = BLOCK_ROWS, block_cols: int = BLOCK_COLS) -> None:
        self.workers = workers or max(1, os.cpu_count() or 1)
        if block_rows % TILE or block_cols % TILE:
            raise ValueError("block_rows and block_cols must be multiples of 16")
        self.block_rows = block_rows
        self.block_cols = block_cols
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pouw-numpy")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _row_step(self, m: int) -> int:
        # Enough row panels to keep every worker busy, but no larger than a block.
        per_worker = -(-m // (2 * self.workers))
        return max(TILE, min(self.block_rows, -(-per_worker // TILE) * TILE))

    def mine(
        self, prepared: Prepared, template: HeaderPre, nonce: int, *,
        want_product: bool = False, all_tickets: bool = False,
    ) -> MineResult:
        check_template(prepared, template)
        m, k, n = prepared.shape
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        pre = template.with_nonce(nonce)
        c = prepared.commitment
        seeds = compute_seeds(pre.encode(), c.root_a, c.root_b, m, n, k)
        nz = MiningNoise(seeds, m, n, k)
        b_n = noised_b(prepared.b, nz.ebr, nz.fb, nz.sb).astype(np.float32)
        right = right_max = None
        if want_product:
            # Y = E_AR . B' (|Y| <= 127k < 2^24: exact as a float32 GEMM with the +-1 matrix).
            y = np.matmul(sparse_dense(nz.fa, nz.sa).T.astype(np.float32), b_n)
            right = np.concatenate([nz.ebr.astype(np.float32), y], axis=0)
            right_max = _row_max(right)
        timings["noise"] = time.perf_counter() - t0

        tickets = np.empty((m // TILE, n // TILE, 32), np.uint8)
        product = np.empty((m, n), np.int32) if want_product else None
        col_spans = _spans(n, self.block_cols)
        e_bl = sparse_dense(nz.fb, nz.sb).astype(np.float32) if want_product else None

        def work(span: tuple[int, int]) -> dict[str, float]:
            return self._panel(span, col_spans, prepared.a, nz, b_n, k, seeds.pow_key, tickets, product, right, right_max, e_bl)

        t1 = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            parts = list(self._pool.map(work, _spans(m, self._row_step(m))))
        for p in parts:
            for key, v in p.items():
                timings[key] = timings.get(key, 0.0) + v
        timings["blocks_wall"] = time.perf_counter() - t1

        threshold = win_threshold(pre.target, k)
        winners = tuple(Winner(i, j, t) for i, j, t in winning_tiles(tickets, threshold))
        timings["total"] = time.perf_counter() - t0
        return MineResult(pre, seeds, threshold, winners, tickets if all_tickets else None, product, timings)

    @staticmethod
    def _panel(span, col_spans, a, nz, b_n, k, pow_key, tickets, product, right, right_max, e_bl) -> dict[str, float]:
        """Mine rows ``span`` against every column block of ``B'``; fill their tickets (and product)."""
        i0, i1 = span
        rows = i1 - i0
        s = time.perf_counter()
        a_rows = a[i0:i1]
        a_n = noised_a(a_rows, nz.eal[i0:i1], nz.fa, nz.sa).astype(np.float32)
        left = None
        if product is not None:
            # X = A . E_BL (|X| <= 64k <= 2^22: exact in float32); the peel is [X | E_AL] @ [E_BR ; Y].
            x = np.matmul(a_rows.astype(np.float32), e_bl)
            left = np.concatenate([x, nz.eal[i0:i1].astype(np.float32)], axis=1)
            dt = _exact_dtype(left, right_max)
            left = left.astype(dt, copy=False)
        times = {"noise_panels": time.perf_counter() - s, "gemm": 0.0, "transcript": 0.0, "tickets": 0.0, "peel": 0.0}
        nc = k // R
        for j0, j1 in col_spans:
            cols = j1 - j0
            acc = np.zeros((rows, cols), np.int32)
            part = np.empty((rows, cols), np.float32)
            colwords = np.empty((nc, rows // TILE, cols), np.uint32)
            for c in range(nc):
                t = time.perf_counter()
                np.matmul(a_n[:, c * R : (c + 1) * R], b_n[c * R : (c + 1) * R, j0:j1], out=part)
                e = time.perf_counter()
                # One pass: the float32 chunk is cast in cache-sized buffers as it is added.
                np.add(acc, part, out=acc, dtype=np.int32, casting="unsafe")
                np.bitwise_xor.reduce(acc.view(np.uint32).reshape(rows // TILE, TILE, cols), axis=1,
                                      out=colwords[c])
                times["gemm"] += e - t
                times["transcript"] += time.perf_counter() - e
            t = time.perf_counter()
            words = np.bitwise_xor.reduce(colwords.reshape(nc, rows // TILE, cols // TILE, TILE), axis=3)
            transcripts = fold_words(words.transpose(1, 2, 0))
            e = time.perf_counter()
            tickets[i0 // TILE : i1 // TILE, j0 // TILE : j1 // TILE] = compute_tickets(
                pow_key, transcripts, row0=i0 // TILE, col0=j0 // TILE)
            times["transcript"] += e - t
            times["tickets"] += time.perf_counter() - e
            if product is not None:
                t = time.perf_counter()
                corr = np.matmul(left, right[:, j0:j1].astype(left.dtype, copy=False))
                np.subtract(acc, corr, out=product[i0:i1, j0:j1], dtype=np.int32, casting="unsafe")
                times["peel"] += time.perf_counter() - t
        return times
