"""Errors of the consensus layer: one hierarchy, peer faults kept apart from transient problems.

``ConsensusError`` is the root. Every concrete error carries a short stable
``rule`` (``"linkage"``, ``"tx-signature"``, ...) that tests, logs and peers can
match on; the message says what was expected and what was found.

- ``PeerFault``: the data itself is wrong and will never become valid. A node
  rejects it and may penalise the peer that sent it (bad bytes, bad signature,
  wrong target, coinbase too large, ...).
- ``Transient``: the data may become valid later or is merely not usable yet
  (a block from too far in the future, a block whose parent is unknown). A node
  ignores it for now, without penalty.

Foreign exceptions (``pouw.errors.VerificationError``, ``cryptography``'s
``InvalidSignature``, ``pouw.errors.DecodeError``) are translated at this
boundary with ``raise ... from``.
"""

from __future__ import annotations


class ConsensusError(Exception):
    """Root of every error raised by ``consensus``."""

    rule = "consensus"
    """Short stable identifier of the violated rule."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.rule}: {message}")
        self.detail = message


class PeerFault(ConsensusError):
    """The data is invalid and will stay invalid: reject it; the sender is at fault."""

    rule = "peer-fault"


class Transient(ConsensusError):
    """The data cannot be used now but may be later: ignore it, do not penalise the sender."""

    rule = "transient"


# --- bytes ------------------------------------------------------------------------------------


class DecodeError(PeerFault, ValueError):
    """Bytes that do not decode to the expected structure (the only error a decoder raises)."""

    rule = "decode"


class AddressError(ConsensusError, ValueError):
    """A bech32m address string that is malformed, has a bad checksum or the wrong prefix.

    Not a ``PeerFault``: addresses come from users, not from peers.
    """

    rule = "address"


class KeyDerivationError(ConsensusError, ValueError):
    """A mnemonic, seed or derivation path that cannot be used."""

    rule = "key-derivation"


# --- transactions -----------------------------------------------------------------------------


class InvalidTx(PeerFault):
    """A transaction that breaks a rule of docs/protocol.md section 10 or 11."""

    rule = "tx"


class BadTxKind(InvalidTx, DecodeError):
    """The first byte of the transaction is no kind of docs/protocol.md section 10 (1 to 8).

    Also a ``DecodeError``: the decoder meets it first, and bytes of an unknown
    kind have no layout to decode.
    """

    rule = "tx-kind"


class BadJobOffer(InvalidTx):
    """An offer whose own fields break section 11 (job id, sizes, reward, bond, deposit): wrong anywhere."""

    rule = "job-offer"


class BadFraudProof(InvalidTx):
    """A fraud proof whose own shape is wrong (tile size, blocks of unequal length): wrong anywhere."""

    rule = "job-fraud-shape"


class JobStateFault(InvalidTx):
    """A job transaction that the offer's record (or its absence) does not allow at this height.

    Whether it holds depends on the chain a node has seen (a claim racing
    another, a reorg, a window closing), so a relay of one is never a fault
    that costs the peer anything; inside a block it makes the block invalid
    like any other state fault.
    """

    rule = "job-state"


class NoJobRecord(JobStateFault):
    """No live record for the offer id (never offered on this chain, or final already)."""

    rule = "job-record"


class JobStatusWrong(JobStateFault):
    """The record is not in the status the transaction needs (a claim of a claimed offer, ...)."""

    rule = "job-status"


class JobWindowWrong(JobStateFault):
    """The height is outside the transaction's window (deadline, challenge window ``W``)."""

    rule = "job-window"


class JobSenderWrong(JobStateFault):
    """Only the offer's client may send this kind (accept, reject, refund)."""

    rule = "job-sender"


class FraudNotProven(JobStateFault):
    """A fraud proof whose paths do not reproduce the record's roots, or whose tile is right."""

    rule = "job-fraud"


class WrongChainId(InvalidTx):
    """The transfer is for another network."""

    rule = "tx-chain-id"


class MemoTooLong(InvalidTx):
    """The memo is longer than the network's ``max_memo``."""

    rule = "tx-memo-size"


class AmountOverflow(InvalidTx):
    """``amount + fee`` (or a balance after a credit) does not fit in u64."""

    rule = "tx-overflow"


class FeeTooLow(InvalidTx):
    """The fee is below ``min_fee_per_byte * len(Tx)``: the rule that keeps unfunded keys from creating state."""

    rule = "tx-fee"


class BadSignature(InvalidTx):
    """The Ed25519 signature does not verify over the sighash with the body's public key."""

    rule = "tx-signature"


class BadNonce(InvalidTx):
    """The nonce is not the sender's next nonce.

    ``expected`` and ``found`` let a mempool tell a future nonce (keep and wait)
    from a stale one (drop).
    """

    rule = "tx-nonce"

    def __init__(self, message: str, expected: int = 0, found: int = 0) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found


class InsufficientBalance(InvalidTx):
    """The sender's balance is below ``amount + fee``."""

    rule = "tx-balance"


# --- blocks -----------------------------------------------------------------------------------


class InvalidBlock(PeerFault):
    """A block that breaks a rule of docs/protocol.md sections 4, 8 or 10."""

    rule = "block"


class BlockTooLarge(InvalidBlock):
    """The encoded block exceeds the network's ``max_block_size``."""

    rule = "block-size"


class TooManyTxs(InvalidBlock):
    """The block holds more than ``max_tx_count`` transactions."""

    rule = "block-tx-count"


class BadHeaderVersion(InvalidBlock):
    """The header's ``version`` is not 1."""

    rule = "header-version"


class BadHeight(InvalidBlock):
    """``height`` is not the parent's height plus one."""

    rule = "height"


class BadLinkage(InvalidBlock):
    """``prev_id`` is not the parent's id (or a second genesis block)."""

    rule = "linkage"


class TimeTooOld(InvalidBlock):
    """``time`` is not above the median of the previous 11 times."""

    rule = "time-median"


class BadTarget(InvalidBlock):
    """``target`` differs from the ASERT target computed from the parent's height and time."""

    rule = "target"


class BadCertificate(InvalidBlock):
    """The certificate fails ``pouw.verify``; ``pouw_rule`` names the docs/protocol.md section 8 rule."""

    rule = "certificate"

    def __init__(self, message: str, pouw_rule: str = "") -> None:
        super().__init__(message)
        self.pouw_rule = pouw_rule


class BadCoinbase(InvalidBlock):
    """The coinbase has the wrong version or height, or pays more than subsidy plus fees."""

    rule = "coinbase"


class BlockAmountOverflow(InvalidBlock):
    """The sum of the block's fees, or subsidy plus fees, is above ``2^64 - 1`` (amounts never wrap)."""

    rule = "block-overflow"


class BadTxRoot(InvalidBlock):
    """``tx_root`` is not the Merkle root of the block's transaction ids."""

    rule = "tx-root"


class DuplicateTx(InvalidBlock):
    """The same transaction appears twice in the block."""

    rule = "duplicate-tx"


class BlockTxInvalid(InvalidBlock):
    """One transfer of the block is invalid; ``index`` is its position (coinbase = 0), ``cause`` the error."""

    rule = "block-tx"

    def __init__(self, index: int, cause: InvalidTx) -> None:
        super().__init__(f"transaction {index}: {cause}")
        self.index = index
        self.cause = cause


class AncestorInvalid(InvalidBlock):
    """The block descends from a block already found invalid."""

    rule = "ancestor-invalid"


class TimeTooNew(Transient):
    """``time`` is more than ``max_future`` ahead of the local clock; it may be fine later (the chain retries it)."""

    rule = "time-future"


class UnknownParent(Transient):
    """The parent block is not known (yet): the block is an orphan."""

    rule = "unknown-parent"
