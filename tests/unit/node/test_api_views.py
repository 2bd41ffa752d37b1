"""Shared RPC helpers: a refused block or transfer is described once, rule first."""

from __future__ import annotations

from consensus.errors import BadNonce, InvalidBlock
from node.api.views import rejection
from node.mempool import MempoolError
from node.rpc import errors as E


def test_a_consensus_error_names_its_rule_once():
    err = rejection(E.VERIFY_REJECTED, BadNonce("expected nonce 3, found 5"))
    assert err.code == E.VERIFY_REJECTED
    assert err.message == "tx-nonce: expected nonce 3, found 5"


def test_a_mempool_error_leads_with_its_reason():
    err = rejection(E.VERIFY_REJECTED, MempoolError("duplicate", "transaction ab is already in the mempool"))
    assert err.message == "duplicate: transaction ab is already in the mempool"


def test_a_block_error_keeps_its_rule():
    assert rejection(E.VERIFY_ERROR, InvalidBlock("bad")).message == f"{InvalidBlock.rule}: bad"
