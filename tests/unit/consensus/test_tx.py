"""Transfers: signing, ids and the stateless checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.errors import AmountOverflow, BadSignature, BadTxKind, FeeTooLow, MemoTooLong, WrongChainId
from consensus.keys import devnet_keypairs
from consensus.networks import DEVNET
from consensus.tx import compute_sighash, compute_tx_id, get_sender, make_transfer, sign_tx, validate_tx
from consensus.types import Tx

KEYS = devnet_keypairs(2)
CHAIN = 1337
FEE = 500
"""Covers the minimum fee (1 base unit per byte) of a transfer with a memo of up to 256 bytes."""


def validate(tx, max_memo=256, min_fee_per_byte=1):
    validate_tx(tx, replace(DEVNET, chain_id=CHAIN, max_memo=max_memo, min_fee_per_byte=min_fee_per_byte))


def transfer(**changes):
    tx = make_transfer(KEYS[0], CHAIN, 0, KEYS[1].address, 10, FEE, b"memo")
    body = replace(tx.body, **changes)
    return sign_tx(body, KEYS[0]) if "pubkey" not in changes else Tx(body, tx.signature)


def test_valid_transfer_passes():
    tx = transfer()
    validate(tx)
    assert get_sender(tx) == KEYS[0].address


def test_signature_covers_every_body_field():
    tx = transfer()
    for field, value in [("amount", 11), ("fee", FEE + 1), ("nonce", 1), ("to", bytes(20)), ("memo", b"x")]:
        forged = Tx(replace(tx.body, **{field: value}), tx.signature)
        with pytest.raises(BadSignature):
            validate(forged)


def test_signature_by_another_key_fails():
    tx = transfer()
    forged = Tx(replace(tx.body, pubkey=KEYS[1].public_key), tx.signature)
    with pytest.raises(BadSignature):
        validate(forged)


def test_garbage_public_key_is_a_bad_signature_not_a_crash():
    tx = transfer()
    with pytest.raises(BadSignature):
        validate(Tx(replace(tx.body, pubkey=b"\xff" * 32), tx.signature))


@pytest.mark.parametrize("changes,error", [
    ({"kind": 0}, BadTxKind),
    ({"kind": 9}, BadTxKind),
    ({"kind": 2}, BadTxKind),  # a transfer's layout with a job kind
    ({"kind": 8}, BadTxKind),
    ({"chain_id": 1}, WrongChainId),
    ({"memo": bytes(257)}, MemoTooLong),
    ({"amount": (1 << 64) - FEE, "fee": FEE}, AmountOverflow),
    ({"fee": 150}, FeeTooLow),  # 147 + 4 memo bytes = 151
])
def test_stateless_rules(changes, error):
    with pytest.raises(error):
        validate(transfer(**changes))


def test_memo_of_exactly_the_limit_is_fine():
    validate(transfer(memo=bytes(256)))


def test_fee_rule_counts_the_memo_and_the_per_byte_rate():
    validate(transfer(fee=151))
    validate(transfer(fee=302), min_fee_per_byte=2)
    with pytest.raises(FeeTooLow):
        validate(transfer(fee=301), min_fee_per_byte=2)
    with pytest.raises(FeeTooLow):
        validate(transfer(fee=402, memo=bytes(256)))


def test_fee_is_checked_before_the_signature():
    """A transfer too cheap to carry costs no Ed25519 verification: it fails on the fee even when forged."""
    forged = Tx(transfer(fee=1).body, bytes(64))
    with pytest.raises(FeeTooLow):
        validate(forged)


def test_id_and_sighash_differ_and_id_covers_signature():
    tx = transfer()
    assert compute_tx_id(tx) != compute_sighash(tx.body)
    other = Tx(tx.body, bytes(64))
    assert compute_tx_id(other) != compute_tx_id(tx)


def test_sign_with_the_wrong_key_is_refused():
    tx = transfer()
    with pytest.raises(ValueError):
        sign_tx(tx.body, KEYS[1])
