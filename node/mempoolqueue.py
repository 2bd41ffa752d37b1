"""The mempool's records: an admitted transaction (``Entry``, with ``JobInfo`` for a job transaction),
one sender's queue, and refusals."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from consensus.address import compute_address
from consensus.types import JobRecord, Tx


class MempoolError(Exception):
    """A transfer was refused; ``reason`` is a short stable identifier.

    Reasons: ``duplicate``, ``replacement-fee-too-low``, ``sender-limit``,
    ``mempool-full``, ``offer-busy`` (another transaction for the same offer
    is pending), ``job-limit`` (the pending job transactions' count or bytes).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class JobInfo:
    """What admission found about a job transaction; re-checked when its record or its height window changes.

    Mutable: a tip change that re-checks the transaction and finds it still
    valid stores the record and window it was checked against now.
    """

    offer_id: bytes
    """The offer it acts on (for an offer: the id it will create)."""
    slot: bool
    """True for every kind but an offer: it holds the offer's one pending slot."""
    record: JobRecord | None
    """The record it was checked against (``None`` for an offer)."""
    lo: int
    hi: int
    """Heights at which its row condition holds for ``record`` (inclusive)."""


@dataclass(frozen=True)
class Entry:
    tx: Tx
    tx_id: bytes
    sender: bytes
    size: int
    time: float
    """When the node first saw it (unix seconds), for RPC display."""
    cost: int
    """What it takes from the sender's balance, found at admission: ``fee + amount`` for a transfer,
    ``fee + debit`` for a job transaction (an offer's ``reward + deposit``, a claim's bond, else 0)."""
    job: JobInfo | None = None
    """For a job transaction, what it acts on; ``None`` for a transfer."""

    @property
    def fee(self) -> int:
        return self.tx.body.fee

    @property
    def nonce(self) -> int:
        return self.tx.body.nonce


def rate_key(e: Entry) -> int:
    """An integer that orders entries exactly by fee rate (``fee / size``).

    Two different rates of sizes below 2**32 differ by at least
    ``1 / (size_a * size_b)``, which the 64 fraction bits keep apart.
    """
    return (e.fee << 64) // e.size


@lru_cache(maxsize=1 << 16)
def address_of(pubkey: bytes) -> bytes:
    """A sender's address from its public key (cached: blocks name pending senders again and again)."""
    return compute_address(pubkey)


class SenderQueue:
    """One sender's pending transfers: nonces ``first .. first + len - 1``, and their total cost."""

    __slots__ = ("first", "entries", "spent")

    def __init__(self, first: int) -> None:
        self.first = first
        self.entries: dict[int, Entry] = {}
        self.spent = 0
        """Sum of ``Entry.cost`` over ``entries``."""

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def next_nonce(self) -> int:
        return self.first + len(self.entries)

    def tail(self) -> Entry:
        return self.entries[self.first + len(self.entries) - 1]


@dataclass
class TipChange:
    """What a tip change did to one sender, kept until the sender is settled."""

    mined: dict[int, Tx] = field(default_factory=dict)
    returned: list[Tx] = field(default_factory=list)
