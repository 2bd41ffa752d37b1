"""The node's side of networking: ``p2p.access.ChainAccess`` over the chain handle, and the job relay.

``NetAdapter`` answers peers from the chain (through the chain handle: every
read runs on the chain thread), the mempool and the blob store, and takes their
blocks, transactions and job announcements through the same paths as the
node's own (``ChainHandle.submit_block``, ``TxIntake.submit``). Block statuses
are translated to ``p2p.access.Intake`` here, once.

Blocks and transactions that arrive by gossip are forwarded by the network's
topic handlers; the adapter announces only what this node produced itself
(its miner, its RPC), on hearing ``BlockAccepted``, ``TxAdmitted`` and
``JobChanged`` events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Executor
from typing import Any

from consensus.codec import decode_block, decode_tx, encode_block, encode_header, encode_tx
from consensus.errors import BadNonce, DecodeError, InsufficientBalance, InvalidTx
from p2p.access import Intake, TxOutcome
from p2p.network import PeerNetwork
from p2p.protocol import JobAnnouncement, JobResultAnnouncement, blocks_page, compute_locator, decode_job_message

from .blobs import BlobError, BlobStore
from .chain import BlockStatus, ChainService
from .chainhandle import ChainHandle
from .events import LOCAL_SOURCES, BlockAccepted, Events, JobChanged, TxAdmitted
from .jobrelay import JobRelay
from .jobs import DONE, QUEUED, WAITING, Job, JobError, JobService
from .mempool import MempoolError
from .txintake import TxIntake

log = logging.getLogger(__name__)
INTAKE_OF: dict[BlockStatus, Intake] = {
    BlockStatus.CONNECTED: Intake.ACCEPTED, BlockStatus.SIDE_BRANCH: Intake.ACCEPTED,
    BlockStatus.ORPHAN: Intake.ORPHAN, BlockStatus.DUPLICATE: Intake.DUPLICATE,
}
"""The one translation of the chain's block statuses into what the network acts on."""


def chain_locator(chain: ChainService) -> list[bytes]:
    """``compute_locator`` over a ``ChainService``'s main chain (call it on the chain thread)."""
    return compute_locator(chain.height, _main_id(chain))


def chain_headers_after(chain: ChainService, locator: list[bytes], max_count: int) -> list[bytes]:
    """``ChainAccess.headers_after`` over a ``ChainService`` (call it on the chain thread)."""
    start = 0
    for block_id in locator:
        entry = chain.get_entry(block_id)
        if entry is not None and chain.is_main_chain(block_id):
            start = entry.height
            break
    get_id = _main_id(chain)
    out = []
    for height in range(start + 1, min(chain.height, start + max_count) + 1):
        header = chain.get_header(get_id(height))
        if header is None:
            raise LookupError(f"main-chain block at height {height} has no header record")
        out.append(encode_header(header))
    return out


def chain_blocks(chain: ChainService, ids: Sequence[bytes], max_bytes: int) -> list[bytes | None]:
    """``ChainAccess.get_blocks`` over a ``ChainService`` (call it on the chain thread)."""
    def encoded(block_id: bytes) -> bytes | None:
        block = chain.get_block(block_id)
        return None if block is None else encode_block(block)

    return blocks_page(ids, encoded, max_bytes)


def _main_id(chain: ChainService) -> Callable[[int], bytes]:
    def get(height: int) -> bytes:
        block_id = chain.get_block_id(height)
        if block_id is None:
            raise LookupError(f"no main-chain block at height {height}")
        return block_id

    return get


class NetAdapter:
    """``ChainAccess`` for the node's ``PeerNetwork``, the job relay, and the announcements of local data.

    ``attach(network)`` once the network exists; ``run_relay()`` re-announces
    waiting jobs until cancelled.
    """

    def __init__(self, chain: ChainHandle, txs: TxIntake, blobs: BlobStore, jobs: JobService, *,
                 work: Executor, is_mining: Callable[[], bool], relay: JobRelay | None = None) -> None:
        self.chain = chain
        self.txs = txs
        self.blobs = blobs
        self.jobs = jobs
        self.work = work
        self.is_mining = is_mining
        self.relay = relay or JobRelay()
        self.network: PeerNetwork | None = None
        self._fetching: set[str] = set()

    def attach(self, network: PeerNetwork, events: Events) -> None:
        """Use ``network`` for announcements and fetches; announce local blocks, transfers and results."""
        self.network = network
        events.subscribe(BlockAccepted, self._on_block_accepted)
        events.subscribe(TxAdmitted, self._on_tx_admitted)
        events.subscribe(JobChanged, self._on_job_changed)

    def _net(self) -> PeerNetwork:
        if self.network is None:
            raise RuntimeError("the adapter is not attached to a network")
        return self.network

    async def _run_work(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.work, fn, *args)

    # --- announcing what this node produced -----------------------------------------------------

    async def _on_block_accepted(self, event: BlockAccepted) -> None:
        if event.source in LOCAL_SOURCES:
            await self._net().announce_block(encode_block(event.block))

    async def _on_tx_admitted(self, event: TxAdmitted) -> None:
        if event.source in LOCAL_SOURCES:
            await self._net().announce_txs([encode_tx(event.entry.tx)])

    async def _on_job_changed(self, event: JobChanged) -> None:
        job = event.job
        if job.status == DONE and job.result is not None and job.result.get("computed_by") == "this node":
            await self._net().announce_job(job_result_announcement(job))

    async def announce_job(self, job: Job) -> None:
        """Tell peers about a job submitted here."""
        await self._net().announce_job(job_announcement(job))

    async def run_relay(self, tick: float = 2.0) -> None:
        """Re-announce waiting jobs on the relay's schedule, until cancelled."""
        while True:
            await asyncio.sleep(tick)
            # A mining node's miner takes its own queue.
            waiting = [] if self.is_mining() else [job.job_id for job in self.jobs.list(QUEUED)]
            for job_id, round_ in self.relay.due(waiting):
                try:
                    await self._net().announce_job(job_announcement(self.jobs.get(job_id), round_))
                    log.info("job %s: announced again (no result yet)", job_id[:16])
                except Exception as e:  # a failed announcement is retried on the next round
                    log.info("job %s: announcing again failed: %s", job_id[:16], e)

    # --- ChainAccess ----------------------------------------------------------------------------

    def status(self) -> tuple[bytes, int, int]:
        tip = self.chain.snapshot.tip
        return tip.block_id, tip.height, tip.chain_work

    async def locator(self) -> list[bytes]:
        return await self.chain.read(chain_locator)

    async def headers_after(self, locator: list[bytes], max_count: int) -> list[bytes]:
        return await self.chain.read(lambda c: chain_headers_after(c, locator, max_count))

    async def missing_blocks(self, ids: Sequence[bytes]) -> list[bytes]:
        return await self.chain.read(lambda c: [i for i in ids if c.get_entry(i) is None])

    async def get_blocks(self, ids: Sequence[bytes], max_bytes: int) -> list[bytes | None]:
        return await self.chain.read(lambda c: chain_blocks(c, ids, max_bytes))

    async def get_blob(self, digest_hex: str) -> bytes | None:
        try:
            return await self._run_work(self.blobs.get, digest_hex)
        except BlobError:
            return None

    async def submit_block(self, block: bytes, peer: str) -> Intake:
        decoded = decode_block(bytes(block))  # DecodeError is a PeerFault: the sender is punished
        sub = await self.chain.submit_block(decoded, peer, size=len(block))
        return INTAKE_OF[sub.status]

    async def submit_txs(self, txs: list[bytes], peer: str) -> list[TxOutcome]:
        return [await self._submit_tx(raw, peer) for raw in txs]

    async def _submit_tx(self, raw: bytes, peer: str) -> TxOutcome:
        try:
            await self.txs.submit(decode_tx(bytes(raw)), source=peer)
        except DecodeError as e:
            return TxOutcome(Intake.REJECTED, str(e))
        except MempoolError as e:
            return TxOutcome(Intake.DUPLICATE) if e.reason == "duplicate" else TxOutcome(Intake.IGNORED, e.reason)
        except (BadNonce, InsufficientBalance) as e:
            # Nonce and balance depend on what each node has seen (races, reorgs): not a fault.
            return TxOutcome(Intake.IGNORED, str(e))
        except InvalidTx as e:
            return TxOutcome(Intake.REJECTED, str(e))
        return TxOutcome(Intake.ACCEPTED)

    async def on_job_announcement(self, data: bytes, peer: str) -> None:
        """A job (miners fetch its matrices and queue it) or a job's result (holders of the job take it)."""
        ann = decode_job_message(data)
        job_id = ann.job_id.hex()
        if isinstance(ann, JobResultAnnouncement):
            self._spawn_once(f"result {job_id}", self._take_result(ann, peer))
            return
        try:
            job = self.jobs.get(job_id)
        except JobError:
            job = None
        if job is not None:
            # Known already. Announced again means somebody still waits for the product: if this
            # node has it, say so again.
            round_ = self.relay.resend_result(job_id) if job.status == DONE else None
            if round_ is not None:
                await self._net().announce_job(job_result_announcement(job, round_))
                log.info("job %s: result announced again for peer %s", job_id[:16], peer)
            return
        if self.is_mining():
            self._spawn_once(job_id, self._take_job(ann, peer))

    def _spawn_once(self, key: str, coro: Coroutine[Any, Any, None]) -> None:
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
        net = self._net()
        delay = 0.5
        for _ in range(attempts):
            others = [p["id"] for p in net.peer_info() if p["id"] != peer]
            for candidate in [peer, *others]:
                try:
                    blob = await net.fetch_blob(digest, peers=[candidate])
                except Exception as e:  # p2p errors of every kind: ask the next peer
                    log.info("fetching blob %s from %s: %s", digest[:16], candidate, e)
                    continue
                if blob is not None:
                    return blob
            await asyncio.sleep(delay)
            delay *= 2
        return None

    async def _take_result(self, ann: JobResultAnnouncement, peer: str) -> None:
        try:
            job = self.jobs.get(ann.job_id.hex())
        except JobError:
            return  # not a job we hold
        if job.status not in WAITING:
            return
        blob = await self._fetch(ann.blob_c.hex(), peer)
        if blob is None:
            log.info("job %s: peer %s did not serve its product", job.job_id[:16], peer)
            return
        try:
            await self._run_work(self.jobs.finish_from_peer, job.job_id, blob)
            log.info("job %s: product from peer %s checked and stored", job.job_id[:16], peer)
        except JobError as e:
            log.warning("job %s: product from peer %s refused: %s", job.job_id[:16], peer, e)

    async def _take_job(self, ann: JobAnnouncement, peer: str) -> None:
        try:
            hashes = []
            for digest in (ann.blob_a.hex(), ann.blob_b.hex()):
                if not self.blobs.has(digest):
                    blob = await self._fetch(digest, peer)
                    if blob is None:
                        log.info("job %s: peer %s did not serve blob %s", ann.job_id.hex()[:16], peer, digest[:16])
                        return
                    await self._run_work(self.blobs.put, blob)
                hashes.append(digest)
            job = await self._run_work(self.jobs.submit, *hashes)
            if job.job_id != ann.job_id.hex():
                log.warning("peer %s announced job %s but its matrices give %s", peer, ann.job_id.hex()[:16],
                            job.job_id[:16])
                if job.status == QUEUED:
                    await self._run_work(self.jobs.cancel, job.job_id)
                return
            log.info("took job %s from peer %s", job.job_id[:16], peer)
        except (BlobError, JobError) as e:
            log.info("announced job %s not taken: %s", ann.job_id.hex()[:16], e)


def job_announcement(job: Job, round_: int = 0) -> bytes:
    m, k, n = job.shape
    return JobAnnouncement(bytes.fromhex(job.job_id), bytes.fromhex(job.a), bytes.fromhex(job.b), m, k, n,
                           round_ & 0xFFFFFFFF).encode()


def job_result_announcement(job: Job, round_: int = 0) -> bytes:
    if job.result is None:
        raise ValueError(f"job {job.job_id} has no result to announce")
    return JobResultAnnouncement(bytes.fromhex(job.job_id), bytes.fromhex(job.result["c"]),
                                 bytes.fromhex(job.result["c_blake3"]), round_ & 0xFFFFFFFF).encode()
