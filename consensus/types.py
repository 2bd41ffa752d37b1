"""The chain's data types: transfers, coinbases, blocks and accounts (docs/protocol.md section 10).

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

__all__ = ["Account", "Block", "Certificate", "Coinbase", "Header", "HeaderPre", "Tx", "TxBody"]

TX_VERSION = 1
"""``version`` of every coinbase (and genesis allocation record) of consensus v1."""

TX_KIND_TRANSFER = 1
"""``kind`` (the first byte) of a transfer."""

JOB_TX_KINDS = ("offer", "claim", "accept", "reject", "settle", "refund", "fraud")
"""Names of the job-market kinds 2 to 8 (section 11), in kind order; none is valid before the job market."""

JOB_TX_KIND_FIRST = 2
"""Kind of the first job transaction (offer); ``JOB_TX_KIND_FIRST + i`` is ``JOB_TX_KINDS[i]``."""

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
class Tx:
    """A signed transfer: ``TxBody || signature``."""

    body: TxBody
    signature: bytes
    """Ed25519 signature (64 bytes) over ``HK(K("sighash"), TxBody)``."""


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
    def transfers(self) -> tuple[Tx, ...]:
        """Every transaction after the coinbase that is a signed transfer."""
        return tuple(t for t in self.transactions[1:] if isinstance(t, Tx))


@dataclass(frozen=True)
class Account:
    """State of one address."""

    balance: int = 0
    """Base units held (u64)."""
    nonce: int = 0
    """Number of transfers sent so far; the next transfer must carry this nonce."""
