"""Transfers: ids, signing hash, signing and the checks that need no account state (docs/protocol.md section 10).

- ``sighash = HK(K("sighash"), TxBody)``; the Ed25519 signature covers it.
- ``tx id = HK(K("tx"), Tx bytes)``; the same formula over a coinbase's 37
  bytes gives the coinbase id.
- ``tx_root``: the section 3 tree shape with inner nodes keyed ``K("tx-node")``
  over the ids of a block's transactions, coinbase first.

``validate_tx`` checks what a transfer shows by itself (version, chain id,
memo size, no u64 overflow of ``amount + fee``, signature);
``consensus.state`` checks nonce and balance against the sender's account.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pouw.hashing import HK, K
from pouw.merkle import compute_root

from .address import compute_address
from .codec import encode_transaction, encode_tx_body
from .errors import AmountOverflow, BadSignature, MemoTooLong, TxVersionError, WrongChainId
from .keys import KeyPair
from .types import TX_VERSION, Transaction, Tx, TxBody

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
    """Build and sign a version-1 transfer from ``key``."""
    return sign_tx(TxBody(TX_VERSION, chain_id, nonce, key.public_key, to, amount, fee, memo), key)


def validate_tx(tx: Tx, chain_id: int, max_memo: int) -> None:
    """The checks a transfer passes without account state; raise the named ``InvalidTx`` otherwise."""
    body = tx.body
    if body.version != TX_VERSION:
        raise TxVersionError(f"expected version {TX_VERSION}, found {body.version}")
    if body.chain_id != chain_id:
        raise WrongChainId(f"expected chain id {chain_id}, found {body.chain_id}")
    if len(body.memo) > max_memo:
        raise MemoTooLong(f"memo must be at most {max_memo} bytes, found {len(body.memo)}")
    if body.amount + body.fee > U64_MAX:
        raise AmountOverflow(f"amount + fee = {body.amount + body.fee} does not fit in u64")
    if not is_signature_valid(tx):
        raise BadSignature("Ed25519 signature does not verify for the body's public key")


def is_signature_valid(tx: Tx) -> bool:
    """True iff ``tx.signature`` is the body's key's Ed25519 signature over the sighash."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes(tx.body.pubkey))
        key.verify(bytes(tx.signature), compute_sighash(tx.body))
    except (InvalidSignature, ValueError):
        return False
    return True
