"""The node's side of networking: ``ChainAccess`` for ``node.sync.PeerNetwork`` and the gossip hooks.

``NodeChainAccess`` answers peers from the node's chain, mempool and blob store
and takes their blocks, transactions and job announcements through the same
paths as the node's own (``Node.submit_block``, ``Node.submit_tx``). Blocks and
transactions that arrive by gossip are forwarded by the topic handlers; the
hooks here announce only what this node produced itself (its miner, its RPC).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from consensus.codec import decode_block, decode_tx, encode_block, encode_tx
from consensus.errors import BadNonce, DecodeError, InsufficientBalance, InvalidTx, PeerFault
from consensus.types import Block, Tx
from p2p.protocol import JobAnnouncement, JobResultAnnouncement, decode_job_message

from .blobs import BlobError
from .chain import CONNECTED, DUPLICATE, ORPHAN, SIDE_BRANCH
from .jobs import Job, JobError
from .mempool import MempoolError
from .chainaccess import chain_headers_after, chain_locator
from .sync import ACCEPTED, REJECTED

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger(__name__)
LOCAL_SOURCES = ("miner", "rpc")
_BLOCK_STATUS = {CONNECTED: ACCEPTED, SIDE_BRANCH: ACCEPTED, ORPHAN: "orphan", DUPLICATE: "duplicate"}


class BadJobAnnouncement(PeerFault):
    rule = "job-announcement"


class NodeChainAccess:
    """``node.sync.ChainAccess`` backed by a running ``Node``."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._fetching: set[str] = set()

    def status(self) -> tuple[bytes, int, int]:
        tip = self.node.chain.tip
        return tip.block_id, tip.height, tip.chain_work

    def locator(self) -> list[bytes]:
        return chain_locator(self.node.chain)

    def headers_after(self, locator: list[bytes], max_count: int) -> list[bytes]:
        return chain_headers_after(self.node.chain, locator, max_count)

    def has_block(self, block_id: bytes) -> bool:
        return self.node.chain.get_entry(block_id) is not None

    def get_block_bytes(self, block_id: bytes) -> bytes | None:
        block = self.node.chain.get_block(block_id)
        return None if block is None else encode_block(block)

    def get_blob(self, digest_hex: str) -> bytes | None:
        try:
            return self.node.blobs.get(digest_hex)
        except BlobError:
            return None

    async def submit_block(self, block: bytes, peer: str) -> str:
        decoded = decode_block(bytes(block))  # DecodeError is a PeerFault: the sender is punished
        result = await self.node.submit_block_checked(decoded, source=peer)
        return _BLOCK_STATUS.get(result.status, "duplicate")

    async def submit_txs(self, txs: list[bytes], peer: str) -> list[str]:
        out = []
        for raw in txs:
            try:
                tx = decode_tx(bytes(raw))
                await self.node.submit_tx(tx, source=peer)
                out.append(ACCEPTED)
            except DecodeError as e:
                out.append(f"{REJECTED}: {e}")
            except MempoolError as e:
                out.append("duplicate" if e.reason == "duplicate" else f"ignored: {e.reason}")
            except (BadNonce, InsufficientBalance) as e:
                # Nonce and balance depend on what each node has seen (races, reorgs): not a fault.
                out.append(f"ignored: {e}")
            except InvalidTx as e:
                out.append(f"{REJECTED}: {e}")
        return out

    async def on_job_announcement(self, data: bytes, peer: str) -> None:
        """A job (miners fetch its matrices and queue it) or a job's result (holders of the job take it)."""
        ann = decode_job_message(data)
        job_id = ann.job_id.hex()
        if isinstance(ann, JobResultAnnouncement):
            self._spawn_once(f"result {job_id}", self._take_result(ann, peer))
            return
        node = self.node
        if node.miner is None or not node.miner.running:
            return
        try:
            node.jobs.get(job_id)
            return  # known already
        except JobError:
            pass
        self._spawn_once(job_id, self._take_job(ann, peer))

    def _spawn_once(self, key: str, coro) -> None:
        if key in self._fetching:
            coro.close()
            return
        self._fetching.add(key)
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda _: self._fetching.discard(key))

    async def _fetch(self, digest: str, peer: str, attempts: int = 4) -> bytes | None:
        """A blob from the peer that relayed the announcement, else from any other peer; retried with back-off.

        Gossip names the relaying peer, which need not hold the blob (only the
        submitting node and miners do), and a request can time out under load.
        """
        delay = 0.5
        for _ in range(attempts):
            others = [p["id"] for p in self.node.network.peer_info() if p["id"] != peer]
            for candidate in [peer, *others]:
                try:
                    blob = await self.node.network.fetch_blob(digest, peers=[candidate])
                except Exception as e:  # noqa: BLE001 - p2p errors of every kind: ask the next peer
                    log.info("fetching blob %s from %s: %s", digest[:16], candidate, e)
                    continue
                if blob is not None:
                    return blob
            await asyncio.sleep(delay)
            delay *= 2
        return None

    async def _take_result(self, ann: JobResultAnnouncement, peer: str) -> None:
        node = self.node
        try:
            job = node.jobs.get(ann.job_id.hex())
        except JobError:
            return  # not a job we hold
        if job.status not in ("queued", "mining"):
            return
        blob = await self._fetch(ann.blob_c.hex(), peer)
        if blob is None:
            log.info("job %s: peer %s did not serve its product", job.job_id[:16], peer)
            return
        try:
            await node.run_work(node.jobs.finish_from_peer, job.job_id, blob)
            log.info("job %s: product from peer %s checked and stored", job.job_id[:16], peer)
        except JobError as e:
            log.warning("job %s: product from peer %s refused: %s", job.job_id[:16], peer, e)

    async def _take_job(self, ann: JobAnnouncement, peer: str) -> None:
        node = self.node
        try:
            hashes = []
            for digest in (ann.blob_a.hex(), ann.blob_b.hex()):
                if not node.blobs.has(digest):
                    blob = await self._fetch(digest, peer)
                    if blob is None:
                        log.info("job %s: peer %s did not serve blob %s", ann.job_id.hex()[:16], peer, digest[:16])
                        return
                    await node.run_work(node.blobs.put, blob)
                hashes.append(digest)
            job = await node.run_work(node.jobs.submit, *hashes)
            if job.job_id != ann.job_id.hex():
                log.warning("peer %s announced job %s but its matrices give %s", peer, ann.job_id.hex()[:16],
                            job.job_id[:16])
                if job.status == "queued":
                    node.jobs.cancel(job.job_id)
                return
            log.info("took job %s from peer %s", job.job_id[:16], peer)
        except (BlobError, JobError) as e:
            log.info("announced job %s not taken: %s", ann.job_id.hex()[:16], e)


def job_announcement(job: Job) -> bytes:
    m, k, n = job.shape
    return JobAnnouncement(bytes.fromhex(job.job_id), bytes.fromhex(job.a), bytes.fromhex(job.b), m, k, n).encode()


def job_result_announcement(job: Job) -> bytes:
    return JobResultAnnouncement(bytes.fromhex(job.job_id), bytes.fromhex(job.result["c"]),
                                 bytes.fromhex(job.result["c_blake3"])).encode()


def install_hooks(node: Node) -> None:
    """Announce blocks and transactions this node produced (gossip forwards everyone else's)."""

    async def on_block(block: Block, source: str) -> None:
        if source in LOCAL_SOURCES and node.network is not None:
            await node.network.announce_block(encode_block(block))

    async def on_tx(tx: Tx, source: str) -> None:
        if source in LOCAL_SOURCES and node.network is not None:
            await node.network.announce_txs([encode_tx(tx)])

    node.block_hooks.append(on_block)
    node.tx_hooks.append(on_tx)

