"""The CuPy backend: its CUDA source, its refusal without a GPU, and bit-equality with NumPy.

Three tiers:
- CPU, with ``nvcc``: the kernel source compiles for sm_90, and its keyed-BLAKE3 ticket
  code (``__host__ __device__``) agrees with the ``blake3`` package when built for the host.
- CPU, always: without CuPy or a device the backend refuses with ``BackendError`` and
  ``auto`` selection falls back to NumPy; the backend's Python side (noise, uploads, kernel
  arguments, ticket candidates, product recovery) runs against a NumPy stand-in for CuPy
  whose "kernels" are the spec's definitions, and must match the NumPy backend.
- GPU (``gpu`` marker, skipped without a usable device): the real kernels against NumPy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from blake3 import blake3

import kernels
from kernels import select
from kernels.base import BackendError, prepare
from kernels.numpy_backend import NumpyBackend
from pouw.constants import TILE, R
from pouw.transcript import compute_tickets, fold_words, xor_tiles
from tests.helpers import EASY_TARGET, int7, template

KERNEL = Path(kernels.__file__).with_name("pouw_gemm.cu")
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not on PATH")

HARD_TARGET = (1 << 256) // (8 * 256 * 256)
"""With k = 256 about one tile in eight wins: some win, most do not."""


@pytest.fixture(scope="module")
def numpy_backend():
    backend = NumpyBackend(workers=2)
    yield backend
    backend.close()


def _assert_same(got, want) -> None:
    assert got.seeds == want.seeds
    assert got.threshold == want.threshold
    assert got.winners == want.winners
    if want.tickets is not None:
        assert got.tickets is not None and got.tickets.dtype == np.uint8
        assert np.array_equal(got.tickets, want.tickets)
    if want.product is not None:
        assert got.product is not None and got.product.dtype == np.int32
        assert np.array_equal(got.product, want.product)


# -- CPU: the CUDA source ------------------------------------------------------------------


@needs_nvcc
def test_kernel_source_compiles_with_nvcc_for_sm90(tmp_path):
    out = tmp_path / "pouw_gemm.o"
    proc = subprocess.run(
        [NVCC, "-arch=sm_90", "-c", str(KERNEL), "-o", str(out)], capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.stat().st_size > 0


HARNESS = r"""
#include "KERNEL_PATH"
#include <cstdio>
// Reads key (8 words) then 18-word ticket messages; writes 8 digest words per message.
int main(int argc, char** argv) {
    std::FILE* f = std::fopen(argv[1], "rb");
    if (!f) return 2;
    pouw_u32 key[8];
    if (std::fread(key, 4, 8, f) != 8) return 3;
    pouw_u32 msg[18];
    while (std::fread(msg, 4, 18, f) == 18) {
        pouw_u32 d[8];
        pouw_ticket_words(key, msg, d);
        std::fwrite(d, 4, 8, stdout);
    }
    std::fclose(f);
    return 0;
}
"""


@needs_nvcc
def test_kernel_blake3_ticket_hash_matches_blake3_package(tmp_path):
    """The ticket hash the GPU runs, compiled for the host, against keyed BLAKE3 (72-byte messages)."""
    src = tmp_path / "harness.cu"
    src.write_text(HARNESS.replace("KERNEL_PATH", KERNEL.as_posix()))
    exe = tmp_path / "harness"
    proc = subprocess.run(
        [NVCC, "-arch=sm_90", "-o", str(exe), str(src)], capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rng = np.random.default_rng(11)
    key = rng.bytes(32)
    msgs = [rng.bytes(72) for _ in range(64)] + [bytes(72), b"\xff" * 72]
    data = tmp_path / "in.bin"
    data.write_bytes(key + b"".join(msgs))
    out = subprocess.run([str(exe), str(data)], capture_output=True, check=True, timeout=60).stdout
    assert len(out) == 32 * len(msgs)
    for i, msg in enumerate(msgs):
        assert out[32 * i : 32 * i + 32] == blake3(msg, key=key).digest(), f"message {i}"


def test_kernel_source_is_packaged_and_self_contained():
    """NVRTC has no system headers: the source must include nothing and export C names."""
    from kernels.cupy_backend import GEMM_KERNEL, TICKET_KERNEL, load_kernel_source

    src = load_kernel_source()
    assert src == KERNEL.read_text(encoding="utf-8")
    assert "#include" not in src
    for name in (GEMM_KERNEL, TICKET_KERNEL):
        assert re.search(r'extern "C" __global__ void __launch_bounds__\(\w+\)\s+' + name + r"\(", src), name


# -- CPU: refusal and fallback --------------------------------------------------------------


def test_constructor_without_cupy_raises_backend_error(monkeypatch):
    from kernels.cupy_backend import CupyBackend

    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    with pytest.raises(BackendError, match="CuPy is not importable"):
        CupyBackend()


def test_constructor_without_device_raises_backend_error(monkeypatch):
    from kernels.cupy_backend import CupyBackend

    fake = types.ModuleType("cupy")
    fake.is_available = lambda: False
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(BackendError, match="no usable CUDA device"):
        CupyBackend()


def test_selection_without_gpu_refuses_cupy_and_auto_gives_numpy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(select, "_cache", {})
    with pytest.raises(BackendError):
        kernels.get_backend("cupy")
    backend = kernels.get_backend("auto")
    assert backend.name == "numpy"
    assert "cupy" not in select.available_backends()


def test_without_gpu_here_the_real_cupy_backend_refuses():
    """On this machine as it is: either a usable GPU, or a clean BackendError (never another error)."""
    from tests.conftest import gpu_available

    if gpu_available():
        pytest.skip("a usable GPU is present; the gpu-marked tests cover this machine")
    from kernels.cupy_backend import CupyBackend

    with pytest.raises(BackendError):
        CupyBackend()


# -- CPU: the backend's Python side against a NumPy stand-in for CuPy ----------------------


def _spec_gemm(a, bt, c_out, t_out, rows, cols, k, flags):
    """What ``pouw_gemm_transcript`` computes, from the spec's definitions."""
    acc = np.zeros((rows, cols), np.int64)
    words = []
    for c in range(k // R):
        s = slice(c * R, (c + 1) * R)
        acc += a[:, s].astype(np.int64) @ bt[:, s].astype(np.int64).T
        words.append(xor_tiles(acc.astype(np.int32)))
    if flags & 1:
        c_out[...] = acc.astype(np.int32)
    if flags & 2:
        t_out[...] = fold_words(np.stack(words, axis=-1))


class _FakeKernel:
    def __init__(self, name, calls, corrupt=None):
        self.name, self.calls, self.corrupt = name, calls, corrupt

    def __call__(self, grid, block, args):
        self.calls.append(self.name)
        assert block == (256, 1, 1)
        if self.name == "pouw_gemm_transcript":
            a, bt, c_out, t_out, rows, cols, k, flags = args
            rows, cols, k, flags = int(rows), int(cols), int(k), int(flags)
            assert a.dtype == np.int8 and bt.dtype == np.int8 and a.flags.c_contiguous and bt.flags.c_contiguous
            assert a.shape == (rows, k) and bt.shape == (cols, k)
            assert grid[0] * 128 >= cols and grid[1] * 128 >= rows
            if flags & 1:
                assert c_out.shape == (rows, cols) and c_out.dtype == np.int32
            if flags & 2:
                assert t_out.shape == (rows // TILE, cols // TILE, 16) and t_out.dtype == np.uint32
            _spec_gemm(a, bt, c_out, t_out, rows, cols, k, flags)
        else:
            t_dev, key, out, ti, tj = args
            assert grid[0] * 256 >= int(ti) * int(tj)
            tickets = compute_tickets(key.astype("<u4").tobytes(), t_dev)
            out[...] = np.ascontiguousarray(tickets).view("<u4").reshape(out.shape)
        if self.corrupt == self.name:
            (args[2] if self.name == "pouw_tickets" else args[3]).reshape(-1)[0] ^= 1


def _fake_cupy(calls, cc="90", corrupt=None):
    """A module that answers the CuPy calls the backend makes, with NumPy arrays on the "device"."""

    class FakeCupy(types.ModuleType):
        def __getattr__(self, name):
            return getattr(np, name)

    class Device:
        def __init__(self, i=0):
            self.compute_capability = cc

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def synchronize(self):
            pass

    class RawModule:
        def __init__(self, code, options=()):
            assert "pouw_gemm_transcript" in code and "pouw_tickets" in code

        def get_function(self, name):
            return _FakeKernel(name, calls, corrupt)

    fake = FakeCupy("cupy")
    fake.is_available = lambda: True
    fake.cuda = types.SimpleNamespace(Device=Device)
    fake.RawModule = RawModule
    fake.asarray = lambda x: np.array(x, copy=True)
    fake.asnumpy = lambda x: np.array(x, copy=True)
    return fake


@pytest.fixture
def fake_gpu(monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(calls))
    return calls


@pytest.mark.parametrize("shape", [(64, 256, 48), (272, 384, 208)])
@pytest.mark.parametrize("target", [EASY_TARGET, HARD_TARGET], ids=["all-win", "hard"])
def test_orchestration_matches_numpy_with_spec_kernels(fake_gpu, numpy_backend, shape, target):
    from kernels.cupy_backend import CupyBackend

    m, k, n = shape
    rng = np.random.default_rng(m + k + n)
    prepared = prepare(int7(rng, m, k), int7(rng, k, n))
    backend = CupyBackend()
    assert backend.gpu_tickets
    for nonce in (0, 3):
        pre = template(m, k, n, target)
        want = numpy_backend.mine(prepared, pre, nonce, want_product=True, all_tickets=True)
        _assert_same(backend.mine(prepared, pre, nonce, want_product=True, all_tickets=True), want)
        lean = backend.mine(prepared, pre, nonce)
        assert lean.tickets is None and lean.product is None
        assert lean.winners == want.winners
        assert {"noise", "upload", "gemm_transcript", "tickets", "total"} <= lean.timings.keys()
    assert "pouw_tickets" in fake_gpu


def test_orchestration_host_ticket_path(fake_gpu, numpy_backend):
    from kernels.cupy_backend import CupyBackend

    m, k, n = 48, 256, 64
    rng = np.random.default_rng(2)
    prepared = prepare(int7(rng, m, k), int7(rng, k, n))
    backend = CupyBackend(gpu_tickets=False)
    fake_gpu.clear()
    pre = template(m, k, n, HARD_TARGET)
    got = backend.mine(prepared, pre, 1, want_product=True, all_tickets=True)
    _assert_same(got, numpy_backend.mine(prepared, pre, 1, want_product=True, all_tickets=True))
    assert "pouw_tickets" not in fake_gpu


def test_smoke_test_refuses_a_wrong_transcript(monkeypatch):
    from kernels.cupy_backend import CupyBackend

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy([], corrupt="pouw_gemm_transcript"))
    with pytest.raises(BackendError, match="transcripts differ"):
        CupyBackend()


def test_smoke_test_moves_wrong_gpu_tickets_to_the_host(monkeypatch, numpy_backend):
    from kernels.cupy_backend import CupyBackend

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy([], corrupt="pouw_tickets"))
    backend = CupyBackend()
    assert not backend.gpu_tickets
    m, k, n = 32, 256, 32
    rng = np.random.default_rng(3)
    prepared = prepare(int7(rng, m, k), int7(rng, k, n))
    got = backend.mine(prepared, template(m, k, n), 0, all_tickets=True)
    _assert_same(got, numpy_backend.mine(prepared, template(m, k, n), 0, all_tickets=True))


def test_old_device_is_refused(monkeypatch):
    from kernels.cupy_backend import CupyBackend

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy([], cc="70"))
    with pytest.raises(BackendError, match="compute capability 7.0"):
        CupyBackend()


# -- GPU: the real kernels --------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu_backend():
    from kernels.cupy_backend import CupyBackend

    backend = CupyBackend()
    yield backend
    backend.close()


GPU_SHAPES = [
    (64, 256, 48),      # one block, mostly outside the matrix
    (272, 384, 208),    # 17 x 13 tiles: neither a multiple of the block's 8 x 8 tiles
    (256, 1024, 128),
    (1024, 2048, 512),
]


@pytest.mark.gpu
@pytest.mark.parametrize("shape", GPU_SHAPES)
def test_gpu_matches_numpy_bit_for_bit(gpu_backend, numpy_backend, shape):
    m, k, n = shape
    rng = np.random.default_rng(m * 7 + k * 3 + n)
    prepared = prepare(int7(rng, m, k), int7(rng, k, n))
    for nonce in (0, 1):
        pre = template(m, k, n)
        got = gpu_backend.mine(prepared, pre, nonce, want_product=True, all_tickets=True)
        want = numpy_backend.mine(prepared, pre, nonce, want_product=True, all_tickets=True)
        _assert_same(got, want)
        exact = prepared.a.astype(np.float64) @ prepared.b.astype(np.float64)  # exact: |sums| < 2^53
        assert np.array_equal(got.product, exact.astype(np.int32))


@pytest.mark.gpu
@pytest.mark.parametrize("gpu_tickets", [True, False])
def test_gpu_winners_with_a_hard_target(gpu_backend, numpy_backend, gpu_tickets, monkeypatch):
    monkeypatch.setattr(gpu_backend, "gpu_tickets", gpu_tickets)
    m, k, n = 272, 256, 208
    rng = np.random.default_rng(9)
    prepared = prepare(int7(rng, m, k), int7(rng, k, n))
    for nonce in range(3):
        pre = template(m, k, n, HARD_TARGET)
        got = gpu_backend.mine(prepared, pre, nonce)
        want = numpy_backend.mine(prepared, pre, nonce, all_tickets=True)
        assert got.winners == want.winners
        assert 0 < len(want.winners) < (m // TILE) * (n // TILE)


@pytest.mark.gpu
def test_gpu_extreme_values_and_longest_inner_dimension(gpu_backend, numpy_backend):
    """|C'| near 127^2 * 65536: int32 accumulation must stay exact through 512 chunks."""
    m, k, n = 32, 65536, 32
    a = np.full((m, k), -64, np.int8)
    b = np.full((k, n), 63, np.int8)
    b[:, ::2] = -64
    prepared = prepare(a, b)
    got = gpu_backend.mine(prepared, template(m, k, n), 0, want_product=True, all_tickets=True)
    _assert_same(got, numpy_backend.mine(prepared, template(m, k, n), 0, want_product=True, all_tickets=True))


@pytest.mark.gpu
def test_gpu_backend_is_selected_and_passes_the_self_test():
    backend = kernels.get_backend("cupy")
    assert backend.name == "cupy"
    assert kernels.get_backend("auto").name == "cupy"
