"""The GPU backend: CuPy with one fused CUDA kernel, bit-identical to ``pouw.reference``.

What runs where:
- CPU (``pouw``): seeds, noise factors and the noised int8 matrices ``A'`` (m x k) and
  ``B'^T`` (n x k); they are cheap next to the product and keep one implementation of
  section 5.
- GPU, ``kernels/pouw_gemm.cu``: ``pouw_gemm_transcript`` multiplies ``A'`` by ``B'`` on
  int8 tensor cores with exact int32 accumulators and folds every 16x16 tile's running
  sum into its 16-word transcript after each 128-wide chunk, in registers; it writes the
  transcripts (and ``C'`` when the product is wanted). ``pouw_tickets`` hashes each tile's
  72-byte message with keyed BLAKE3. Only winning candidates (or every ticket, on
  request) come back to the host.
- Product: ``C = C' - [A.E_BL | E_AL] . [E_BR ; E_AR.B']``. The two scatters are exact
  int8 x (+-1) products on the same kernel; the rank-256 peel is a float64 cuBLAS GEMM
  (exact below 2^53), or float32 when a bound from the actual factors proves every
  partial sum is below 2^24 and TF32 is not enabled (``CUPY_TF32``).

``import cupy`` happens in the constructor, never at import time: this module imports
on machines without CuPy, and the constructor raises ``BackendError`` when CuPy, a
device or the kernel is unusable, so ``get_backend("auto")`` falls back to NumPy.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from importlib import resources

import numpy as np

from pouw.constants import MAX_U256, TILE, TRANSCRIPT_WORDS, R
from pouw.header import HeaderPre
from pouw.noise import MiningNoise, noised_a, noised_b, sparse_dense
from pouw.transcript import compute_tickets, fold_words, is_winning, win_threshold, winning_tiles

from .base import BackendError, MineResult, Prepared, Winner, check_template

log = logging.getLogger(__name__)

KERNEL_SOURCE = "pouw_gemm.cu"
GEMM_KERNEL = "pouw_gemm_transcript"
TICKET_KERNEL = "pouw_tickets"
BLOCK_M = 128
BLOCK_N = 128
GEMM_THREADS = 256
TICKET_THREADS = 256
FLAG_WRITE_C = 1
FLAG_WRITE_T = 2
MIN_COMPUTE_CAPABILITY = 75
"""int8 ``mma.sync`` needs sm_75 (m8n8k16); sm_80 and newer use m16n8k32."""
F32_EXACT = 1 << 24


def load_kernel_source() -> str:
    """The CUDA source shipped next to this module (package data ``kernels/*.cu``)."""
    return resources.files(__package__).joinpath(KERNEL_SOURCE).read_text(encoding="utf-8")


def _import_cupy():
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA install failing at import
        raise BackendError(f"CuPy is not importable ({type(e).__name__}: {e}); install pouw-node[gpu]") from e
    return cupy


def _tf32_enabled() -> bool:
    """True when the user asked CuPy for TF32 GEMMs, which would round float32 products."""
    return os.environ.get("CUPY_TF32", "0").strip() not in ("", "0")


class CupyBackend:
    """CUDA mining backend (int8 tensor cores, fused transcript, GPU tickets)."""

    name = "cupy"

    def __init__(self, device: int = 0, *, gpu_tickets: bool = True) -> None:
        cp = _import_cupy()
        try:
            usable = bool(cp.is_available())
        except Exception as e:
            raise BackendError(f"CuPy could not query CUDA devices: {e}") from e
        if not usable:
            raise BackendError("CuPy is installed but found no usable CUDA device (cupy.is_available() is False)")
        try:
            self._device = cp.cuda.Device(device)
            cc = int(self._device.compute_capability)
        except Exception as e:
            raise BackendError(f"CUDA device {device} is not usable: {e}") from e
        if cc < MIN_COMPUTE_CAPABILITY:
            need = MIN_COMPUTE_CAPABILITY
            raise BackendError(
                f"CUDA device {device} has compute capability {cc // 10}.{cc % 10}; "
                f"the int8 tensor-core kernel needs {need // 10}.{need % 10} or newer"
            )
        self._cp = cp
        self.device_id = device
        self.compute_capability = cc
        self.gpu_tickets = gpu_tickets
        self._lock = threading.Lock()
        self._a_cache: tuple[Prepared, object] | None = None
        try:
            with self._device:
                module = cp.RawModule(code=load_kernel_source())
                self._gemm = module.get_function(GEMM_KERNEL)
                self._tickets = module.get_function(TICKET_KERNEL)
                self._smoke_test()
        except BackendError:
            raise
        except Exception as e:
            raise BackendError(f"the CUDA kernels failed to build or run on device {device}: {e}") from e

    def close(self) -> None:
        """Drop cached device buffers."""
        with self._lock:
            self._a_cache = None

    # -- kernels ---------------------------------------------------------------------

    def _sync(self) -> None:
        self._device.synchronize()

    def _run_gemm(self, a, bt, c_out=None, t_out=None) -> None:
        """``c_out = a @ bt.T`` (int32) and/or the transcripts ``t_out`` of ``a`` (rows x k) and ``bt`` (cols x k)."""
        cp = self._cp
        rows, k = a.shape
        cols = bt.shape[0]
        if bt.shape[1] != k or rows % TILE or cols % TILE or k % R or k == 0:
            raise ValueError(f"bad kernel shapes {a.shape} x {bt.shape}")
        flags = (FLAG_WRITE_C if c_out is not None else 0) | (FLAG_WRITE_T if t_out is not None else 0)
        dummy_c = c_out if c_out is not None else cp.empty(1, cp.int32)
        dummy_t = t_out if t_out is not None else cp.empty(1, cp.uint32)
        grid = (-(-cols // BLOCK_N), -(-rows // BLOCK_M), 1)
        self._gemm(
            grid, (GEMM_THREADS, 1, 1),
            (a, bt, dummy_c, dummy_t, np.int32(rows), np.int32(cols), np.int32(k), np.int32(flags)),
        )

    def _run_tickets(self, t_dev, pow_key: bytes):
        """Keyed BLAKE3 of every tile on the device: ``(tiles, 8)`` uint32 digest words."""
        cp = self._cp
        ti, tj, _ = t_dev.shape
        total = ti * tj
        key = cp.asarray(np.frombuffer(pow_key, dtype="<u4").astype(np.uint32))
        out = cp.empty((total, 8), cp.uint32)
        grid = (-(-total // TICKET_THREADS), 1, 1)
        self._tickets(grid, (TICKET_THREADS, 1, 1), (t_dev, key, out, np.int32(ti), np.int32(tj)))
        return out

    def _smoke_test(self) -> None:
        """Run both kernels once on a small problem and compare with the ``pouw`` definitions."""
        cp = self._cp
        rng = np.random.default_rng(20250401)
        m, k, n = 48, 384, 32
        a = rng.integers(-127, 127, (m, k), dtype=np.int8)
        bt = rng.integers(-127, 127, (n, k), dtype=np.int8)
        c_dev = cp.empty((m, n), cp.int32)
        t_dev = cp.empty((m // TILE, n // TILE, TRANSCRIPT_WORDS), cp.uint32)
        self._run_gemm(cp.asarray(a), cp.asarray(bt), c_dev, t_dev)
        a64, b64 = a.astype(np.int64), bt.T.astype(np.int64)
        acc = np.zeros((m, n), np.int64)
        words = []
        for c in range(k // R):
            acc += a64[:, c * R : (c + 1) * R] @ b64[c * R : (c + 1) * R]
            v = acc.astype(np.int32).view(np.uint32).reshape(m // TILE, TILE, n // TILE, TILE)
            words.append(np.bitwise_xor.reduce(np.bitwise_xor.reduce(v, axis=3), axis=1))
        want_t = fold_words(np.stack(words, axis=-1))
        if not np.array_equal(cp.asnumpy(c_dev), acc.astype(np.int32)):
            raise BackendError("CUDA smoke test: the kernel's product C' differs from the exact int product")
        got_t = cp.asnumpy(t_dev)
        if not np.array_equal(got_t, want_t):
            raise BackendError("CUDA smoke test: the kernel's tile transcripts differ from docs/protocol.md section 6")
        if self.gpu_tickets:
            key = bytes(range(32))
            got = np.ascontiguousarray(cp.asnumpy(self._run_tickets(t_dev, key)), dtype="<u4").view(np.uint8)
            if not np.array_equal(got.reshape(m // TILE, n // TILE, 32), compute_tickets(key, want_t)):
                # The host path is exact and only slower; keep the backend, hash on the CPU.
                log.warning("GPU BLAKE3 tickets disagree with the blake3 package; hashing tickets on the CPU")
                self.gpu_tickets = False

    def _device_a(self, prepared: Prepared):
        """``A`` on the device, uploaded once per prepared pair (mining reuses it across nonces)."""
        with self._lock:
            if self._a_cache is not None and self._a_cache[0] is prepared:
                return self._a_cache[1]
        a_dev = self._cp.asarray(prepared.a)
        with self._lock:
            self._a_cache = (prepared, a_dev)
        return a_dev

    # -- mining ----------------------------------------------------------------------

    def mine(
        self, prepared: Prepared, template: HeaderPre, nonce: int, *,
        want_product: bool = False, all_tickets: bool = False,
    ) -> MineResult:
        check_template(prepared, template)
        cp = self._cp
        m, k, n = prepared.shape
        ti, tj = m // TILE, n // TILE
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        pre = template.with_nonce(nonce)
        nz = MiningNoise.derive(pre.encode(), prepared.commitment.root_a, prepared.commitment.root_b, m, n, k)
        seeds = nz.seeds
        a_n = noised_a(prepared.a, nz.eal, nz.fa, nz.sa)
        bt_n = np.ascontiguousarray(noised_b(prepared.b, nz.ebr, nz.fb, nz.sb).T)
        threshold = win_threshold(pre.target, k)
        timings["noise"] = time.perf_counter() - t0

        with self._device:
            s = time.perf_counter()
            a_dev = cp.asarray(a_n)
            bt_dev = cp.asarray(bt_n)
            self._sync()
            timings["upload"] = time.perf_counter() - s

            s = time.perf_counter()
            c_dev = cp.empty((m, n), cp.int32) if want_product else None
            t_dev = cp.empty((ti, tj, TRANSCRIPT_WORDS), cp.uint32)
            self._run_gemm(a_dev, bt_dev, c_dev, t_dev)
            self._sync()
            timings["gemm_transcript"] = time.perf_counter() - s

            s = time.perf_counter()
            tickets, winners = self._tickets_and_winners(t_dev, seeds.pow_key, threshold, ti, tj, all_tickets)
            timings["tickets"] = time.perf_counter() - s

            product = None
            if want_product:
                s = time.perf_counter()
                product = self._recover_product(prepared, nz, c_dev, bt_dev)
                timings["peel"] = time.perf_counter() - s
        timings["total"] = time.perf_counter() - t0
        return MineResult(pre, seeds, threshold, winners, tickets, product, timings)

    def _tickets_and_winners(self, t_dev, pow_key: bytes, threshold: int, ti: int, tj: int, all_tickets: bool):
        """``(tickets or None, winners)``; winners in row-major order, exactly as ``winning_tiles``."""
        cp = self._cp
        if not self.gpu_tickets:
            tickets = compute_tickets(pow_key, cp.asnumpy(t_dev))
            return (tickets if all_tickets else None), _winners(winning_tiles(tickets, threshold))
        words = self._run_tickets(t_dev, pow_key)
        if all_tickets or threshold >= MAX_U256:
            host = np.ascontiguousarray(cp.asnumpy(words), dtype="<u4").view(np.uint8).reshape(ti, tj, 32)
            return (host if all_tickets else None), _winners(winning_tiles(host, threshold))
        # Only tiles whose top 64 bits are at most the threshold's can win: fetch those.
        top = (words[:, 7].astype(cp.uint64) << cp.uint64(32)) | words[:, 6].astype(cp.uint64)
        cand = cp.nonzero(top <= cp.uint64(threshold >> 192))[0]
        idx = cp.asnumpy(cand)
        found = []
        if idx.size:
            rows = np.ascontiguousarray(cp.asnumpy(words[cand]), dtype="<u4").view(np.uint8)
            for flat, row in zip(idx.tolist(), rows, strict=True):
                ticket = row.tobytes()
                if is_winning(ticket, threshold):
                    found.append((flat // tj, flat % tj, ticket))
        found.sort()
        return None, _winners(found)

    def _recover_product(self, prepared: Prepared, nz: MiningNoise, c_dev, bt_dev) -> np.ndarray:
        """``C = C' - [A.E_BL | E_AL] . [E_BR ; E_AR.B']`` on the device, exact, as NumPy int32."""
        cp = self._cp
        m, k, n = prepared.shape
        # Scatters as exact int8 GEMMs on the same kernel: X = A . E_BL (m x r) and
        # Y^T = B'^T . E_AR^T (n x r); |X| <= 64k, |Y| <= 127k, both far inside int32.
        ebl_t = cp.asarray(np.ascontiguousarray(sparse_dense(nz.fb, nz.sb).T))  # r x k
        ear = cp.asarray(np.ascontiguousarray(sparse_dense(nz.fa, nz.sa).T))    # r x k
        x = cp.empty((m, R), cp.int32)
        y_t = cp.empty((n, R), cp.int32)
        self._run_gemm(self._device_a(prepared), ebl_t, x, None)
        self._run_gemm(bt_dev, ear, y_t, None)
        left = cp.concatenate([x, cp.asarray(nz.eal).astype(cp.int32)], axis=1)       # m x 2r
        right = cp.concatenate([cp.asarray(nz.ebr).astype(cp.int32), y_t.T], axis=0)  # 2r x n
        dt = self._peel_dtype(left, right)
        corr = cp.matmul(left.astype(dt), right.astype(dt))
        # |corr| = |C' - C| can exceed 2^31, so subtract in int64 and narrow at the end
        # (C = A @ B itself is at most 64^2 * k < 2^31).
        product = (c_dev.astype(cp.int64) - corr.astype(cp.int64)).astype(cp.int32)
        return cp.asnumpy(product)

    def _peel_dtype(self, left, right):
        """float32 if every partial sum of ``left @ right`` is provably below 2^24 (and TF32 is off), else float64."""
        cp = self._cp
        if _tf32_enabled():
            return cp.float64
        row_max = cp.abs(right.astype(cp.int64)).max(axis=1)
        bound = int(cp.asnumpy((cp.abs(left.astype(cp.int64)) * row_max[None, :]).sum(axis=1).max()))
        return cp.float32 if bound <= F32_EXACT else cp.float64


def _winners(found) -> tuple[Winner, ...]:
    return tuple(Winner(int(i), int(j), t) for i, j, t in found)
