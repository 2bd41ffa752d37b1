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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from consensus.codec import decode_block, decode_tx, encode_block, encode_tx
from consensus.errors import BadNonce, DecodeError, InsufficientBalance, InvalidTx, PeerFault
from consensus.types import Block, Tx
from p2p.protocol import JobAnnouncement, JobResultAnnouncement, decode_job_message

from .blobs import BlobError
from .chain import CONNECTED, DUPLICATE, ORPHAN, SIDE_BRANCH
from .jobs import DONE, QUEUED, Job, JobError
from .mempool import MempoolError
from .chainaccess import chain_headers_after, chain_locator
from .peerstate import ACCEPTED, REJECTED

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger(__name__)
LOCAL_SOURCES = ("miner", "rpc")
_BLOCK_STATUS = {CONNECTED: ACCEPTED, SIDE_BRANCH: ACCEPTED, ORPHAN: "orphan", DUPLICATE: "duplicate"}


class BadJobAnnouncement(PeerFault):
    rule = "job-announcement"


class JobRelay:
    """Keeps jobs moving when a gossip message or a fetch is lost.

    Gossip is best effort and a blob request can time out under load, so one
    announcement is not enough: a node re-announces each job it holds queued and
    does not mine itself, after 10 s, then with a doubling delay up to a minute,
    until the job is done or cancelled; and a node that holds a job's product
    answers an announcement of that job by announcing the result again (at most
    once per ``result_gap`` seconds per job), which is how a submitter that
    missed the first result announcement, or failed to fetch the product, gets
    it later.
    """

    def __init__(self, first_retry: float = 10.0, max_retry: float = 60.0, result_gap: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.first_retry = first_retry
        self.max_retry = max_retry
        self.result_gap = result_gap
        self.clock = clock
        self._due: dict[str, tuple[float, float, int]] = {}
        self._result_sent: dict[str, tuple[float, int]] = {}

    def due(self, waiting: list[str]) -> list[tuple[str, int]]:
        """Of the jobs ``waiting`` (queued here, not mined here), those to announce again now, with their round."""
        now = self.clock()
        out = []
        for job_id in waiting:
            due, delay, rounds = self._due.get(job_id, (now + self.first_retry, self.first_retry, 0))
            if due <= now:
                rounds += 1
                out.append((job_id, rounds))
                delay = min(2 * delay, self.max_retry)
                due = now + delay
            self._due[job_id] = (due, delay, rounds)
        for job_id in set(self._due) - set(waiting):
            del self._due[job_id]
        return out

    def resend_result(self, job_id: str) -> int | None:
        """The round of a result announcement to send again now, or None if one went out too recently."""
        now = self.clock()
        last, rounds = self._result_sent.get(job_id, (now - self.result_gap, 0))
        if now - last < self.result_gap:
            return None
        self._result_sent[job_id] = (now, rounds + 1)
        if len(self._result_sent) > 4096:  # forget the oldest
            for old in sorted(self._result_sent, key=lambda j: self._result_sent[j][0])[:1024]:
                del self._result_sent[old]
        return rounds + 1


class NodeChainAccess:
    """``node.sync.ChainAccess`` backed by a running ``Node``."""

    def __init__(self, node: Node, relay: JobRelay | None = None) -> None:
        self.node = node
        self.relay = relay or JobRelay()
        self._fetching: set[str] = set()

    async def relay_jobs(self, tick: float = 2.0) -> None:
        """Re-announce waiting jobs on the relay's schedule, until cancelled."""
        node = self.node
        while True:
            await asyncio.sleep(tick)
            if node.miner is not None and node.miner.running:
                waiting = []  # this node's miner takes its own queue
            else:
                waiting = [job.job_id for job in node.jobs.list(QUEUED)]
            for job_id, round in self.relay.due(waiting):
                try:
                    job = node.jobs.get(job_id)
                    await node.network.announce_job(job_announcement(job, round))
                    log.info("job %s: announced again (no result yet)", job_id[:16])
                except Exception as e:  # noqa: BLE001 - a failed announcement is retried on the next round
                    log.info("job %s: announcing again failed: %s", job_id[:16], e)

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
        try:
            job = node.jobs.get(job_id)
        except JobError:
            job = None
        if job is not None:
            # Known already. Announced again means somebody still waits for the product: if this
            # node has it, say so again.
            round = self.relay.resend_result(job_id) if job.status == DONE else None
            if round is not None:
                await node.network.announce_job(job_result_announcement(job, round))
                log.info("job %s: result announced again for peer %s", job_id[:16], peer)
            return
        if node.miner is None or not node.miner.running:
            return
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


def job_announcement(job: Job, round: int = 0) -> bytes:
    m, k, n = job.shape
    return JobAnnouncement(bytes.fromhex(job.job_id), bytes.fromhex(job.a), bytes.fromhex(job.b), m, k, n,
                           round & 0xFFFFFFFF).encode()


def job_result_announcement(job: Job, round: int = 0) -> bytes:
    return JobResultAnnouncement(bytes.fromhex(job.job_id), bytes.fromhex(job.result["c"]),
                                 bytes.fromhex(job.result["c_blake3"]), round & 0xFFFFFFFF).encode()


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

