"""Difficulty (ASERT, anchored at genesis) and the median-time rule (docs/protocol.md section 10).

The target of a block whose parent has height ``h`` and time ``t_p`` is the
``aserti3-2d`` form of an absolute-time exponential: with ``S`` the block
spacing and the genesis header as anchor,

    exponent = ((t_p - genesis_time - S*h) * 65536) // halflife
    target   = genesis_target * 2^(exponent / 65536)     (cubic fixed-point approximation)

clamped to ``[1, pow_limit]``, in exact integer arithmetic with Python's floor
semantics (``//`` and ``>>`` round toward minus infinity). The target doubles
for every ``halflife`` seconds the chain is behind its schedule and halves for
every ``halflife`` ahead of it.

Why ASERT and not a per-block moving average: the target depends only on the
parent's height and time, never on the path of earlier timestamps, so a miner
who alternates lying timestamps gains nothing (the moving average it replaces,
with solve times clamped at 1 s, let 300 blocks eased 7x with timestamps only
308 s apart). The residual lever is the future-time limit: a timestamp
``max_future`` ahead eases its child by ``2^(max_future / halflife)``, at most
``2^(1/12)`` because every preset keeps ``halflife >= 12 * max_future``.

A network with ``no_retarget`` gives every block ``initial_target``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .networks import NetworkParams

MEDIAN_TIME_SPAN = 11
"""A block's time must exceed the median of this many previous times (fewer near genesis)."""

ASERT_RADIX = 65536
"""Fixed-point scale of the ASERT exponent: 16 fractional bits."""

ASERT_MAX_SHIFT = 256
"""From this many doublings on, the target is ``pow_limit`` whatever the anchor (no huge shift is computed)."""

ASERT_MIN_SHIFT = -273
"""From this many halvings on, the target is 1: ``anchor * factor < 2^273`` shifted right that far is 0."""


def compute_asert_target(anchor_target: int, time_offset: int, height: int, params: NetworkParams) -> int:
    """ASERT target of a child of a block at ``height`` whose time is ``time_offset`` seconds after genesis.

    ``anchor_target`` is the genesis target. Taken apart from the preset so the
    spec's arithmetic vectors (which fix their own anchor) can call it.
    """
    exponent = ((time_offset - params.block_spacing * height) * ASERT_RADIX) // params.halflife
    shifts = exponent >> 16
    frac = exponent & 0xFFFF
    if shifts >= ASERT_MAX_SHIFT:
        return params.pow_limit  # anchor * factor >> 16 would be at least 2^256 > pow_limit
    if shifts <= ASERT_MIN_SHIFT:
        return 1
    factor = ASERT_RADIX + ((195_766_423_245_049 * frac + 971_821_376 * frac**2 + 5_127 * frac**3 + (1 << 47)) >> 48)
    t = anchor_target * factor
    t = t << shifts if shifts >= 0 else t >> -shifts
    return min(max(t >> 16, 1), params.pow_limit)


def compute_next_target(parent_height: int, parent_time: int, params: NetworkParams) -> int:
    """Target of a child of the block at ``parent_height`` with time ``parent_time`` (ASERT from genesis)."""
    if params.no_retarget:
        return params.initial_target
    return compute_asert_target(params.initial_target, parent_time - params.genesis_time, parent_height, params)


def compute_median_time(times: Sequence[int]) -> int:
    """Median of the previous times (up to 11; fewer near genesis): element ``count // 2`` of the sorted list.

    With an even count (only possible within 10 blocks of genesis) it is the
    upper of the two middle values.
    """
    if not times:
        raise ValueError("the median needs at least one time")
    ordered = sorted(times)
    return ordered[len(ordered) // 2]
