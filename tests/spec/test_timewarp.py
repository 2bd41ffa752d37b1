"""The timewarp attack of revision 2 (PROTOCOL.md section 10): alternating timestamps cannot ease ASERT.

The attacker mines 300 blocks whose timestamps follow ``LLHLLHH`` repeated:
``L`` is the lowest time the median rule allows (median + 1), ``H`` is six
spacings after the parent. Under the per-block moving average that revision 2
replaced (solve times clamped to ``[1, 6S]``), every ``H`` eased the target a lot
and every ``L`` hardened it only a little, so 300 such blocks, with timestamps
only a few hundred seconds apart in all, eased the target about 7x. Under ASERT
the target depends only on the parent's height and time: 300 blocks in a few
hundred seconds are far ahead of schedule, so the target gets harder, not easier.

Every block is checked with ``validate_block`` (certificates skipped: the
blocks carry well-formed zero certificates), so the attacker's timestamps are
ones a node accepts.
"""

from __future__ import annotations

from dataclasses import replace

from consensus.difficulty import compute_median_time
from consensus.networks import TESTNET
from consensus.validation import make_parent_info, validate_block
from tests.support.blockgen import BlockMaker, easy_params

BLOCKS = 300
PATTERN = "LLHLLHH"
PARAMS = replace(easy_params(TESTNET, retarget=True), block_spacing=30, max_future=600, halflife=7_200,
                 initial_target=1 << 220)
"""A retargeting preset with small numbers: 30-s blocks, a 2-hour half-life, the target well below pow_limit."""
MINER = bytes(20)


def build_chain(next_time):
    """Grow ``BLOCKS`` validated blocks from genesis; ``next_time(parent_info, i)`` picks each time."""
    from consensus.genesis import make_genesis_block

    maker = BlockMaker(PARAMS)
    genesis = make_genesis_block(PARAMS)
    parent = make_parent_info(genesis.header)
    times, targets = [], []
    for i in range(BLOCKS):
        when = next_time(parent, i)
        block = maker.synthetic(parent, when, MINER)
        validate_block(block, parent, PARAMS, now=when, check_certificate=False)
        times.append(when)
        targets.append(block.header.pre.target)
        parent = make_parent_info(block.header, parent)
    return times, targets


def attacker_time(parent, i):
    if PATTERN[i % len(PATTERN)] == "L":
        return compute_median_time(parent.recent_times) + 1
    return parent.time + 6 * PARAMS.block_spacing


def honest_time(parent, i):
    return parent.time + PARAMS.block_spacing


def test_alternating_timestamps_cannot_ease_the_target():
    attack_times, attack_targets = build_chain(attacker_time)
    honest_times, honest_targets = build_chain(honest_time)
    g = PARAMS.genesis_time
    # The attack compresses time: 300 blocks in 308 s instead of 300 spacings.
    assert attack_times[-1] - g == 308  # the figure of the spec
    # An honest chain stays on schedule and keeps the genesis target.
    assert honest_times[-1] - g == BLOCKS * PARAMS.block_spacing
    assert honest_targets[-1] == honest_targets[0] == PARAMS.initial_target
    # The attacker ends harder than the honest chain (the old moving average ended about 7x easier).
    assert attack_targets[-1] <= honest_targets[-1]
    assert attack_targets[-1] * 2 < honest_targets[-1]  # 300 blocks in 308 s: 8692 s ahead, 2^-1.2
    # Along the way, an H block a few spacings ahead of schedule eases its child by at most
    # 2^(6S / halflife) (about 1.7 % here): never more than one honest block's worth of lying.
    assert max(attack_targets) * 1000 < honest_targets[-1] * 1020


def test_the_attack_gains_nothing_over_its_own_clock():
    """Bound by elapsed time: each attacking target is at most what its latest timestamp entitles it to.

    With ``t_max`` the latest timestamp the attacker has shown so far, ASERT can
    give no block more than ``genesis.target * 2^((t_max - genesis.time - S*h) / halflife)``
    (times at or below ``t_max``, height ``h`` at least the parent's): lying low
    never helps, and lying high is capped by the future limit.
    """
    from consensus.difficulty import compute_next_target

    times, targets = build_chain(attacker_time)
    latest = PARAMS.genesis_time
    for h, (when, target) in enumerate(zip(times, targets, strict=True)):
        # Block h+1 has parent height h and parent time times[h-1] (genesis for h = 0).
        assert target <= compute_next_target(h, latest, PARAMS)
        latest = max(latest, when)
