"""Which branches are worth storing (``within_reach``) and the header rules a run of headers is checked by."""

from dataclasses import replace

import pytest

from consensus import errors
from consensus.forkchoice import within_reach
from consensus.genesis import make_genesis_block
from consensus.validation import check_header, make_parent_info
from pouw.header import compute_work
from tests.support.blockgen import ChainBuilder, easy_params

P = easy_params()
NOW = P.genesis_time + 10**6


def test_within_reach_is_more_work_or_less_by_under_margin_tip_blocks():
    target = (1 << 200) - 1
    w = compute_work(target)
    tip = 100 * w
    assert within_reach(tip + 1, tip, target, 0)
    assert not within_reach(tip, tip, target, 0)  # no margin: a tie is not taken
    assert within_reach(tip, tip, target, 1)  # a sibling of the tip
    assert within_reach(tip - 5 * w, tip, target, 6)
    assert not within_reach(tip - 6 * w, tip, target, 6)


def test_check_header_applies_the_header_rules_of_validate_block():
    builder = ChainBuilder(P, synthetic=True)
    genesis = make_parent_info(make_genesis_block(P).header)
    header = builder.child(builder.genesis_id).header
    check_header(header, genesis, P, NOW)
    pre = header.pre
    cases = [
        (replace(pre, version=2), errors.BadHeaderVersion),
        (replace(pre, height=2), errors.BadHeight),
        (replace(pre, prev_id=bytes(32)), errors.BadLinkage),
        (replace(pre, time=P.genesis_time), errors.TimeTooOld),
        (replace(pre, time=NOW + P.max_future + 1), errors.TimeTooNew),
        (replace(pre, target=pre.target + 1), errors.BadTarget),
    ]
    for bad, error in cases:
        with pytest.raises(error):
            check_header(replace(header, pre=bad), genesis, P, NOW)
    assert not issubclass(errors.TimeTooNew, errors.PeerFault)
