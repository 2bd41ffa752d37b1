"""``ChainAccess`` over a bare ``ChainService``, and the locator helpers any implementation can reuse.

``chain_locator`` and ``chain_headers_after`` answer the headers-first sync
protocol from a ``ChainService``; the daemon's ``node.netglue.NodeChainAccess``
uses them, and ``ChainServiceAccess`` is the reference implementation that the
tests and ``bench/p2p.py`` run peer networks on.
"""

from __future__ import annotations

from collections.abc import Callable

from consensus.codec import encode_block, encode_header
from consensus.errors import DecodeError
from p2p.protocol import compute_locator

from .chain import ChainService
from .peerstate import ACCEPTED, DUPLICATE, ORPHAN, REJECTED

# --- ChainAccess over a bare ChainService -----------------------------------------------------------


def chain_locator(chain: ChainService) -> list[bytes]:
    """``compute_locator`` over a ``ChainService``'s main chain."""
    return compute_locator(chain.height, lambda h: chain.get_block_id(h))  # type: ignore[return-value, arg-type]


def chain_headers_after(chain: ChainService, locator: list[bytes], max_count: int) -> list[bytes]:
    """``ChainAccess.headers_after`` over a ``ChainService``."""
    start = 0
    for block_id in locator:
        if chain.is_main_chain(block_id):
            start = chain.get_entry(block_id).height  # type: ignore[union-attr]
            break
    end = min(chain.height, start + max_count)
    out = []
    for height in range(start + 1, end + 1):
        header = chain.get_header(chain.get_block_id(height))  # type: ignore[arg-type]
        out.append(encode_header(header))  # type: ignore[arg-type]
    return out


class ChainServiceAccess:
    """``ChainAccess`` over a bare ``ChainService`` on the event loop's thread.

    The reference implementation, used by tests and benchmarks: blocks go
    straight into the chain (``"connected"`` and ``"side-branch"`` count as
    accepted); transactions go into a plain dict keyed by their bytes after they
    decode and carry our chain id; blobs come from a dict. The daemon's ``Node``
    implements ``ChainAccess`` itself (chain thread, mempool, blob store) and can
    reuse ``chain_locator`` and ``chain_headers_after``.
    """

    def __init__(self, chain: ChainService, *, blobs: dict[str, bytes] | None = None) -> None:
        self.chain = chain
        self.txs: dict[bytes, str] = {}
        """Transactions received, in arrival order, with the peer that sent each."""
        self.blobs = blobs if blobs is not None else {}
        self.jobs: list[tuple[bytes, str]] = []
        self.submitted: list[tuple[bytes, str, str]] = []
        """``(block id, result, peer)`` of every submitted block."""
        self.accept_listeners: list[Callable[[bytes], None]] = []

    def status(self) -> tuple[bytes, int, int]:
        tip = self.chain.tip
        return tip.block_id, tip.height, tip.chain_work

    def locator(self) -> list[bytes]:
        return chain_locator(self.chain)

    def headers_after(self, locator: list[bytes], max_count: int) -> list[bytes]:
        return chain_headers_after(self.chain, locator, max_count)

    def has_block(self, block_id: bytes) -> bool:
        return self.chain.get_entry(block_id) is not None

    def get_block_bytes(self, block_id: bytes) -> bytes | None:
        block = self.chain.get_block(block_id)
        return None if block is None else encode_block(block)

    def get_blob(self, digest_hex: str) -> bytes | None:
        return self.blobs.get(digest_hex)

    async def submit_block(self, block: bytes, peer: str) -> str:
        result = self.chain.submit_block(bytes(block))
        status = {"connected": ACCEPTED, "side-branch": ACCEPTED, "orphan": ORPHAN}.get(result.status, DUPLICATE)
        self.submitted.append((result.block_id, status, peer))
        accepted = [result.block_id] if status == ACCEPTED else []
        for block_id in [*accepted, *result.orphans_accepted]:
            for fn in self.accept_listeners:
                fn(block_id)
        return status

    async def submit_txs(self, txs: list[bytes], peer: str) -> list[str]:
        from consensus.codec import decode_tx

        out = []
        for raw in txs:
            if raw in self.txs:
                out.append(DUPLICATE)
                continue
            try:
                tx = decode_tx(raw)
            except DecodeError as e:
                out.append(f"{REJECTED}: {e}")
                continue
            if tx.body.chain_id != self.chain.params.chain_id:
                out.append(f"{REJECTED}: chain id {tx.body.chain_id}")
                continue
            self.txs[raw] = peer
            out.append(ACCEPTED)
        return out

    async def on_job_announcement(self, data: bytes, peer: str) -> None:
        self.jobs.append((bytes(data), peer))
