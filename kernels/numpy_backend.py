"""The CPU backend: vectorised NumPy, exact, bit-identical to ``pouw.reference``.

How it keeps the overhead over a plain float32 matmul small:
- Three parallel phases on a pool of threads (BLAS and NumPy release the GIL),
  one per core, each with single-threaded BLAS: ``B'`` (and ``Y = E_AR . B'``)
  by column spans; then row panels of ``A'``; then the tickets.
- Blocks: the output is cut into blocks of about 256 x 1024; a worker owns a
  row panel of ``A'`` and walks its column blocks, and for each block the
  128-wide chunks of the inner dimension. Blocks of that size keep BLAS near
  its square-matrix speed and cost few Python-level calls.
- Chunk products are float32 GEMMs, exact because ``127^2 * 128 < 2^24``; the
  running sum across chunks is int32, added in place.
- A block's transcript words and (on request) its slice of the exact product
  are finished while it is hot. Tickets are hashed at the end with BLAKE3
  vectorised across tiles (``kernels.tickets``), not one Python call per tile.
- Buffers are reused from one block and one nonce to the next (fresh
  multi-megabyte arrays cost a page fault per 4 KiB).
- The rank-r peel is one GEMM of inner width 256 per block, in float32 only when
  a bound computed from the actual factors proves every partial sum is below
  2^24, else in float64 (exact below 2^53).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from pouw.constants import TILE, TRANSCRIPT_WORDS, R
from pouw.header import HeaderPre
from pouw.noise import MiningNoise, noised_a, noised_b, sparse_dense
from pouw.transcript import fold_words, win_threshold, winning_tiles

from .base import MineResult, Prepared, Winner, check_template
from .tickets import grid_tickets

F32_EXACT = 1 << 24
BLOCK_ROWS = 256
BLOCK_COLS = 1024
MIN_TICKET_LANES = 8192


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


class _Scratch(threading.local):
    """Buffers a thread reuses from one block (and one nonce) to the next.

    Fresh multi-megabyte arrays cost a page fault per 4 KiB on first touch: a
    noticeable share of a 2048^3 job. Buffers only grow.
    """

    def __init__(self) -> None:
        self.bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        size = int(np.prod(shape))
        buf = self.bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self.bufs[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)


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
        self._scratch = _Scratch()
        # One mine() at a time uses the shared B' buffer; a concurrent call allocates its own.
        self._shared_lock = threading.Lock()
        self._shared = _Scratch()

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
        shared = self._shared_lock.acquire(blocking=False)
        try:
            return self._mine(prepared, template, nonce, want_product, all_tickets,
                              self._shared if shared else _Scratch())
        finally:
            if shared:
                self._shared_lock.release()

    def _mine(self, prepared: Prepared, template: HeaderPre, nonce: int, want_product: bool, all_tickets: bool,
              shared: _Scratch) -> MineResult:
        m, k, n = prepared.shape
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        pre = template.with_nonce(nonce)
        nz = MiningNoise.derive(pre.encode(), prepared.commitment.root_a, prepared.commitment.root_b, m, n, k)
        seeds = nz.seeds
        timings["noise"] = time.perf_counter() - t0

        b_n = shared.get("b_n", (k, n), np.float32)
        transcripts = shared.get("transcripts", (m // TILE, n // TILE, TRANSCRIPT_WORDS), np.uint32)
        right = e_ar_t = e_bl = None
        if want_product:
            # right = [E_BR ; Y] with Y = E_AR . B' (|Y| <= 127k < 2^24: exact as a float32 GEMM).
            right = shared.get("right", (2 * R, n), np.float32)
            right[:R] = nz.ebr
            e_ar_t = np.ascontiguousarray(sparse_dense(nz.fa, nz.sa).T, dtype=np.float32)
            e_bl = sparse_dense(nz.fb, nz.sb).astype(np.float32)
        product = np.empty((m, n), np.int32) if want_product else None

        def noise_columns(span: tuple[int, int]) -> dict[str, float]:
            s = time.perf_counter()
            j0, j1 = span
            b_n[:, j0:j1] = noised_b(prepared.b[:, j0:j1], nz.ebr[:, j0:j1], nz.fb, nz.sb)
            if right is not None and e_ar_t is not None:  # i.e. want_product
                np.matmul(e_ar_t, b_n[:, j0:j1], out=right[R:, j0:j1])
            return {"noise_panels": time.perf_counter() - s}

        t1 = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            parts = list(self._pool.map(noise_columns, _spans(n, -(-n // (TILE * self.workers)) * TILE)))
            right_max = _row_max(right) if right is not None else None
            col_spans = _spans(n, self.block_cols)

            def work(span: tuple[int, int]) -> dict[str, float]:
                return self._panel(span, col_spans, prepared.a, nz, b_n, k, transcripts, product, right, right_max,
                                   e_bl)

            parts += self._pool.map(work, _spans(m, self._row_step(m)))
            tickets = np.empty((m // TILE, n // TILE, 32), np.uint8)

            def hash_rows(span: tuple[int, int]) -> dict[str, float]:
                s = time.perf_counter()
                tickets[span[0] : span[1]] = grid_tickets(seeds.pow_key, transcripts[span[0] : span[1]], row0=span[0])
                return {"tickets": time.perf_counter() - s}

            # Each hashing step is one NumPy call over every lane of a batch: below a few thousand
            # lanes per thread the calls' fixed cost and the GIL hand-offs outweigh a second thread.
            rows_per_batch = max(-(-m // (TILE * self.workers)), -(-MIN_TICKET_LANES // (n // TILE)))
            parts += self._pool.map(hash_rows, _spans(m // TILE, rows_per_batch))
        for p in parts:
            for key, v in p.items():
                timings[key] = timings.get(key, 0.0) + v
        timings["blocks_wall"] = time.perf_counter() - t1

        threshold = win_threshold(pre.target, k)
        winners = tuple(Winner(i, j, t) for i, j, t in winning_tiles(tickets, threshold))
        timings["total"] = time.perf_counter() - t0
        return MineResult(pre, seeds, threshold, winners, tickets if all_tickets else None, product, timings)

    def _panel(self, span, col_spans, a, nz, b_n, k, transcripts, product, right, right_max, e_bl) -> dict[str, float]:
        """Mine rows ``span`` against every column block of ``B'``; fill their transcripts (and product)."""
        i0, i1 = span
        rows = i1 - i0
        nc = k // R
        width = max(j1 - j0 for j0, j1 in col_spans)
        scratch = self._scratch
        s = time.perf_counter()
        a_rows = a[i0:i1]
        a_n = scratch.get("a_n", (rows, k), np.float32)
        a_n[...] = noised_a(a_rows, nz.eal[i0:i1], nz.fa, nz.sa)
        left = None
        if product is not None:
            # X = A . E_BL (|X| <= 64k <= 2^22: exact in float32); the peel is [X | E_AL] @ [E_BR ; Y].
            left = scratch.get("left", (rows, 2 * R), np.float32)
            np.matmul(a_rows.astype(np.float32), e_bl, out=left[:, :R])
            left[:, R:] = nz.eal[i0:i1]
            dt = _exact_dtype(left, right_max)
            left = left.astype(dt, copy=False)
        times = {"noise_panels": time.perf_counter() - s, "gemm": 0.0, "transcript": 0.0, "peel": 0.0}
        acc_buf = scratch.get("acc", (rows * width,), np.int32)
        part_buf = scratch.get("part", (rows * width,), np.float32)
        words_buf = scratch.get("words", (nc * (rows // TILE) * width,), np.uint32)
        for j0, j1 in col_spans:
            cols = j1 - j0
            acc = acc_buf[: rows * cols].reshape(rows, cols)
            part = part_buf[: rows * cols].reshape(rows, cols)
            colwords = words_buf[: nc * (rows // TILE) * cols].reshape(nc, rows // TILE, cols)
            for c in range(nc):
                t = time.perf_counter()
                np.matmul(a_n[:, c * R : (c + 1) * R], b_n[c * R : (c + 1) * R, j0:j1], out=part)
                e = time.perf_counter()
                # One pass: the float32 chunk is cast in cache-sized buffers as it is added.
                if c == 0:
                    np.copyto(acc, part, casting="unsafe")
                else:
                    np.add(acc, part, out=acc, dtype=np.int32, casting="unsafe")
                np.bitwise_xor.reduce(acc.view(np.uint32).reshape(rows // TILE, TILE, cols), axis=1,
                                      out=colwords[c])
                times["gemm"] += e - t
                times["transcript"] += time.perf_counter() - e
            t = time.perf_counter()
            words = np.bitwise_xor.reduce(colwords.reshape(nc, rows // TILE, cols // TILE, TILE), axis=3)
            transcripts[i0 // TILE : i1 // TILE, j0 // TILE : j1 // TILE] = fold_words(words.transpose(1, 2, 0))
            times["transcript"] += time.perf_counter() - t
            if left is not None:  # i.e. product is not None
                t = time.perf_counter()
                out = part if left.dtype == np.float32 else None
                corr = np.matmul(left, right[:, j0:j1].astype(left.dtype, copy=False), out=out)
                np.subtract(acc, corr, out=product[i0:i1, j0:j1], dtype=np.int32, casting="unsafe")
                times["peel"] += time.perf_counter() - t
        return times
