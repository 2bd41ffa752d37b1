"""The two time rules of revision 2 (PROTOCOL.md section 10): above the median, at most ``max_future`` ahead.

The median is over the ``min(11, h + 1)`` latest ancestors (genesis included),
the element at index ``count // 2`` of their sorted times, so with an even count
(near genesis) it is the upper middle value. The future limit is the network
parameter ``max_future``; a block past it is ``TimeTooNew``, a ``Transient``
error of its own (the chain retries such blocks), never an ``InvalidBlock``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus import errors
from consensus.validation import validate_block
from tests.support.blockgen import ChainBuilder, easy_params

P = easy_params()
T0 = P.genesis_time


def chain_with_times(offsets, params=P):
    """A builder and the id of the last of blocks at ``T0 + offset`` for each offset, in order."""
    builder = ChainBuilder(params, synthetic=True)
    parent = builder.genesis_id
    for offset in offsets:
        parent = builder.child(parent, time=T0 + offset).header.block_id
    return builder, parent


def check_child(builder, parent_id, time, now=None, params=P):
    info = builder.infos[parent_id]
    block = builder.maker.synthetic(info, time, bytes(20))
    validate_block(block, info, params, now if now is not None else time, check_certificate=False)


@pytest.mark.parametrize("offsets,median_offset", [
    ([], 0),                          # 1 ancestor: genesis
    ([100], 100),                     # 2 ancestors (even): the upper of (0, 100)
    ([100, 50], 50),                  # 3 ancestors: (0, 50, 100) -> 50
    ([100, 50, 70], 70),              # 4 ancestors (even): (0, 50, 70, 100) -> index 2 = 70
    ([9, 8, 7, 6, 5, 4, 3, 2, 1, 10], 5),  # 11 ancestors, genesis (0) the oldest: index 5 of 0..10
    ([9, 8, 7, 6, 5, 4, 3, 2, 1, 10, 11], 6),  # 12 blocks: genesis drops out, 1..11 -> 6
])
def test_time_must_exceed_the_median_of_min_11_h_plus_1_ancestors(offsets, median_offset):
    builder, parent = chain_with_times(offsets)
    info = builder.infos[parent]
    assert len(info.recent_times) == min(11, len(offsets) + 1)
    with pytest.raises(errors.TimeTooOld):
        check_child(builder, parent, T0 + median_offset)
    check_child(builder, parent, T0 + median_offset + 1)


def test_even_count_takes_the_upper_middle_not_the_lower():
    """Two ancestors at 0 and 100: a time of 50 is above the lower middle but must still fail."""
    builder, parent = chain_with_times([100])
    with pytest.raises(errors.TimeTooOld):
        check_child(builder, parent, T0 + 50)


@pytest.mark.parametrize("max_future", [60, 7_200])
def test_future_limit_is_the_network_parameter(max_future):
    params = replace(P, max_future=max_future)
    builder, parent = chain_with_times([10], params)
    when = T0 + 1000
    check_child(builder, parent, when, now=when - max_future, params=params)
    with pytest.raises(errors.TimeTooNew) as info:
        check_child(builder, parent, when, now=when - max_future - 1, params=params)
    assert str(max_future) in str(info.value)


def test_time_too_new_is_transient_and_its_own_class():
    assert issubclass(errors.TimeTooNew, errors.Transient)
    assert not issubclass(errors.TimeTooNew, errors.PeerFault)
    assert not issubclass(errors.TimeTooNew, errors.InvalidBlock)
    assert not issubclass(errors.TimeTooOld, errors.Transient)
    assert errors.TimeTooNew.rule != errors.TimeTooOld.rule
