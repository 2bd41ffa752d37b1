"""Shared test configuration: GPU detection for the ``gpu`` marker."""

from __future__ import annotations

import functools

import pytest


@functools.lru_cache(maxsize=1)
def gpu_available() -> bool:
    """True when CuPy imports and a CUDA device really works."""
    try:
        import cupy
    except Exception:
        return False
    try:
        if not cupy.is_available():
            return False
        return int(cupy.arange(3).sum().item()) == 3
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no usable CUDA GPU with CuPy on this machine")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
