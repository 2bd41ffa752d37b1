"""Transfers: ids, signing hash, signing and the checks that need no account state (docs/protocol.md section 10).

- ``sighash = HK(K("sighash"), TxBody)``; the Ed25519 signature covers it.
- ``tx id = HK(K("tx"), Tx bytes)``; the same formula over a coinbase's 37
  bytes gives the coinbase id.
- ``tx_root``: the section 3 tree shape with inner nodes keyed ``K("tx-node")``
  over the ids of a block's transactions, coinbase first.

``validate_tx`` checks what a transfer shows by itself (kind, chain id, memo
size, no u64 overflow of ``amount + fee``, the minimum fee, signature);
``consensus.state`` checks nonce and balance against the sender's account.

The minimum fee is ``min_fee_per_byte * len(Tx)`` with ``len(Tx)`` the TxBody
plus the 64-byte signature (147 bytes plus the memo; the u32 length prefix a
block adds is not counted). Because it is at least 1 base unit per byte, every
sender must hold funds: a key with no balance cannot pay it, so it cannot create
an account record (an attack that made 410 permanent records from 200 free
0-amount transfers).
"""

from __future__ import annotations

from collections.abc import Sequence

from pouw.hashing import HK, K
from pouw.merkle import compute_root

from .address import compute_address
from .codec import TX_MIN_SIZE, check_tx_kind, encode_transaction, encode_tx_body
from .ed25519 import verify_strict
from .errors import AmountOverflow, BadSignature, FeeTooLow, MemoTooLong, WrongChainId
from .keys import KeyPair
from .types import TX_KIND_TRANSFER, Transaction, Tx, TxBody

U64_MAX = (1 << 64) - 1


def compute_sighash(body: TxBody) -> bytes:
    """The 32 bytes a sender signs: ``HK(K("sighash"), TxBody)``."""
    return HK(K("sighash"), encode_tx_body(body))


def compute_tx_id(tx: Transaction) -> bytes:
    """``HK(K("tx"), bytes)`` of a transfer or a coinbase."""
    return HK(K("tx"), encode_transaction(tx))


def compute_tx_root(tx_ids: Sequence[bytes]) -> bytes:
    """Merkle root over a block's transaction ids (coinbase first), nodes keyed ``K("tx-node")``."""
    return compute_root(list(tx_ids), K("tx-node"))


def get_sender(tx: Tx) -> bytes:
    """The sender's 20-byte address, derived from the public key in the body."""
    return compute_address(tx.body.pubkey)


def sign_tx(body: TxBody, key: KeyPair) -> Tx:
    """Sign ``body`` with ``key`` (whose public key must be the body's)."""
    if body.pubkey != key.public_key:
        raise ValueError("the body's pubkey is not the signing key's public key")
    return Tx(body, key.sign(compute_sighash(body)))


def make_transfer(key: KeyPair, chain_id: int, nonce: int, to: bytes, amount: int, fee: int,
                  memo: bytes = b"") -> Tx:
    """Build and sign a transfer (kind 1) from ``key``."""
    return sign_tx(TxBody(TX_KIND_TRANSFER, chain_id, nonce, key.public_key, to, amount, fee, memo), key)


def compute_tx_size(tx: Tx) -> int:
    """``len(Tx)`` as the fee rule counts it: TxBody plus signature, without a block's length prefix."""
    return TX_MIN_SIZE + len(tx.body.memo)


def compute_min_fee(tx: Tx, min_fee_per_byte: int) -> int:
    """The smallest fee ``tx`` may carry: ``min_fee_per_byte * len(Tx)``, exact."""
    return min_fee_per_byte * compute_tx_size(tx)


def validate_tx(tx: Tx, chain_id: int, max_memo: int, min_fee_per_byte: int) -> None:
    """The checks a transfer passes without account state; raise the named ``InvalidTx`` otherwise.

    The cheap checks come first and the signature last, so a transfer that
    fails on its fields costs no Ed25519 verification.
    """
    body = tx.body
    check_tx_kind(body.kind)
    if body.chain_id != chain_id:
        raise WrongChainId(f"expected chain id {chain_id}, found {body.chain_id}")
    if len(body.memo) > max_memo:
        raise MemoTooLong(f"memo must be at most {max_memo} bytes, found {len(body.memo)}")
    if body.amount + body.fee > U64_MAX:
        raise AmountOverflow(f"amount + fee = {body.amount + body.fee} does not fit in u64")
    min_fee = compute_min_fee(tx, min_fee_per_byte)
    if body.fee < min_fee:
        raise FeeTooLow(f"expected a fee of at least {min_fee} ({min_fee_per_byte} per byte of "
                        f"{compute_tx_size(tx)} bytes), found {body.fee}")
    if not is_signature_valid(tx):
        raise BadSignature("Ed25519 signature does not verify for the body's public key")


def is_signature_valid(tx: Tx) -> bool:
    """True iff ``tx.signature`` is the body's key's strict Ed25519 signature (``consensus.ed25519``) of the sighash."""
    return verify_strict(bytes(tx.body.pubkey), bytes(tx.signature), compute_sighash(tx.body))
