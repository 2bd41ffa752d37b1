"""Transfers: signing, ids and the stateless checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.errors import AmountOverflow, BadSignature, MemoTooLong, TxVersionError, WrongChainId
from consensus.keys import devnet_keypairs
from consensus.tx import compute_sighash, compute_tx_id, get_sender, make_transfer, sign_tx, validate_tx
from consensus.types import Tx

KEYS = devnet_keypairs(2)
CHAIN = 1337


def transfer(**changes):
    tx = make_transfer(KEYS[0], CHAIN, 0, KEYS[1].address, 10, 1, b"memo")
    body = replace(tx.body, **changes)
    return sign_tx(body, KEYS[0]) if "pubkey" not in changes else Tx(body, tx.signature)


def test_valid_transfer_passes():
    tx = transfer()
    validate_tx(tx, CHAIN, 256)
    assert get_sender(tx) == KEYS[0].address


def test_signature_covers_every_body_field():
    tx = transfer()
    for field, value in [("amount", 11), ("fee", 2), ("nonce", 1), ("to", bytes(20)), ("memo", b"x")]:
        forged = Tx(replace(tx.body, **{field: value}), tx.signature)
        with pytest.raises(BadSignature):
            validate_tx(forged, CHAIN, 256)


def test_signature_by_another_key_fails():
    tx = transfer()
    forged = Tx(replace(tx.body, pubkey=KEYS[1].public_key), tx.signature)
    with pytest.raises(BadSignature):
        validate_tx(forged, CHAIN, 256)


def test_garbage_public_key_is_a_bad_signature_not_a_crash():
    tx = transfer()
    with pytest.raises(BadSignature):
        validate_tx(Tx(replace(tx.body, pubkey=b"\xff" * 32), tx.signature), CHAIN, 256)


@pytest.mark.parametrize("changes,error", [
    ({"version": 2}, TxVersionError),
    ({"chain_id": 1}, WrongChainId),
    ({"memo": bytes(257)}, MemoTooLong),
    ({"amount": (1 << 64) - 1, "fee": 1}, AmountOverflow),
])
def test_stateless_rules(changes, error):
    with pytest.raises(error):
        validate_tx(transfer(**changes), CHAIN, 256)


def test_memo_of_exactly_the_limit_is_fine():
    validate_tx(transfer(memo=bytes(256)), CHAIN, 256)


def test_id_and_sighash_differ_and_id_covers_signature():
    tx = transfer()
    assert compute_tx_id(tx) != compute_sighash(tx.body)
    other = Tx(tx.body, bytes(64))
    assert compute_tx_id(other) != compute_tx_id(tx)


def test_sign_with_the_wrong_key_is_refused():
    tx = transfer()
    with pytest.raises(ValueError):
        sign_tx(tx.body, KEYS[1])
