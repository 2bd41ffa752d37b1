"""The job market's rules: paid MatMul jobs settled on chain (docs/protocol.md section 11).

A client's *offer* escrows ``reward + deposit`` for ``C = A.B``; a *claim*
bonds ``bond`` and commits to ``root_C``; the client *accepts* (claimant gets
``reward + bond``, client its deposit), or proves one wrong tile with a
*fraud* proof (client gets ``reward + deposit + bond // 2``, the rest of the
bond burns), or *rejects* (all of it burns); after the challenge window ``W``
anyone may *settle* (as accept); an offer nobody claimed by its deadline is
*refunded*. Records are keyed by ``offer_id = HK(K("offer"), client || u64
nonce)`` and deleted when final.

Two kinds of check, kept apart because a peer may be blamed for one only:

- ``validate_job_fields`` needs nothing but the transaction and the network
  parameters (the offer's job id, sizes and amounts; the fraud proof's shape).
  A transaction that fails it is wrong everywhere (``BadJobOffer``,
  ``BadFraudProof``).
- ``apply_job_tx`` needs the record and the height. A failure there
  (``JobStateFault`` and its subclasses) depends on the chain a node has seen.

Every amount is an exact Python integer; a credit above ``2^64 - 1`` is
refused (``AmountOverflow``), never wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from pouw.commit import leaf_a, leaf_b, node_key
from pouw.constants import TILE
from pouw.errors import DecodeError as PouwDecodeError
from pouw.hashing import HK, K, u64
from pouw.jobs import compute_job_id
from pouw.merkle import root_from_path
from pouw.tiles import is_tile_wrong, leaf_c

from .errors import (
    AmountOverflow,
    BadFraudProof,
    BadJobOffer,
    FraudNotProven,
    InsufficientBalance,
    JobSenderWrong,
    JobStatusWrong,
    JobWindowWrong,
    NoJobRecord,
)
from .networks import NetworkParams
from .types import (
    KIND_ACCEPT,
    KIND_CLAIM,
    KIND_FRAUD,
    KIND_OFFER,
    KIND_REFUND,
    KIND_REJECT,
    KIND_SETTLE,
    RECORD_CLAIMED,
    RECORD_OPEN,
    ClaimPayload,
    FraudPayload,
    JobRecord,
    JobTxBody,
    OfferPayload,
)

U64_MAX = (1 << 64) - 1
FRAUD_FIXED_SIZE = 1184
"""Bytes of a fraud transaction besides its two blocks and three paths: 85 + 64 + 8 + 1024 + 3."""


def compute_offer_id(client: bytes, nonce: int) -> bytes:
    """``HK(K("offer"), client address 20 || u64 nonce of the offer tx)``: unique, as a nonce is never reused."""
    return HK(K("offer"), bytes(client) + u64(nonce))


def padded_dims(m: int, k: int, n: int) -> tuple[int, int, int]:
    """``(m_p, k_p, n_p)`` of section 11: ``16 ceil(m/16)``, ``max(256, 128 ceil(k/128))``, ``16 ceil(n/16)``."""
    return TILE * -(-m // TILE), max(256, 128 * -(-k // 128)), TILE * -(-n // TILE)


def tree_depth(leaves: int) -> int:
    """The deepest path of a section 3 tree of ``leaves`` leaves: ``ceil(log2(leaves))``."""
    return (leaves - 1).bit_length()


def compute_fraud_size(m: int, k: int, n: int) -> int:
    """``fraud_size`` of a job: ``1184 + 32 k_p + 32 (depth_C + depth_A + depth_B)`` bytes.

    Paths of a section 3 tree differ in length by position; each depth here is
    the deepest one (``ceil(log2(leaves))``), so the bound covers the fraud
    proof of any tile.
    """
    m_p, k_p, n_p = padded_dims(m, k, n)
    rows, cols = m_p // TILE, n_p // TILE
    return FRAUD_FIXED_SIZE + 32 * k_p + 32 * (tree_depth(rows * cols) + tree_depth(rows) + tree_depth(cols))


def ceil_bp(amount: int, bp: int) -> int:
    """``ceil(amount * bp / 10000)``, exact."""
    return -(-amount * bp // 10_000)


def min_bond(offer: OfferPayload, params: NetworkParams) -> int:
    """The smallest bond an offer may name: the basis-point share of the reward, and enough for a fraud proof."""
    fraud_floor = params.fraud_fee_mult * params.min_fee_per_byte * compute_fraud_size(offer.m, offer.k, offer.n)
    return max(ceil_bp(offer.reward, params.bond_bp), fraud_floor)


def min_deposit(offer: OfferPayload, params: NetworkParams) -> int:
    """The smallest deposit: the basis-point share of the reward (and never below the bond)."""
    return max(ceil_bp(offer.reward, params.deposit_bp), offer.bond)


def validate_job_fields(body: JobTxBody, params: NetworkParams) -> None:
    """The rules a job transaction meets by itself; raise ``BadJobOffer``, ``BadFraudProof`` or ``AmountOverflow``."""
    if body.kind == KIND_OFFER:
        offer = body.payload
        assert isinstance(offer, OfferPayload)
        _validate_offer_fields(body, offer, params)
    elif body.kind == KIND_FRAUD:
        fraud = body.payload
        assert isinstance(fraud, FraudPayload)
        if len(fraud.a_blk) != len(fraud.bt_blk):
            raise BadFraudProof(f"A_blk has {len(fraud.a_blk)} bytes, Bt_blk {len(fraud.bt_blk)}: expected equal")
        if len(fraud.tile) != TILE * TILE * 4:
            raise BadFraudProof(f"expected a 1024-byte tile, found {len(fraud.tile)} bytes")


def _validate_offer_fields(body: JobTxBody, offer: OfferPayload, params: NetworkParams) -> None:
    if not (1 <= offer.m <= params.max_job_mn and 1 <= offer.n <= params.max_job_mn):
        raise BadJobOffer(f"expected 1 <= m, n <= {params.max_job_mn}, found m = {offer.m}, n = {offer.n}")
    if not 1 <= offer.k <= params.max_job_k:
        raise BadJobOffer(f"expected 1 <= k <= {params.max_job_k}, found {offer.k}")
    job_id = compute_job_id(offer.m, offer.k, offer.n, offer.root_a, offer.root_b)
    if body.id != job_id:
        raise BadJobOffer(f"expected id = job id {job_id.hex()} of the payload, found {body.id.hex()}")
    if offer.reward < 1:
        raise BadJobOffer("expected a reward of at least 1")
    total = body.fee + offer.reward + offer.deposit
    if total > U64_MAX:
        raise AmountOverflow(f"fee + reward + deposit = {total} does not fit in u64")
    low = min_bond(offer, params)
    if not low <= offer.bond <= offer.deposit:
        raise BadJobOffer(f"expected {low} <= bond <= deposit = {offer.deposit} (the reward's "
                          f"{params.bond_bp} bp, and {params.fraud_fee_mult}x the fee of a "
                          f"{compute_fraud_size(offer.m, offer.k, offer.n)}-byte fraud proof), found {offer.bond}")
    need = ceil_bp(offer.reward, params.deposit_bp)
    if offer.deposit < need:
        raise BadJobOffer(f"expected a deposit of at least {need} ({params.deposit_bp} bp of the reward), "
                          f"found {offer.deposit}")


class JobLedger(Protocol):
    """What ``apply_job_tx`` changes: balances and records (``consensus.state``'s overlay)."""

    def balance(self, address: bytes) -> int: ...

    def debit(self, address: bytes, amount: int) -> None: ...

    def credit(self, address: bytes, amount: int) -> None: ...

    def burn(self, amount: int) -> None: ...

    def get_record(self, offer_id: bytes) -> JobRecord | None: ...

    def set_record(self, offer_id: bytes, record: JobRecord | None) -> None: ...


@dataclass(frozen=True)
class JobCheck:
    """What a job transaction would do, found before anything changes (``check_job_tx``)."""

    offer_id: bytes
    record: JobRecord | None
    """The live record the transaction acts on (``None`` for an offer: it creates one)."""
    debit: int
    """Base units taken from the sender beyond the fee."""


def check_job_tx(body: JobTxBody, sender: bytes, height: int, params: NetworkParams,
                 get_record: RecordReader) -> JobCheck:
    """The row condition of section 11's table for ``body`` at ``height``; raise its ``JobStateFault``.

    Balance and nonce are the caller's (``consensus.state``). The fraud proof's
    Merkle paths and tile are checked here too: cheap checks (status, window,
    indices, lengths) first, then three paths, then ``256 k_p`` multiply-adds.
    """
    if body.kind == KIND_OFFER:
        offer = body.payload
        assert isinstance(offer, OfferPayload)
        if not height < offer.deadline <= height + params.max_job_lifetime:
            raise JobWindowWrong(f"expected {height} < deadline <= {height + params.max_job_lifetime}, "
                                 f"found {offer.deadline}")
        offer_id = compute_offer_id(sender, body.nonce)
        return JobCheck(offer_id, None, offer.reward + offer.deposit)
    record = get_record(body.id)
    if record is None:
        raise NoJobRecord(f"no live offer {body.id.hex()}")
    kind = body.kind
    if kind == KIND_CLAIM:
        _need_status(record, RECORD_OPEN, "a claim")
        if height > record.deadline:
            raise JobWindowWrong(f"expected a claim at height <= deadline {record.deadline}, found {height}")
        return JobCheck(body.id, record, record.bond)
    if kind == KIND_REFUND:
        _need_status(record, RECORD_OPEN, "a refund")
        _need_client(record, sender, "a refund")
        if height <= record.deadline:
            raise JobWindowWrong(f"expected a refund at height > deadline {record.deadline}, found {height}")
        return JobCheck(body.id, record, 0)
    _need_status(record, RECORD_CLAIMED, _KIND_PHRASES[kind])
    end = record.claim_height + params.job_window
    if kind == KIND_SETTLE:
        if height <= end:
            raise JobWindowWrong(f"expected a settle at height > claim height + W = {end}, found {height}")
        return JobCheck(body.id, record, 0)
    if kind == KIND_ACCEPT:
        _need_client(record, sender, "an accept")
        return JobCheck(body.id, record, 0)
    if height > end:
        raise JobWindowWrong(f"expected {_KIND_PHRASES[kind]} at height <= claim height + W = {end}, found {height}")
    if kind == KIND_REJECT:
        _need_client(record, sender, "a reject")
        return JobCheck(body.id, record, 0)
    assert kind == KIND_FRAUD and isinstance(body.payload, FraudPayload)
    check_fraud_proof(body.payload, record)
    return JobCheck(body.id, record, 0)


class RecordReader(Protocol):
    def __call__(self, offer_id: bytes) -> JobRecord | None: ...


_KIND_PHRASES = {KIND_OFFER: "an offer", KIND_CLAIM: "a claim", KIND_ACCEPT: "an accept", KIND_REJECT: "a reject",
                  KIND_SETTLE: "a settle", KIND_REFUND: "a refund", KIND_FRAUD: "a fraud proof"}

_STATUS_NAMES = {RECORD_OPEN: "open", RECORD_CLAIMED: "claimed"}


def _need_status(record: JobRecord, status: int, what: str) -> None:
    if record.status != status:
        name = _STATUS_NAMES[status]
        raise JobStatusWrong(f"{what} needs {'an' if name[0] in 'aeiou' else 'a'} {name} offer, found it "
                             f"{_STATUS_NAMES.get(record.status, str(record.status))}")


def _need_client(record: JobRecord, sender: bytes, what: str) -> None:
    if sender != record.client:
        raise JobSenderWrong(f"only the client {record.client.hex()} may send {what}, found {sender.hex()}")


def check_fraud_proof(fraud: FraudPayload, record: JobRecord) -> None:
    """Raise ``FraudNotProven`` unless ``fraud`` shows a wrong tile of the record's claimed product."""
    m_p, k_p, n_p = padded_dims(record.m, record.k, record.n)
    rows, cols = m_p // TILE, n_p // TILE
    if not (fraud.tile_i < rows and fraud.tile_j < cols):
        raise FraudNotProven(f"expected a tile below ({rows}, {cols}), found ({fraud.tile_i}, {fraud.tile_j})")
    if len(fraud.a_blk) != TILE * k_p:
        raise FraudNotProven(f"expected blocks of 16 * k_p = {TILE * k_p} bytes, found {len(fraud.a_blk)}")
    checks = (
        ("C", fraud.tile_i * cols + fraud.tile_j, rows * cols, leaf_c(fraud.tile_i, fraud.tile_j, fraud.tile),
         fraud.path_c, record.root_c),
        ("A", fraud.tile_i, rows, leaf_a(fraud.tile_i, fraud.a_blk), fraud.path_a, record.root_a),
        ("B", fraud.tile_j, cols, leaf_b(fraud.tile_j, fraud.bt_blk), fraud.path_b, record.root_b),
    )
    for name, index, count, leaf, path, root in checks:
        try:
            got = root_from_path(index, count, leaf, path, node_key())
        except PouwDecodeError as e:
            raise FraudNotProven(f"path_{name}: {e}") from e
        if got != root:
            raise FraudNotProven(f"path_{name} gives root {got.hex()}, the record has {root.hex()}")
    if not is_tile_wrong(fraud.tile, fraud.a_blk, fraud.bt_blk, fraud.tile_i, fraud.tile_j, record.m, record.n):
        raise FraudNotProven(f"tile ({fraud.tile_i}, {fraud.tile_j}) of the claimed product is right")


def apply_job_tx(ledger: JobLedger, body: JobTxBody, sender: bytes, height: int, params: NetworkParams) -> bytes:
    """Apply one job transaction (fee and nonce already taken by the caller); return its offer id.

    Raises the row's ``JobStateFault``, or ``InsufficientBalance`` when the
    sender cannot cover the debit after the fee.
    """
    check = check_job_tx(body, sender, height, params, ledger.get_record)
    if ledger.balance(sender) < check.debit:
        raise InsufficientBalance(f"expected a balance of at least {check.debit} after the fee for "
                                  f"{_KIND_PHRASES[body.kind]}, found {ledger.balance(sender)}")
    record = check.record
    kind = body.kind
    if kind == KIND_OFFER:
        offer = body.payload
        assert isinstance(offer, OfferPayload)
        ledger.debit(sender, check.debit)
        ledger.set_record(check.offer_id, JobRecord(
            RECORD_OPEN, sender, body.id, offer.m, offer.k, offer.n, offer.root_a, offer.root_b,
            offer.reward, offer.deposit, offer.bond, offer.deadline))
        return check.offer_id
    assert record is not None
    if kind == KIND_CLAIM:
        claim = body.payload
        assert isinstance(claim, ClaimPayload)
        ledger.debit(sender, check.debit)
        ledger.set_record(check.offer_id, replace(record, status=RECORD_CLAIMED, claimant=sender,
                                                  root_c=claim.root_c, claim_height=height))
        return check.offer_id
    if kind in (KIND_ACCEPT, KIND_SETTLE):
        ledger.credit(record.claimant, record.reward + record.bond)
        ledger.credit(record.client, record.deposit)
    elif kind == KIND_REJECT:
        ledger.burn(record.reward + record.deposit + record.bond)
    elif kind == KIND_FRAUD:
        ledger.credit(record.client, record.reward + record.deposit + record.bond // 2)
        ledger.burn(record.bond - record.bond // 2)
    elif kind == KIND_REFUND:
        ledger.credit(record.client, record.reward + record.deposit)
    else:  # pragma: no cover - decode admits kinds 2 to 8 only
        raise AssertionError(f"kind {kind}")
    ledger.set_record(check.offer_id, None)
    return check.offer_id
