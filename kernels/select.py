"""Backend selection with a start-up self-test.

``auto`` picks CuPy when a usable GPU exists, else NumPy. Every backend is
checked once per process against ``pouw.reference`` on a small random problem
(tickets and product bit for bit); one that disagrees is refused.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from pouw.header import HeaderPre
from pouw.reference import mine_reference

from .base import Backend, BackendError, prepare

log = logging.getLogger(__name__)

BACKENDS = ("numpy", "cupy")
_lock = threading.Lock()
_cache: dict[str, Backend] = {}


def self_test(backend: Backend) -> None:
    """Raise ``BackendError`` unless ``backend`` matches the reference on a fixed small problem."""
    # Fixed, protocol-independent test data (not consensus values): a simple
    # integer recurrence gives int7 matrices reproducible on every platform.
    m, k, n = 48, 384, 32
    idx = np.arange(m * k + k * n, dtype=np.int64)
    vals = ((idx * 2654435761) >> 7) % 128 - 64
    a = vals[: m * k].reshape(m, k).astype(np.int8)
    b = vals[m * k :].reshape(k, n).astype(np.int8)
    prepared = prepare(a, b)
    pre = HeaderPre(1, 7, bytes(32), bytes(32), 1_700_000_000, 1 << 200, 0, m, n, k)
    ref = mine_reference(a, b, prepared.commitment, pre)
    got = backend.mine(prepared, pre, 0, want_product=True, all_tickets=True)
    if got.tickets is None or not np.array_equal(got.tickets, ref.tickets):
        raise BackendError(f"backend {backend.name!r} disagrees with the reference on tickets")
    if got.product is None or not np.array_equal(got.product, ref.product):
        raise BackendError(f"backend {backend.name!r} disagrees with the reference on the product")


def _make(name: str) -> Backend:
    if name == "numpy":
        from .numpy_backend import NumpyBackend

        return NumpyBackend()
    if name == "cupy":
        try:
            from .cupy_backend import CupyBackend

            return CupyBackend()
        except BackendError:
            raise
        except Exception as e:  # ImportError, CUDA runtime and compile errors
            raise BackendError(f"CuPy backend unusable: {type(e).__name__}: {e}") from e
    raise BackendError(f"unknown backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")


def get_backend(name: str | None = None) -> Backend:
    """Return a self-tested backend: ``auto`` (default, or ``POUW_BACKEND``), ``numpy`` or ``cupy``."""
    choice = (name or os.environ.get("POUW_BACKEND") or "auto").lower()
    with _lock:
        if choice == "auto":
            try:
                return _get("cupy")
            except BackendError as e:
                log.info("CuPy backend unavailable (%s); using NumPy", e)
                return _get("numpy")
        return _get(choice)


def _get(name: str) -> Backend:
    if name not in _cache:
        backend = _make(name)
        self_test(backend)
        _cache[name] = backend
    return _cache[name]


def available_backends() -> list[str]:
    """Names of the backends that construct and pass their self-test here."""
    out = []
    for name in BACKENDS:
        try:
            get_backend(name)
            out.append(name)
        except BackendError:
            pass
    return out
