"""The CPU backend: vectorised NumPy, exact, bit-identical to ``pouw.reference``.

How it keeps the overhead over a plain float32 matmul small:
- Row panels: each worker owns a panel of rows of ``A'`` and walks the 128-wide
  chunks of the inner dimension; its int32 accumulator stays in cache.
- Chunk products are float32 GEMMs, exact because ``127^2 * 128 < 2^24``; the
  running sum across chunks is int32.
- The panel's transcript words, its tickets and (on request) its slice of the
  exact product are finished while the panel is hot. Workers are threads
  (BLAS and NumPy release the GIL), one per core, each with single-threaded BLAS.
- The rank-r peel is one float32 GEMM of inner width 256 per panel, used only
  when a bound computed from the actual factors proves every partial sum is
  below 2^24; otherwise float64 (exact below 2^53).
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


def _exact_dtype(left: np.ndarray, right: np.ndarray) -> type:
    """float32 if every partial sum of ``left @ right`` is provably below 2^24, else float64.

    Bound: ``max_i sum_j |left[i, j]| * max_col |right[j, col]|`` bounds every
    partial sum of every output entry in any summation order.
    """
    row_max = np.abs(right.astype(np.int64)).max(axis=1)
    bound = int((np.abs(left.astype(np.int64)) @ row_max).max()) if left.size else 0
    return np.float32 if bound <= F32_EXACT else np.float64


class NumpyBackend:
    """Vectorised CPU mining backend."""

    name = "numpy"

    def __init__(self, workers: int | None = None, panel_rows: int = 64) -> None:
        self.workers = workers or max(1, os.cpu_count() or 1)
        if panel_rows % TILE:
            raise ValueError("panel_rows must be a multiple of 16")
        self.panel_rows = panel_rows
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pouw-numpy")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

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
        a_n = noised_a(prepared.a, nz.eal, nz.fa, nz.sa).astype(np.float32)
        b_n8 = noised_b(prepared.b, nz.ebr, nz.fb, nz.sb)
        b_n = b_n8.astype(np.float32)
        timings["noise"] = time.perf_counter() - t0

        peel = None
        if want_product:
            t1 = time.perf_counter()
            # X = A . E_BL (|X| <= 64k <= 2^22) and Y = E_AR . B' (|Y| <= 127k < 2^23):
            # both exact as float32 GEMMs against the +-1 matrices.
            x = np.matmul(prepared.a.astype(np.float32), sparse_dense(nz.fb, nz.sb).astype(np.float32))
            y = np.matmul(sparse_dense(nz.fa, nz.sa).T.astype(np.float32), b_n)
            left = np.concatenate([x, nz.eal.astype(np.float32)], axis=1)
            right = np.concatenate([nz.ebr.astype(np.float32), y], axis=0)
            dt = _exact_dtype(left.astype(np.int64), right.astype(np.int64))
            peel = (left.astype(dt), np.ascontiguousarray(right.astype(dt)))
            timings["peel_setup"] = time.perf_counter() - t1

        tickets = np.empty((m // TILE, n // TILE, 32), np.uint8)
        product = np.empty((m, n), np.int32) if want_product else None
        rows = self.panel_rows if m % self.panel_rows == 0 else TILE
        panels = range(0, m, rows)

        def work(i0: int) -> dict[str, float]:
            return self._panel(i0, rows, a_n, b_n, k, n, seeds.pow_key, tickets, product, peel)

        t2 = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            parts = list(self._pool.map(work, panels))
        for p in parts:
            for key, v in p.items():
                timings[key] = timings.get(key, 0.0) + v
        timings["panels_wall"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        threshold = win_threshold(pre.target, k)
        winners = tuple(Winner(i, j, t) for i, j, t in winning_tiles(tickets, threshold))
        timings["winners"] = time.perf_counter() - t3
        timings["total"] = time.perf_counter() - t0
        return MineResult(pre, seeds, threshold, winners, tickets if all_tickets else None, product, timings)

    @staticmethod
    def _panel(i0, rows, a_n, b_n, k, n, pow_key, tickets, product, peel) -> dict[str, float]:
        """Mine rows ``i0 .. i0+rows`` against all of ``B'``; fills tickets (and product)."""
        tg = tt = 0.0
        ap = a_n[i0 : i0 + rows]
        acc = np.zeros((rows, n), np.int32)
        part = np.empty((rows, n), np.float32)
        part_i = np.empty((rows, n), np.int32)
        nc = k // R
        colwords = np.empty((nc, rows // TILE, n), np.uint32)
        for c in range(nc):
            s = time.perf_counter()
            np.matmul(ap[:, c * R : (c + 1) * R], b_n[c * R : (c + 1) * R], out=part)
            e = time.perf_counter()
            np.copyto(part_i, part, casting="unsafe")
            np.add(acc, part_i, out=acc)
            np.bitwise_xor.reduce(acc.view(np.uint32).reshape(rows // TILE, TILE, n), axis=1, out=colwords[c])
            tg += e - s
            tt += time.perf_counter() - e
        s = time.perf_counter()
        words = np.bitwise_xor.reduce(colwords.reshape(nc, rows // TILE, n // TILE, TILE), axis=3)
        transcripts = fold_words(words.transpose(1, 2, 0))
        tt += time.perf_counter() - s
        s = time.perf_counter()
        tickets[i0 // TILE : (i0 + rows) // TILE] = compute_tickets(pow_key, transcripts, row0=i0 // TILE)
        th = time.perf_counter() - s
        out = {"gemm": tg, "transcript": tt, "tickets": th}
        if product is not None:
            s = time.perf_counter()
            left, right = peel
            corr = np.matmul(left[i0 : i0 + rows], right)
            np.copyto(part_i, corr, casting="unsafe")
            np.subtract(acc, part_i, out=product[i0 : i0 + rows])
            out["peel"] = time.perf_counter() - s
        return out
