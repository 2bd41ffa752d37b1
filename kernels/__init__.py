"""Compute backends for mining: one interface, a NumPy reference path and a CuPy GPU path.

``get_backend("auto" | "numpy" | "cupy")`` returns a backend that has passed
its start-up self-test against ``pouw.reference``.
"""

from .base import Backend, MineResult, Prepared, Winner, prepare
from .select import available_backends, get_backend

__all__ = ["Backend", "MineResult", "Prepared", "Winner", "available_backends", "get_backend", "prepare"]
