"""``ChainServiceAccess``: ``p2p.access.ChainAccess`` over a bare ``ChainService``, for tests and benchmarks.

Blocks take the production path: decoded from the bytes a peer sent and
submitted with their encoded size, exactly as ``node.netadapter.NetAdapter``
does, and the reads are the same functions the node runs on its chain thread
(here on the loop's thread: nothing else touches this chain). Transactions go
into a plain dict keyed by their bytes once they decode and carry our chain id;
blobs come from a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from consensus.codec import decode_block, decode_tx
from consensus.errors import DecodeError
from consensus.forkchoice import HeaderRun
from consensus.types import Header
from node.chain import ChainService
from node.errors import BlockStateInvalid
from node.netadapter import chain_blocks, chain_headers_after, chain_locator, check_orphan_block, intake_of
from p2p.access import Intake, TxOutcome


class ChainServiceAccess:
    """``ChainAccess`` over a bare ``ChainService`` on the event loop's thread."""

    def __init__(self, chain: ChainService, *, blobs: dict[str, bytes] | None = None) -> None:
        self.chain = chain
        self.txs: dict[bytes, str] = {}
        """Transactions received, in arrival order, with the peer that sent each."""
        self.blobs = blobs if blobs is not None else {}
        self.jobs: list[tuple[bytes, str]] = []
        self.submitted: list[tuple[bytes, Intake, str]] = []
        """``(block id, result, peer)`` of every submitted block."""
        self.accept_listeners: list[Callable[[bytes], None]] = []

    def status(self) -> tuple[bytes, int, int]:
        tip = self.chain.tip
        return tip.block_id, tip.height, tip.chain_work

    async def locator(self) -> list[bytes]:
        return chain_locator(self.chain)

    async def headers_after(self, locator: list[bytes], max_count: int) -> list[bytes]:
        return chain_headers_after(self.chain, locator, max_count)

    async def missing_blocks(self, ids: Sequence[bytes]) -> list[bytes]:
        return [i for i in ids if self.chain.get_entry(i) is None]

    async def get_blocks(self, ids: Sequence[bytes], max_bytes: int) -> list[bytes | None]:
        return chain_blocks(self.chain, ids, max_bytes)

    async def get_blob_page(self, digest_hex: str, offset: int, length: int) -> tuple[int, bytes] | None:
        blob = self.blobs.get(digest_hex)
        return None if blob is None else (len(blob), blob[offset:offset + length])

    async def submit_block(self, block: bytes, peer: str) -> Intake:
        try:
            result = self.chain.submit_block(decode_block(bytes(block)), len(block), source=peer)
        except BlockStateInvalid:  # as the node's adapter does: a state fault is not the sender's
            self.submitted.append((decode_block(bytes(block)).header.block_id, Intake.IGNORED, peer))
            return Intake.IGNORED
        status = intake_of(result)
        self.submitted.append((result.block_id, status, peer))
        accepted = [result.block_id] if status == Intake.ACCEPTED else []
        for block_id in [*accepted, *result.orphans_accepted]:
            for fn in self.accept_listeners:
                fn(block_id)
        return status

    async def submit_txs(self, txs: list[bytes], peer: str) -> list[TxOutcome]:
        out = []
        for raw in txs:
            if raw in self.txs:
                out.append(TxOutcome(Intake.DUPLICATE))
                continue
            try:
                tx = decode_tx(raw)
            except DecodeError as e:
                out.append(TxOutcome(Intake.REJECTED, str(e)))
                continue
            if tx.body.chain_id != self.chain.params.chain_id:
                out.append(TxOutcome(Intake.REJECTED, f"chain id {tx.body.chain_id}"))
                continue
            self.txs[raw] = peer
            out.append(TxOutcome(Intake.ACCEPTED))
        return out

    async def on_job_announcement(self, data: bytes, peer: str) -> None:
        self.jobs.append((bytes(data), peer))

    async def check_orphan(self, block: bytes) -> None:
        """``node.netadapter.check_orphan_block``, the certificate checked only if this chain checks them."""
        check_orphan_block(bytes(block), self.chain.params, check_certificate=self.chain._check_certificates)

    async def check_headers(self, headers: Sequence[Header], run: HeaderRun | None) -> HeaderRun:
        return self.chain.check_headers(headers, run)
