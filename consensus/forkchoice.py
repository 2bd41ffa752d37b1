"""Chain work, fork choice, and which branches are worth storing (docs/protocol.md sections 4 and 10).

The work of a block is ``floor(2^256 / (target + 1))`` expected
multiply-accumulates (``pouw.header.compute_work``); a chain's work is the sum
over its blocks, genesis included. The best chain is the valid one with the
most work; on a tie the one seen first stays, so a node never switches to a
branch that only matches its current chain.

Storing a side branch costs disk and, once it overtakes, the state check of
every block on it; a branch that cannot overtake is not worth either. So a
node takes the blocks of a branch only while the branch is within reach of
its tip (``within_reach``: more work, or less by at most ``side_branch_margin``
tip blocks' work) and forks at most ``max_fork_depth`` blocks below the tip.

Headers prove no work on their own here (the work is in the certificate,
which travels with the body), but their targets are fixed by their parents, so
a run of headers says how much work its bodies must carry.
``consensus.validation.check_header`` checks one header against its parent
(``validate_block`` runs the same function) and ``HeaderRun`` is what
headers-first sync keeps of a branch while it adds up that work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pouw.header import compute_work

from .validation import ParentInfo


def compute_chain_work(parent_work: int, target: int) -> int:
    """Cumulative work of a block with ``target`` on top of a chain with ``parent_work``."""
    return parent_work + compute_work(target)


def is_better_chain(candidate_work: int, current_work: int) -> bool:
    """True iff a chain with ``candidate_work`` should replace one with ``current_work`` (ties keep the current)."""
    return candidate_work > current_work


def within_reach(branch_work: int, tip_work: int, tip_target: int, margin: int) -> bool:
    """True iff a branch with ``branch_work`` is worth storing next to a tip with ``tip_work`` and ``tip_target``.

    That is: its work plus ``margin`` blocks at the tip's target is more than
    the tip's (with ``margin = 0``, only a branch with more work). A sibling of
    the tip (the same work) is in reach for any positive margin: two miners
    that find a block at once must both keep both.
    """
    return branch_work + margin * compute_work(tip_target) > tip_work


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


# --- runs of headers (headers-first sync) -------------------------------------------------------


class RunVerdict(StrEnum):
    """What to do with a branch after its latest page of headers."""

    FETCH = "fetch"
    """The branch is within reach of our tip: fetch the bodies of ``HeaderRun.fetch``, then ask for more."""
    PRESYNC = "presync"
    """Not within reach (yet): fetch nothing, keep a bounded list of ids, ask for more headers."""
    TOO_DEEP = "too-deep"
    """The branch forks more than ``max_fork_depth`` blocks below our tip: stop (refused, not a fault)."""
    TOO_LONG = "too-long"
    """Presync holds as many ids as it may and the branch is still out of reach: stop (not a fault)."""


@dataclass(frozen=True)
class HeaderRun:
    """A branch as far as its headers have been checked: enough to check the next header and to weigh it.

    Bounded whatever the peer sends: one ``ParentInfo``, three integers and at
    most the presync limit of 32-byte ids.
    """

    last: ParentInfo
    """The last header checked (the parent of the next one)."""
    chain_work: int
    """Cumulative work of the branch up to ``last``, genesis included."""
    fork_height: int
    """Height of the branch's last block on our main chain (the fork point)."""
    verdict: RunVerdict
    fetch: tuple[bytes, ...] = ()
    """With ``FETCH``: ids whose bodies we lack, oldest first (the chain takes them even where their own
    chain work is still short of the branch's)."""
    pending: tuple[bytes, ...] = ()
    """With ``PRESYNC``: ids checked but not fetched yet, oldest first, fetched once the branch is in reach."""
