"""What the network needs from the node: ``ChainAccess``, and the outcomes it reports back.

``PeerNetwork`` (``p2p.network``) knows bytes, peers and topics; the chain,
the mempool and the job service are the node's. ``ChainAccess`` is the seam
between them: the node implements it (``node.netadapter``), tests implement it
over a bare chain. Outcomes are enums, defined once here, so a status is never
a string to parse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from consensus.forkchoice import HeaderRun
from consensus.types import Header


class Intake(StrEnum):
    """What the node did with a block or a transaction a peer sent."""

    ACCEPTED = "accepted"
    """Taken and fully validated (a block connected to the main chain; a transaction admitted): forward it."""
    STORED = "stored"
    """A block stored on a side branch, its state not checked yet: not forwarded, the sender not penalised."""
    DUPLICATE = "duplicate"
    """Already known: not forwarded; a flood of them costs the sender."""
    ORPHAN = "orphan"
    """A block whose parent is unknown: held, and the sender becomes a sync candidate."""
    IGNORED = "ignored"
    """Not usable here now but not the sender's fault: not forwarded, no charge. A transaction's nonce or
    balance race; a block whose transfers fail on state (nonce, balance) the sender could not know, or
    whose branch has too little work or forks too deep."""
    REJECTED = "rejected"
    """Invalid, and the sender could have known: not forwarded, the sender is penalised."""


@dataclass(frozen=True)
class TxOutcome:
    """One transaction's ``Intake`` and, unless accepted, why."""

    intake: Intake
    reason: str = ""
    recent: bool = False
    """For a duplicate: the node first saw it moments ago (a copy that crossed its own in flight)."""


class ChainAccess(Protocol):
    """What ``PeerNetwork`` needs from the node.

    Every method is called on the event loop's thread. ``status`` is called for
    each handshake and must answer at once; the others may wait for the chain.
    """

    def status(self) -> tuple[bytes, int, int]:
        """``(tip id, height, cumulative work)`` of the main chain."""
        ...

    async def locator(self) -> list[bytes]:
        """Block locator of the main chain: ids newest first, exponentially spaced, genesis last."""
        ...

    async def headers_after(self, locator: list[bytes], max_count: int) -> list[bytes]:
        """Encoded headers (212 bytes each) of the main-chain blocks after the newest locator
        entry that is on our main chain (after genesis if none is), oldest first, at most ``max_count``."""
        ...

    async def missing_blocks(self, ids: Sequence[bytes]) -> list[bytes]:
        """Those of ``ids`` that are not stored (main chain or side branch; orphans count as missing)."""
        ...

    async def get_blocks(self, ids: Sequence[bytes], max_bytes: int) -> list[bytes | None]:
        """Encoded blocks for the longest prefix of ``ids`` whose sizes stay under ``max_bytes``
        (at least one entry); ``None`` for a block that is not stored."""
        ...

    async def get_blob_page(self, digest_hex: str, offset: int, length: int) -> tuple[int, bytes] | None:
        """``(total size, up to length bytes from offset)`` of a stored blob (job matrix or product),
        or ``None`` if it is not stored; read without loading the whole blob."""
        ...

    async def submit_block(self, block: bytes, peer: str) -> Intake:
        """``ACCEPTED`` (fully validated, state included: on the main chain now), ``STORED`` (on a side
        branch, its state not checked), ``DUPLICATE``, ``ORPHAN`` or ``IGNORED`` (refused for a reason
        that is not the sender's fault: a fault that depends on account state, a branch with too
        little work).

        Raises ``consensus.errors.PeerFault`` when the block is invalid whatever the state (the peer is
        penalised) and any other exception when it cannot be taken now (no penalty).
        """
        ...

    async def submit_txs(self, txs: list[bytes], peer: str) -> list[TxOutcome]:
        """One outcome per transaction (``REJECTED`` ones are the peer's fault)."""
        ...

    async def on_job_announcement(self, data: bytes, peer: str) -> None:
        """A jobs-topic message (``p2p.protocol.decode_job_message`` bytes, already decoded once) from ``peer``.

        Raise ``PeerFault`` for an announcement that is wrong (penalised, not forwarded);
        any other exception is transient (not forwarded, no penalty).
        """
        ...

    async def check_orphan(self, block: bytes) -> None:
        """Check a block whose parent is unknown on its own, before it is held; raise ``PeerFault`` if it fails.

        Only what needs no parent: size (of these bytes), encoding, transaction
        count, coinbase and transaction root, a target no easier than the
        network's ``pow_limit``, and the certificate against the header's own
        target. The certificate check costs about a millisecond, so it must not
        run on the event loop.
        """
        ...

    async def check_headers(self, headers: Sequence[Header], run: HeaderRun | None) -> HeaderRun:
        """Check a page of linked headers of a branch and weigh it (``consensus.forkchoice.HeaderRun``).

        ``run`` is the answer for the page before (``None`` for the first page,
        whose first header's parent must be stored). The answer's ``verdict``
        says whether to fetch the bodies of ``fetch`` (the branch is in reach of
        our tip; the chain will store them), to ask for more headers (presync:
        nothing fetched yet), or to stop (a fork too deep, a presync too long;
        no fault). Raises ``PeerFault`` for a header invalid on its parent (the
        peer is penalised) and any other exception when the page cannot be
        judged now (a header ahead of our clock, a branch on a block found
        invalid: no penalty).
        """
        ...
