"""``--devices``: which compute devices to mine on, as self-tested ``kernels`` backends.

``cpu`` is the NumPy backend (all cores); a number is that CUDA device through
the CuPy backend (one worker each); ``all`` is every CUDA device, or the CPU
where none is usable. Every backend passes ``kernels.select.self_test`` (bit
for bit against the reference) before it mines.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernels.base import Backend, BackendError
from kernels.select import get_backend, self_test

MAX_DEVICES = 64


@dataclass(frozen=True)
class Device:
    name: str
    """``cpu`` or ``gpu<N>``."""
    backend: Backend


def parse_devices(text: str) -> list[str]:
    """``cpu``, ``all``, or a comma list of ``cpu`` and CUDA device numbers; raise ``ValueError``."""
    items = [x.strip().lower() for x in text.split(",") if x.strip()]
    if not items:
        raise ValueError("--devices: expected cpu, all, or a comma list of GPU numbers such as 0,1")
    if "all" in items:
        if len(items) > 1:
            raise ValueError("--devices: all stands alone")
        return ["all"]
    out: list[str] = []
    for x in items:
        if x != "cpu" and not (x.isdigit() and int(x) < MAX_DEVICES):
            raise ValueError(f"--devices: {x!r} is neither cpu nor a GPU number below {MAX_DEVICES}")
        name = "cpu" if x == "cpu" else str(int(x))
        if name in out:
            raise ValueError(f"--devices: {x} is listed twice")
        out.append(name)
    return out


def gpu_count() -> int:
    """CUDA devices CuPy sees (0 without CuPy or a driver)."""
    try:
        import cupy  # optional: only where a GPU may be

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # ImportError, CUDA driver errors
        return 0


def _gpu(index: int) -> Device:
    try:
        from kernels.cupy_backend import CupyBackend

        backend = CupyBackend(index)
    except BackendError:
        raise
    except Exception as e:  # ImportError, CUDA runtime and compile errors
        raise BackendError(f"GPU {index}: the CuPy backend is unusable: {type(e).__name__}: {e}") from e
    self_test(backend)
    return Device(f"gpu{index}", backend)


def open_devices(names: list[str]) -> list[Device]:
    """A self-tested backend per device; raise ``BackendError`` naming the one that fails."""
    if names == ["all"]:
        count = gpu_count()
        if count == 0:
            return [Device("cpu", get_backend("numpy"))]
        return [_gpu(i) for i in range(count)]
    return [Device("cpu", get_backend("numpy")) if n == "cpu" else _gpu(int(n)) for n in names]
