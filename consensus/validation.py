"""Block validation: a flat list of guard clauses, each raising one named error (docs/protocol.md sections 4, 8, 10).

``validate_block`` checks everything that does not need account state: size and
count limits, header linkage and height, both time rules, the expected (ASERT)
target, the coinbase, duplicate transactions, the transaction root, the exact
fee sum, the certificate (``pouw.verify`` against the expected target) and each
transfer's stateless checks (kind, chain id, memo, overflow, minimum fee,
signature). Nonces and balances are checked while the block is applied
(``consensus.state``), because each transfer sees the state left by the ones
before it.

The cheap checks come first; the certificate (about ``0.5 us * k``) and the
signatures (tens of microseconds each) come last. A job transaction's
state rules (its offer's record, the height windows, a fraud proof's paths and
tile) are checked while the block is applied (``consensus.jobmarket``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pouw.constants import PROTOCOL_VERSION
from pouw.errors import VerificationError
from pouw.verify import verify

from .codec import encode_block, encode_certificate, encode_header
from .difficulty import MEDIAN_TIME_SPAN, compute_median_time, compute_next_target
from .errors import (
    BadCertificate,
    BadCoinbase,
    BadHeaderVersion,
    BadHeight,
    BadLinkage,
    BadTarget,
    BadTxRoot,
    BlockAmountOverflow,
    BlockTooLarge,
    BlockTxInvalid,
    DuplicateTx,
    InvalidTx,
    TimeTooNew,
    TimeTooOld,
    TooManyTxs,
)
from .networks import NetworkParams
from .tx import U64_MAX, compute_tx_id, compute_tx_root, validate_tx
from .types import TX_VERSION, Block, Coinbase, Header, Tx


@dataclass(frozen=True)
class ParentInfo:
    """What validating a block needs to know about the chain below it."""

    block_id: bytes
    """Id of the parent."""
    height: int
    time: int
    """The parent's header time."""
    target: int
    """The parent's header target."""
    recent_times: tuple[int, ...]
    """Times of the parent and its ancestors, newest first, at most 11 (fewer near genesis)."""


def make_parent_info(header: Header, below: ParentInfo | None = None) -> ParentInfo:
    """``ParentInfo`` of the block with ``header``, given the ``ParentInfo`` of its own parent.

    ``below`` is ``None`` only for the genesis block.
    """
    pre = header.pre
    older = below.recent_times[: MEDIAN_TIME_SPAN - 1] if below is not None else ()
    return ParentInfo(header.block_id, pre.height, pre.time, pre.target, (pre.time, *older))


def compute_expected_target(parent: ParentInfo, params: NetworkParams) -> int:
    """The target every child of ``parent`` must have: ASERT from genesis at the parent's height and time.

    It does not depend on the child's own timestamp, so a miner can compute it
    before choosing one, and no path of earlier timestamps changes it.
    """
    return compute_next_target(parent.height, parent.time, params)


def compute_fees(block: Block) -> int:
    """Sum of the fees of the block's signed transactions, exact (the caller checks it against ``2^64 - 1``)."""
    return sum(tx.body.fee for tx in block.signed)


def validate_block(
    block: Block,
    parent: ParentInfo,
    params: NetworkParams,
    now: int,
    *,
    encoded_size: int | None = None,
    check_certificate: bool = True,
    certificate_check: Callable[[Block, int], None] | None = None,
) -> None:
    """Raise the named ``InvalidBlock`` (or ``TimeTooNew``) unless ``block`` is valid on top of ``parent``.

    ``now`` is the local clock in unix seconds. A block more than
    ``params.max_future`` ahead of it raises ``TimeTooNew``, a ``Transient``:
    the caller may retry it later and must not record it as invalid.
    ``encoded_size`` may pass the length of the bytes the block came in (saves
    re-encoding).
    ``check_certificate=False`` skips the ``pouw.verify`` call and exists only for
    tests and benchmarks that build chains without mining; shipped code never
    sets it. ``certificate_check`` replaces ``validate_certificate`` at its place
    in the order (after the cheap header checks, before any signature): a node
    passes one that also times the check; it must raise what
    ``validate_certificate`` raises.
    """
    pre = block.header.pre
    check_limits(block, encoded_size if encoded_size is not None else len(encode_block(block)), params)
    expected_target = check_header(block.header, parent, params, now)
    check_body_shape(block)
    coinbase = block.coinbase
    if coinbase.version != TX_VERSION:
        raise BadCoinbase(f"expected coinbase version {TX_VERSION}, found {coinbase.version}")
    if coinbase.height != pre.height:
        raise BadCoinbase(f"expected coinbase height {pre.height}, found {coinbase.height}")
    check_tx_root(block)
    fees = compute_fees(block)
    if fees > U64_MAX:
        raise BlockAmountOverflow(f"the fees of the block sum to {fees}, above 2^64 - 1")
    allowed = params.subsidy(pre.height) + fees
    if allowed > U64_MAX:
        raise BlockAmountOverflow(f"subsidy + fees = {allowed} is above 2^64 - 1")
    if coinbase.amount > allowed:
        raise BadCoinbase(f"expected amount <= subsidy + fees = {allowed}, found {coinbase.amount}")
    if check_certificate:
        (certificate_check or validate_certificate)(block, expected_target)
    for index, tx in enumerate(block.signed, start=1):
        try:
            validate_tx(tx, params)
        except InvalidTx as e:
            raise BlockTxInvalid(index, e) from e


def check_limits(block: Block, size: int, params: NetworkParams) -> None:
    """The block's encoded ``size`` and transaction count are within the network's limits."""
    if size > params.max_block_size:
        raise BlockTooLarge(f"expected at most {params.max_block_size} bytes, found {size}")
    if len(block.transactions) > params.max_tx_count:
        raise TooManyTxs(f"expected at most {params.max_tx_count} transactions, found {len(block.transactions)}")


def check_body_shape(block: Block) -> None:
    """A certificate, a coinbase first and only signed transactions after it."""
    if block.certificate is None:
        raise BadCertificate("expected a certificate, found none", "missing")
    if not block.transactions or not isinstance(block.transactions[0], Coinbase):
        raise BadCoinbase("expected a coinbase as the first transaction")
    if any(not isinstance(tx, Tx) for tx in block.transactions[1:]):
        raise BadCoinbase("expected only signed transactions after the coinbase")


def check_tx_root(block: Block) -> None:
    """Distinct transactions whose root is the header's ``tx_root`` (it binds the body to the header)."""
    tx_ids = [compute_tx_id(tx) for tx in block.transactions]
    if len(set(tx_ids)) != len(tx_ids):
        raise DuplicateTx(f"expected distinct transactions, found {len(tx_ids) - len(set(tx_ids))} repeated")
    tx_root = compute_tx_root(tx_ids)
    if block.header.pre.tx_root != tx_root:
        raise BadTxRoot(f"expected {tx_root.hex()}, found {block.header.pre.tx_root.hex()}")


def check_header(header: Header, parent: ParentInfo, params: NetworkParams, now: int) -> int:
    """Raise unless ``header`` can head a child of ``parent`` (version, height, linkage, both time rules,
    target); return the expected target.

    These are ``validate_block``'s header rules, and headers-first sync checks a
    peer's headers with them before any body is fetched. A header that fails one
    is invalid whatever its body (a ``PeerFault``), except ``TimeTooNew`` (a
    ``Transient``: it may be fine later). The certificate needs the body.
    """
    pre = header.pre
    if pre.version != PROTOCOL_VERSION:
        raise BadHeaderVersion(f"expected {PROTOCOL_VERSION}, found {pre.version}")
    if pre.height != parent.height + 1:
        raise BadHeight(f"expected {parent.height + 1}, found {pre.height}")
    if pre.prev_id != parent.block_id:
        raise BadLinkage(f"expected prev_id {parent.block_id.hex()}, found {pre.prev_id.hex()}")
    median = compute_median_time(parent.recent_times[:MEDIAN_TIME_SPAN])
    if pre.time <= median:
        raise TimeTooOld(f"expected time > {median} (median of the previous times), found {pre.time}")
    if pre.time > now + params.max_future:
        raise TimeTooNew(f"expected time <= {now + params.max_future} (clock + {params.max_future} s), "
                         f"found {pre.time}")
    expected_target = compute_expected_target(parent, params)
    if pre.target != expected_target:
        raise BadTarget(f"expected {expected_target:#x}, found {pre.target:#x}")
    return expected_target


def validate_certificate(block: Block, expected_target: int) -> None:
    """``pouw.verify`` of the header and certificate against ``expected_target``; raise ``BadCertificate``."""
    try:
        verify(encode_header(block.header), encode_certificate(block.certificate), expected_target)
    except VerificationError as e:
        raise BadCertificate(str(e), e.rule) from e
