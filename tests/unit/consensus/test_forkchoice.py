"""Chain work and fork choice: most work wins, ties keep the block seen first."""

from consensus.forkchoice import ChainTip, compute_chain_work, is_better_chain, select_best_tip
from pouw.header import compute_work


def test_chain_work_adds_block_work():
    assert compute_chain_work(100, (1 << 200) - 1) == 100 + (1 << 56)
    assert compute_work(0) == 1 << 256


def test_ties_keep_the_current_chain():
    assert is_better_chain(11, 10)
    assert not is_better_chain(10, 10)
    assert not is_better_chain(9, 10)


def test_select_best_tip_prefers_work_then_first_seen():
    tips = [ChainTip(b"a", 5, 3), ChainTip(b"b", 7, 9), ChainTip(b"c", 7, 4), ChainTip(b"d", 6, 0)]
    assert select_best_tip(tips).block_id == b"c"
    assert select_best_tip([]) is None
