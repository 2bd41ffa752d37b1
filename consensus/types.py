"""The chain's data types: transfers, job transactions, coinbases, blocks, accounts and job records
(docs/protocol.md sections 10 and 11).

Plain frozen dataclasses with no behaviour beyond small derived properties;
their byte layouts live in ``consensus.codec`` and nowhere else. Headers and
certificates are the protocol layer's own types (``pouw.header.Header``,
``pouw.certificate.Certificate``), re-exported here so callers import every
chain type from one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from pouw.certificate import Certificate
from pouw.header import Header, HeaderPre

__all__ = [
    "Account", "Block", "Certificate", "ClaimPayload", "Coinbase", "FraudPayload", "Header", "HeaderPre",
    "JobRecord", "JobTxBody", "OfferPayload", "Tx", "TxBody",
]

TX_VERSION = 1
"""``version`` of every coinbase (and genesis allocation record) of consensus v1."""

TX_KIND_TRANSFER = 1
"""``kind`` (the first byte) of a transfer."""

JOB_TX_KINDS = ("offer", "claim", "accept", "reject", "settle", "refund", "fraud")
"""Names of the job-market kinds 2 to 8 (section 11), in kind order."""

JOB_TX_KIND_FIRST = 2
"""Kind of the first job transaction (offer); ``JOB_TX_KIND_FIRST + i`` is ``JOB_TX_KINDS[i]``."""

KIND_OFFER, KIND_CLAIM, KIND_ACCEPT, KIND_REJECT, KIND_SETTLE, KIND_REFUND, KIND_FRAUD = range(2, 9)

JOB_KIND_NAMES = {JOB_TX_KIND_FIRST + i: name for i, name in enumerate(JOB_TX_KINDS)}
"""Job kind -> its name (``offer`` ... ``fraud``): what RPC, the explorer and the wallet call each kind."""

RECORD_OPEN = 1
"""A job record that waits for a claim (section 11)."""
RECORD_CLAIMED = 2
"""A job record with a claimant, in or past its challenge window."""

ADDRESS_SIZE = 20
PUBKEY_SIZE = 32
SIGNATURE_SIZE = 64


@dataclass(frozen=True)
class TxBody:
    """The signed part of a transfer (everything but the signature)."""

    kind: int
    """The first byte: what the transaction is; 1 for a transfer (``TX_KIND_TRANSFER``)."""
    chain_id: int
    """Network the transfer is meant for (u32); stops replays across networks."""
    nonce: int
    """The sender's transfer count before this one (u64): the first transfer has nonce 0."""
    pubkey: bytes
    """Sender's Ed25519 public key (32 bytes); the sender's address is derived from it."""
    to: bytes
    """Recipient address (20 bytes)."""
    amount: int
    """Base units moved to ``to`` (u64)."""
    fee: int
    """Base units paid to the block's miner (u64)."""
    memo: bytes = b""
    """Free bytes, at most the network's ``max_memo`` (256)."""


@dataclass(frozen=True)
class OfferPayload:
    """What an offer (kind 2) commits to: the job's shape and roots, and the amounts at stake."""

    m: int
    k: int
    n: int
    """The job's dimensions as submitted (unpadded), each u32."""
    root_a: bytes
    root_b: bytes
    """Section 3 roots of the zero-padded ``A`` and ``B`` (32 bytes each)."""
    reward: int
    """Paid to the claimant whose product is accepted or settles (u64)."""
    deposit: int
    """Returned to the client when the job ends well; burned on a reject (u64, ``>= bond``)."""
    bond: int
    """What a claimant puts up (u64); half of it goes to the client on a fraud proof."""
    deadline: int
    """Last height at which a claim may be included (u64)."""


@dataclass(frozen=True)
class ClaimPayload:
    """A claim (kind 3): the claimant's commitment to its product."""

    root_c: bytes
    """Root of the 16x16 tiles of the padded product (32 bytes, ``pouw.tiles``)."""


@dataclass(frozen=True)
class FraudPayload:
    """A fraud proof (kind 8): one tile of the claimed product and what recomputes it."""

    tile_i: int
    tile_j: int
    """Tile row and column (u32 each)."""
    tile: bytes
    """The claimed tile: 16x16 signed int32 LE, row-major (1024 bytes)."""
    path_c: tuple[bytes, ...]
    """Inclusion path of the tile under the claim's ``root_C``."""
    a_blk: bytes
    """Rows ``16I .. 16I+15`` of the padded ``A`` (``16 * k_p`` bytes)."""
    path_a: tuple[bytes, ...]
    bt_blk: bytes
    """Columns ``16J .. 16J+15`` of the padded ``B``, as rows of ``B.T`` (``16 * k_p`` bytes)."""
    path_b: tuple[bytes, ...]


JobPayload = OfferPayload | ClaimPayload | FraudPayload | None
"""A job transaction's payload; accept, reject, settle and refund carry none."""


@dataclass(frozen=True)
class JobTxBody:
    """The signed part of a job transaction (kinds 2 to 8, section 11)."""

    kind: int
    chain_id: int
    nonce: int
    """The sender's next nonce: job transactions and transfers share one sequence per sender."""
    pubkey: bytes
    fee: int
    id: bytes
    """The job id (offer) or the offer id (every other kind), 32 bytes."""
    payload: JobPayload


@dataclass(frozen=True)
class Tx:
    """A signed transaction: ``TxBody || signature`` (a transfer) or ``JobTxBody || signature``."""

    body: TxBody | JobTxBody
    signature: bytes
    """Ed25519 signature (64 bytes) over ``HK(K("sighash"), body)``."""

    @property
    def is_transfer(self) -> bool:
        """True for a transfer (kind 1), false for a job transaction."""
        return isinstance(self.body, TxBody)


@dataclass(frozen=True)
class Coinbase:
    """The first transaction of a block: pays subsidy and fees to the miner; no signature.

    The genesis block uses the same record for each of its allocations.
    """

    version: int
    """Coinbase format version, 1."""
    height: int
    """Height of the block that carries it (makes every coinbase id unique)."""
    to: bytes
    """Recipient address (20 bytes)."""
    amount: int
    """Base units created (u64); at most ``subsidy(height) + sum(fees)``."""


Transaction = Coinbase | Tx


@dataclass(frozen=True)
class Block:
    """Header, certificate and transactions (coinbase first).

    The genesis block (height 0) has no certificate (``certificate is None``,
    encoded as zero bytes) and every one of its transactions is a ``Coinbase``
    record: the network's allocations. Every other block has a certificate, a
    ``Coinbase`` first and ``Tx`` transfers after it.
    """

    header: Header
    certificate: Certificate | None
    transactions: tuple[Transaction, ...]

    @property
    def height(self) -> int:
        """The header's height."""
        return self.header.pre.height

    @property
    def prev_id(self) -> bytes:
        """The parent's id."""
        return self.header.pre.prev_id

    @property
    def coinbase(self) -> Coinbase:
        """The first transaction."""
        first = self.transactions[0]
        assert isinstance(first, Coinbase)
        return first

    @property
    def signed(self) -> tuple[Tx, ...]:
        """Every signed transaction (transfers and job transactions), in block order."""
        return tuple(t for t in self.transactions[1:] if isinstance(t, Tx))


@dataclass(frozen=True)
class Account:
    """State of one address."""

    balance: int = 0
    """Base units held (u64)."""
    nonce: int = 0
    """Number of transactions sent so far; the next one must carry this nonce."""


@dataclass(frozen=True)
class JobRecord:
    """The on-chain state of one paid job offer, keyed by its offer id (section 11).

    Created by an offer, changed by a claim, deleted when final (accept,
    settle, reject, fraud, refund); a block's undo data restores it.
    """

    status: int
    """``RECORD_OPEN`` or ``RECORD_CLAIMED``."""
    client: bytes
    """Address of the offer's sender (20 bytes)."""
    job_id: bytes
    m: int
    k: int
    n: int
    root_a: bytes
    root_b: bytes
    reward: int
    deposit: int
    bond: int
    deadline: int
    claimant: bytes = bytes(20)
    """Address of the claim's sender; zero while open."""
    root_c: bytes = bytes(32)
    """The claim's product root; zero while open."""
    claim_height: int = 0
    """Height of the block that carries the claim; 0 while open."""

    @property
    def escrow(self) -> int:
        """Base units the record holds: ``reward + deposit``, plus the bond once claimed."""
        return self.reward + self.deposit + (self.bond if self.status == RECORD_CLAIMED else 0)
