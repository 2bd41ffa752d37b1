"""Templates from ``getblocktemplate`` answers and blocks from winning tiles (``miner.work``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from consensus.validation import validate_block
from kernels.base import prepare
from kernels.select import get_backend
from miner.work import TemplateError, at_shape, parse_template, winning_block
from tests.unit.miner.support import FakeNode, P, answer_of


def test_an_answer_becomes_the_same_template():
    node = FakeNode()
    t = node._template()
    work = parse_template(answer_of(t, longpollid="ab" * 32 + "-3"))
    assert work.template == t and work.longpollid == "ab" * 32 + "-3" and work.job is None


def test_answers_that_do_not_hold_together_are_refused():
    t = FakeNode()._template()
    good = answer_of(t)
    other = replace(t.pre, tx_root=bytes(32))
    with pytest.raises(TemplateError, match="tx_root"):
        parse_template({**good, "header_pre": other.encode().hex()})
    with pytest.raises(TemplateError, match="transaction 1"):
        parse_template({**good, "transactions": good["transactions"] * 2})
    with pytest.raises(TemplateError, match="header_pre"):
        parse_template({**good, "header_pre": "00"})
    with pytest.raises(TemplateError, match="transactions"):
        parse_template({**good, "transactions": []})
    with pytest.raises(TemplateError, match="job"):
        parse_template({**good, "job": {"job_id": 1}})
    with pytest.raises(TemplateError):
        parse_template([])


def test_a_job_in_the_answer_is_parsed():
    t = FakeNode()._template()
    job = {"job_id": "11" * 32, "a": "22" * 32, "b": "33" * 32, "shape": {"m": 20, "k": 40, "n": 12},
           "padded_shape": {"m": 32, "k": 256, "n": 16}, "lease_expires": 5.0}
    w = parse_template(answer_of(t, job=job))
    assert w.job.shape == (20, 40, 12) and w.job.padded == (32, 256, 16) and w.job.lease_expires == 5.0


def test_a_winning_tile_at_the_miners_own_shape_is_a_valid_block():
    node = FakeNode()
    t = node._template()
    rng = np.random.default_rng(3)
    prepared = prepare(rng.integers(-64, 64, (32, 256), dtype=np.int8), rng.integers(-64, 64, (256, 48),
                                                                                      dtype=np.int8))
    pre = at_shape(t.pre, prepared)
    assert (pre.m, pre.k, pre.n) == (32, 256, 48) and pre.tx_root == t.pre.tx_root
    result = get_backend("numpy").mine(prepared, pre, 5)
    block = winning_block(t, prepared, result)
    assert block is not None and block.header.pre.nonce == 5
    validate_block(block, node.parent, P, pre.time + 1)  # certificate included
