"""Difficulty (per-block WTEMA) and the median-time rule (docs/protocol.md section 10).

For a parent with target ``t`` and a block with ``time``, the solve time is
``s = time - parent.time`` clamped to ``[1, 6*S]`` and the block's target must be

    next = t * (S*N + s - S) // (S*N),   clamped to [1, pow_limit]

in exact integer arithmetic (``S`` block spacing, ``N`` smoothing). A slow
block (``s > S``) raises the target (easier), a fast one lowers it. A network
with ``no_retarget`` uses ``initial_target`` for every block.

The solve time is the block's own ``time`` minus its parent's, as the spec
reads: the target of a block depends on the timestamp it carries, so a miner
fixes ``time`` first and computes the target from it. The ``6*S`` clamp and the
two time rules (above the median of 11, at most 2 hours ahead of the clock)
bound what a miner gains by lying about ``time``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .networks import NetworkParams

MEDIAN_TIME_SPAN = 11
"""A block's time must exceed the median of this many previous times."""

MAX_FUTURE_SECONDS = 2 * 60 * 60
"""A block's time may be at most this far ahead of the local clock."""

MAX_SOLVE_TIME_FACTOR = 6
"""Solve times are clamped to ``[1, 6*S]``."""


def compute_next_target(parent_target: int, solve_time: int, params: NetworkParams) -> int:
    """Target of a block whose parent has ``parent_target``, solved in ``solve_time`` seconds."""
    if params.no_retarget:
        return params.initial_target
    spacing, n = params.block_spacing, params.wtema_n
    s = min(max(solve_time, 1), MAX_SOLVE_TIME_FACTOR * spacing)
    nxt = parent_target * (spacing * n + s - spacing) // (spacing * n)
    return min(max(nxt, 1), params.pow_limit)


def compute_median_time(times: Sequence[int]) -> int:
    """Median of the previous times (up to 11; fewer near genesis): the middle of the sorted list.

    With an even count (only possible within 10 blocks of genesis) it is the
    upper of the two middle values.
    """
    if not times:
        raise ValueError("the median needs at least one time")
    ordered = sorted(times)
    return ordered[len(ordered) // 2]
