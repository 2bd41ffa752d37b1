"""Signed transactions: ids, signing hash, signing and the checks that need no state (docs/protocol.md sections 10, 11).

- ``sighash = HK(K("sighash"), TxBody)``; the Ed25519 signature covers it.
- ``tx id = HK(K("tx"), Tx bytes)``; the same formula over a coinbase's 37
  bytes gives the coinbase id.
- ``tx_root``: the section 3 tree shape with inner nodes keyed ``K("tx-node")``
  over the ids of a block's transactions, coinbase first.

``validate_tx`` checks what a transaction shows by itself (kind, chain id, memo
size, no u64 overflow of ``amount + fee``, the minimum fee, a job
transaction's own fields, the signature); ``consensus.state`` checks nonce and
balance against the sender's account, and a job transaction against its offer's
record (``consensus.jobmarket``).

The minimum fee is ``min_fee_per_byte * len(Tx)`` with ``len(Tx)`` the TxBody
(or JobTxBody) plus the 64-byte signature (147 bytes plus the memo for a
transfer; the u32 length prefix a block adds is not counted). Because it is at least 1 base unit per byte, every
sender must hold funds: a key with no balance cannot pay it, so it cannot create
an account record (an attack that made 410 permanent records from 200 free
0-amount transfers).
"""

from __future__ import annotations

from collections.abc import Sequence

from pouw.hashing import HK, K
from pouw.merkle import compute_root

from .address import compute_address
from .codec import TX_MIN_SIZE, check_tx_kind, encode_transaction, encode_tx, encode_tx_body
from .ed25519 import verify_strict
from .errors import AmountOverflow, BadSignature, BadTxKind, FeeTooLow, MemoTooLong, WrongChainId
from .jobmarket import validate_job_fields
from .keys import KeyPair
from .networks import NetworkParams
from .types import TX_KIND_TRANSFER, JobPayload, JobTxBody, Transaction, Tx, TxBody

U64_MAX = (1 << 64) - 1


def compute_sighash(body: TxBody | JobTxBody) -> bytes:
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


def sign_tx(body: TxBody | JobTxBody, key: KeyPair) -> Tx:
    """Sign ``body`` with ``key`` (whose public key must be the body's)."""
    if body.pubkey != key.public_key:
        raise ValueError("the body's pubkey is not the signing key's public key")
    return Tx(body, key.sign(compute_sighash(body)))


def make_transfer(key: KeyPair, chain_id: int, nonce: int, to: bytes, amount: int, fee: int,
                  memo: bytes = b"") -> Tx:
    """Build and sign a transfer (kind 1) from ``key``."""
    return sign_tx(TxBody(TX_KIND_TRANSFER, chain_id, nonce, key.public_key, to, amount, fee, memo), key)


def make_job_tx(key: KeyPair, chain_id: int, nonce: int, kind: int, id_: bytes, payload: JobPayload,
                fee: int) -> Tx:
    """Build and sign a job transaction (kinds 2 to 8) from ``key``."""
    return sign_tx(JobTxBody(kind, chain_id, nonce, key.public_key, fee, id_, payload), key)


def compute_tx_size(tx: Tx) -> int:
    """``len(Tx)`` as the fee rule counts it: the body plus signature, without a block's length prefix."""
    if isinstance(tx.body, TxBody):
        return TX_MIN_SIZE + len(tx.body.memo)
    return len(encode_tx(tx))


def compute_min_fee(tx: Tx, min_fee_per_byte: int) -> int:
    """The smallest fee ``tx`` may carry: ``min_fee_per_byte * len(Tx)``, exact."""
    return min_fee_per_byte * compute_tx_size(tx)


def validate_tx(tx: Tx, params: NetworkParams) -> None:
    """The checks a transaction passes without state; raise the named ``InvalidTx`` otherwise.

    The cheap checks come first and the signature last, so a transaction that
    fails on its fields costs no Ed25519 verification.
    """
    body = tx.body
    check_tx_kind(body.kind)
    if body.chain_id != params.chain_id:
        raise WrongChainId(f"expected chain id {params.chain_id}, found {body.chain_id}")
    if isinstance(body, TxBody) != (body.kind == TX_KIND_TRANSFER):
        raise BadTxKind(f"a {'transfer' if isinstance(body, TxBody) else 'job transaction'} cannot carry "
                        f"kind {body.kind}")
    if isinstance(body, TxBody):
        if len(body.memo) > params.max_memo:
            raise MemoTooLong(f"memo must be at most {params.max_memo} bytes, found {len(body.memo)}")
        if body.amount + body.fee > U64_MAX:
            raise AmountOverflow(f"amount + fee = {body.amount + body.fee} does not fit in u64")
    else:
        validate_job_fields(body, params)
    min_fee = compute_min_fee(tx, params.min_fee_per_byte)
    if body.fee < min_fee:
        raise FeeTooLow(f"expected a fee of at least {min_fee} ({params.min_fee_per_byte} per byte of "
                        f"{compute_tx_size(tx)} bytes), found {body.fee}")
    if not is_signature_valid(tx):
        raise BadSignature("Ed25519 signature does not verify for the body's public key")


def is_signature_valid(tx: Tx) -> bool:
    """True iff ``tx.signature`` is the body's key's strict Ed25519 signature (``consensus.ed25519``) of the sighash."""
    return verify_strict(bytes(tx.body.pubkey), bytes(tx.signature), compute_sighash(tx.body))
