"""Chain work and fork choice (docs/protocol.md sections 4 and 10).

The work of a block is ``floor(2^256 / (target + 1))`` expected
multiply-accumulates (``pouw.header.compute_work``); a chain's work is the sum
over its blocks, genesis included. The best chain is the valid one with the
most work; on a tie the one seen first stays, so a node never switches to a
branch that only matches its current chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pouw.header import compute_work


def compute_chain_work(parent_work: int, target: int) -> int:
    """Cumulative work of a block with ``target`` on top of a chain with ``parent_work``."""
    return parent_work + compute_work(target)


def is_better_chain(candidate_work: int, current_work: int) -> bool:
    """True iff a chain with ``candidate_work`` should replace one with ``current_work`` (ties keep the current)."""
    return candidate_work > current_work


@dataclass(frozen=True)
class ChainTip:
    """A candidate tip for fork choice."""

    block_id: bytes
    chain_work: int
    seen: int
    """Arrival order (lower = seen earlier)."""


def select_best_tip(tips: Iterable[ChainTip]) -> ChainTip | None:
    """The tip with the most work; among equals, the one seen first."""
    best: ChainTip | None = None
    for tip in tips:
        if best is None or tip.chain_work > best.chain_work or (
            tip.chain_work == best.chain_work and tip.seen < best.seen
        ):
            best = tip
    return best
