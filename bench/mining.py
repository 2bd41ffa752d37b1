"""Mining overhead and verification cost.

For each square shape: the plain matmul time, the time of one whole PoUW job
(commitments, noise, every chunk GEMM and transcript word, every ticket, the
peel back to the exact product), their ratio (the median of several runs), and
a breakdown. Then the verification time per certificate for k = 1024, 4096 and
8192 on one core, and the certificate size.

Plain baselines: ``numpy.matmul`` in float32 on the CPU; on a GPU, cuBLAS
``gemmEx`` int8 -> int32 (through CuPy's cuBLAS bindings) and float16
``cupy.matmul``.

    .venv/bin/python bench/mining.py                 # human-readable
    .venv/bin/python bench/mining.py --json --sizes 512,1024,2048
    .venv/bin/python bench/mining.py --backend cupy --sizes 4096,8192
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels import get_backend, prepare
from pouw.header import HeaderPre
from pouw.verify import verify


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def plain_cpu(a: np.ndarray, b: np.ndarray, repeat: int) -> dict[str, float]:
    af, bf = a.astype(np.float32), b.astype(np.float32)
    np.matmul(af, bf)  # warm-up
    return {"plain_s": median_time(lambda: np.matmul(af, bf), repeat)}


def plain_gpu(m: int, k: int, n: int, repeat: int) -> dict[str, float]:
    """Best plain GEMMs CuPy reaches: cuBLAS gemmEx int8->int32, and float16 cupy.matmul."""
    import cupy as cp
    from cupy_backends.cuda.libs import cublas

    a = cp.asarray(np.random.default_rng(0).integers(-64, 64, (m, k), dtype=np.int8))
    b = cp.asarray(np.random.default_rng(1).integers(-64, 64, (k, n), dtype=np.int8))
    c = cp.empty((m, n), cp.int32)
    handle = cp.cuda.device.get_cublas_handle()
    alpha = np.array(1, np.int32)
    beta = np.array(0, np.int32)
    cuda_r_8i, cuda_r_32i, compute_32i, gemm_default = 3, 10, 72, -1

    def int8_gemm():
        # Row-major C = A @ B is column-major C^T = B^T @ A^T.
        cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
        cublas.gemmEx(handle, 0, 0, n, m, k, alpha.ctypes.data, b.data.ptr, cuda_r_8i, n,
                      a.data.ptr, cuda_r_8i, k, beta.ctypes.data, c.data.ptr, cuda_r_32i, n,
                      compute_32i, gemm_default)

    def timed(fn):
        fn()
        cp.cuda.Device().synchronize()

        def run():
            fn()
            cp.cuda.Device().synchronize()

        return median_time(run, repeat)

    out = {"plain_int8_s": timed(int8_gemm)}
    assert cp.array_equal(c, cp.matmul(a.astype(cp.float32), b.astype(cp.float32)).astype(cp.int32))
    ah, bh = a.astype(cp.float16), b.astype(cp.float16)
    out["plain_fp16_s"] = timed(lambda: cp.matmul(ah, bh))
    out["plain_s"] = min(out["plain_int8_s"], out["plain_fp16_s"])
    return out


def bench_mine(backend, size: int, repeat: int) -> dict:
    m = k = n = size
    rng = np.random.default_rng(size)
    a = rng.integers(-64, 64, (m, k), dtype=np.int8)
    b = rng.integers(-64, 64, (k, n), dtype=np.int8)
    pre = HeaderPre(1, 1, bytes(32), bytes(32), 1_700_000_000, 1, 0, m, n, k)
    plain = plain_gpu(m, k, n, repeat) if backend.name == "cupy" else plain_cpu(a, b, repeat)

    runs, breakdowns = [], []
    for _ in range(3):  # warm-up: threads, kernels, and the allocator's reuse of freed buffers
        backend.mine(prepare(a, b), pre, 0, want_product=True)
    for nonce in range(repeat):
        t = time.perf_counter()
        prepared = prepare(a, b)
        t_commit = time.perf_counter() - t
        result = backend.mine(prepared, pre, nonce, want_product=True)
        runs.append(time.perf_counter() - t)
        breakdowns.append({"commitments": t_commit, **result.timings})
    i = runs.index(sorted(runs)[len(runs) // 2])
    mine_s = statistics.median(runs)
    return {"kind": "mine", "backend": backend.name, "m": m, "k": k, "n": n, **plain,
            "mine_s": mine_s, "overhead": mine_s / plain["plain_s"],
            "breakdown": {key: round(v, 5) for key, v in breakdowns[i].items()}}


def bench_verify(k: int, repeat: int) -> dict:
    m = n = 16 * 64  # big enough for real Merkle paths
    rng = np.random.default_rng(k)
    prepared = prepare(rng.integers(-64, 64, (m, k), dtype=np.int8), rng.integers(-64, 64, (k, n), dtype=np.int8))

    # Any tile wins at the saturated target; build the certificate of tile (5, 9)
    # without mining the whole matrix.
    pre = HeaderPre(1, 1, bytes(32), bytes(32), 1_700_000_000, 1 << 250, 0, m, n, k)
    from pouw.certificate import make_certificate
    from pouw.header import Header

    c = prepared.commitment
    header = Header(pre, c.root_a, c.root_b, 5, 9).encode()
    cert = make_certificate(prepared.a, prepared.b, c, 5, 9).encode()
    with threadpool_limits(limits=1):
        verify(header, cert, pre.target)
        t = median_time(lambda: verify(header, cert, pre.target), repeat)
    return {"kind": "verify", "k": k, "verify_ms": t * 1000, "cert_bytes": len(cert)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512,1024,2048", help="comma-separated square sizes m = k = n")
    ap.add_argument("--backend", default="auto", choices=("auto", "numpy", "cupy"))
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure (the median is reported)")
    ap.add_argument("--verify-k", default="1024,4096,8192")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    args = ap.parse_args(argv)
    backend = get_backend(args.backend)
    lines = [bench_mine(backend, int(s), args.repeat) for s in args.sizes.split(",") if s]
    lines += [bench_verify(int(k), max(args.repeat, 20)) for k in args.verify_k.split(",") if k]
    for line in lines:
        if args.json:
            print(json.dumps(line), flush=True)
        elif line["kind"] == "mine":
            bd = "  ".join(f"{k}={v * 1000:.1f}ms" for k, v in line["breakdown"].items())
            print(f"mine {line['backend']} {line['m']}x{line['k']}x{line['n']}: plain {line['plain_s'] * 1000:.1f} ms, "
                  f"pouw {line['mine_s'] * 1000:.1f} ms, overhead {line['overhead']:.2f}x\n    {bd}")
        else:
            print(f"verify k={line['k']}: {line['verify_ms']:.2f} ms per certificate (one core), "
                  f"certificate {line['cert_bytes']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
