"""The node's side of networking: ``p2p.access.ChainAccess`` over the chain handle, and the job relay.

``NetAdapter`` answers peers from the chain (through the chain handle: every
read runs on the chain thread), the mempool and the blob store, and takes their
blocks, transactions and job announcements through the same paths as the
node's own (``ChainHandle.submit_block``, ``TxIntake.submit``). Block statuses
are translated to ``p2p.access.Intake`` here, once (``intake_of``): only a block
that is on the main chain after its submission was validated with its state and
is ``ACCEPTED`` (forwarded); a side-branch block is ``STORED`` (its state is not
checked yet: not forwarded, no charge), and a state fault the chain found
(``node.errors.BlockStateInvalid``: a nonce or a balance, which a relay of
another branch could not know) is ``IGNORED`` (not forwarded, no charge). Every
other fault is a ``PeerFault`` and bans the sender.

A peer's block is bounded before work is spent on it: bytes over the network's
``max_block_size`` are refused unread, and the decode (up to 4 MB) runs in the
work pool, not on the event loop. A block whose parent is unknown is checked on
its own before the network holds it (``check_orphan``, ``check_orphan_block``:
size, encoding, transaction count, then the chain's ``check_block_alone``:
coinbase and transaction root, target no easier than ``pow_limit``, the
certificate against the header's own target), in the work pool, at most
``MAX_ORPHAN_CHECKS`` at once.

Blocks and transactions that arrive by gossip are forwarded by the network's
topic handlers; the adapter announces only what this node produced itself
(its miner, its RPC), on hearing ``BlockAccepted``, ``TxAdmitted`` and
``JobChanged`` events.

Jobs from peers (only while mining) are bounded before anything is fetched:
the announced shape must fit this node's limits (``JobService.check_shape``),
the peer's share of the queue must have room (``JobService.peer_room``,
counting fetches in flight), and at most ``MAX_FETCHES`` fetches run at once,
``MAX_FETCHES_PER_PEER`` per announcing peer. Each blob is fetched at most
``npy_max_size`` of its announced shape, streamed page by page into a
temporary file of the blob store (which reserves the space in its quota)
while its BLAKE3 is computed, and checked as a matrix of the announced shape
before it is renamed into place; anything wrong deletes it, and a peer that
served something other than it announced pays ``Offence.BAD_RESPONSE``. A job
that is not queued in the end leaves no blob behind. Peers are served one
page per request (``get_blob_page``: one seek and read in the work pool, at
most ``MAX_PAGE_READS`` at once), never a withheld claim product.

Claimed products (section 11, node/claims.py): a result announcement of a job
with a live claimed offer whose product this node does not hold is fetched
even when the job is not waiting here (or not held at all); a product whose
``root_C`` equals the claim's is kept as that offer's product even when it
fails Freivalds (the client needs it to prove fraud): the job is not marked
done by it, and the peer that relayed it is not blamed. A job whose product
this node withholds for its own claim is not announced until the claim
confirms; a job announced again while this node holds a served claim product
of it is answered with that product's result (not fetched and mined again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from consensus.codec import (
    certificate_end,
    decode_block,
    decode_header,
    decode_tx,
    encode_block,
    encode_header,
    encode_tx,
)
from consensus.errors import (
    BadNonce,
    BlockTooLarge,
    DecodeError,
    InsufficientBalance,
    InvalidTx,
    JobStateFault,
    PeerFault,
    TooManyTxs,
)
from consensus.forkchoice import HeaderRun
from consensus.networks import NetworkParams
from consensus.tx import compute_tx_id
from consensus.types import Block, Header
from consensus.validation import validate_certificate
from p2p.access import Intake, TxOutcome
from p2p.network import FREE_DUPLICATE_SECONDS, PeerNetwork
from p2p.protocol import JobAnnouncement, JobResultAnnouncement, blocks_page, compute_locator, decode_job_message
from p2p.requests import BlobFetch
from p2p.scoring import Offence
from pouw.constants import HEADER_SIZE

from .blobs import BlobError, BlobStore, matrix_check, npy_max_size, product_check
from .chain import BlockStatus, ChainService, SubmitResult, check_block_alone
from .chainhandle import ChainHandle
from .claims import ClaimError, ClaimProducts
from .errors import BlockStateInvalid
from .events import LOCAL_SOURCES, BlockAccepted, Events, JobChanged, TxAdmitted
from .jobrelay import JobRelay
from .jobs import DONE, LOCAL, QUEUED, WAITING, Job, JobError, JobService
from .mempool import MempoolError
from .txintake import TxIntake

log = logging.getLogger(__name__)
INTAKE_OF: dict[BlockStatus, Intake] = {
    BlockStatus.CONNECTED: Intake.ACCEPTED, BlockStatus.SIDE_BRANCH: Intake.STORED,
    BlockStatus.ORPHAN: Intake.ORPHAN, BlockStatus.DUPLICATE: Intake.DUPLICATE,
    BlockStatus.LOW_WORK: Intake.IGNORED, BlockStatus.FORK_TOO_DEEP: Intake.IGNORED,
}
"""The one translation of the chain's block statuses into what the network acts on (see ``intake_of``)."""
MAX_ORPHAN_CHECKS = 1
"""Orphan checks (``check_orphan``: a certificate each) in the work pool at once, so a flood of orphans
leaves the pool's other thread to RPC and blob reads."""
TX_SLICE_SECONDS = 0.005
"""Longest stretch of a gossiped batch's admission between two returns to the event loop."""
MAX_FETCHES = 4
"""Job announcements and results whose blobs are being fetched at once, from all peers together."""
MAX_FETCHES_PER_PEER = 2
"""Of those, the most announced by one peer; more announcements meanwhile are not taken (nor forwarded)."""
FETCH_ATTEMPTS = 4
"""Rounds over the peers for one blob, with a back-off of ``FETCH_BACKOFF`` seconds, doubling, between them."""
FETCH_BACKOFF = 0.5
MAX_PAGE_READS = 2
"""Blob pages read for peers at once (in the work pool)."""


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


def intake_of(result: SubmitResult) -> Intake:
    """What the network does with a block the chain took: ``INTAKE_OF`` its status, except that a block
    the main chain now holds is ``ACCEPTED`` whatever its status (a side-branch block whose held
    children made its branch overtake was connected, state and all)."""
    change = result.tip_change
    if change is not None and result.block_id in change.connected:
        return Intake.ACCEPTED
    return INTAKE_OF[result.status]


def check_orphan_block(raw: bytes, params: NetworkParams, *, check_certificate: bool = True) -> Block:
    """The checks a block can fail without its parent, on the bytes that arrived; raise the ``PeerFault``.

    Before anything is decoded: the size of the bytes (at most
    ``max_block_size``), the header, and the transaction count (read from its
    place after the certificate, so more than ``max_tx_count`` transactions
    are never decoded). Then the full decode and the chain's own
    ``node.chain.check_block_alone`` (version, height, target no easier than
    ``pow_limit``, coinbase, distinct transactions, the transaction root that
    binds the body to the header, and the certificate against the header's own
    target), so the network and the chain judge an orphan by one function.
    ``check_certificate=False`` exists for tests over synthetic blocks.
    Returns the decoded block.
    """
    if len(raw) > params.max_block_size:
        raise BlockTooLarge(f"expected at most {params.max_block_size} bytes, found {len(raw)}")
    if len(raw) < HEADER_SIZE:
        raise DecodeError(f"a block starts with a {HEADER_SIZE}-byte header, found {len(raw)} bytes")
    pre = decode_header(raw[:HEADER_SIZE]).pre
    if pre.height > 0:
        body = certificate_end(raw, HEADER_SIZE, pre.k)
        if body + 4 > len(raw):
            raise DecodeError("block truncated before tx_count")
        count = int.from_bytes(raw[body:body + 4], "little")
        if count > params.max_tx_count:
            raise TooManyTxs(f"expected at most {params.max_tx_count} transactions, found {count}")
    block = decode_block(raw)
    check_block_alone(block, len(raw), params, validate_certificate if check_certificate else None)
    return block


class NetAdapter:
    """``ChainAccess`` for the node's ``PeerNetwork``, the job relay, and the announcements of local data.

    ``attach(network)`` once the network exists; ``run_relay()`` re-announces
    waiting jobs until cancelled.
    """

    def __init__(self, chain: ChainHandle, txs: TxIntake, blobs: BlobStore, jobs: JobService, *,
                 work: Executor, is_mining: Callable[[], bool], relay: JobRelay | None = None,
                 claims: ClaimProducts | None = None) -> None:
        self.chain = chain
        self.txs = txs
        self.blobs = blobs
        self.jobs = jobs
        self.work = work
        self.is_mining = is_mining
        self.relay = relay or JobRelay()
        self.claims = claims
        self.network: PeerNetwork | None = None
        self._fetching: set[str] = set()
        self._by_peer: Counter[str] = Counter()
        self._tasks: set[asyncio.Future] = set()
        self._page_reads = asyncio.Semaphore(MAX_PAGE_READS)
        self._orphan_checks = asyncio.Semaphore(MAX_ORPHAN_CHECKS)

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
        # Computed here (by this node's miner or a pouw-miner working for it): announce it; a product
        # that came from a peer is that peer's to announce.
        if job.status == DONE and job.result is not None and job.result.get("computed_by") != "peer":
            if self._withheld(job.job_id):
                return  # claimed here: announced once the claim confirms (node/claimer.py)
            await self._net().announce_job(job_result_announcement(job))

    def _withheld(self, job_id: str) -> bool:
        return self.claims is not None and self.claims.withholds_job(bytes.fromhex(job_id))

    async def announce_job(self, job: Job) -> None:
        """Tell peers about a job submitted here."""
        await self._net().announce_job(job_announcement(job))

    async def run_relay(self, tick: float = 2.0) -> None:
        """Re-announce waiting local jobs on the relay's schedule and expire peers' old jobs, until cancelled."""
        while True:
            await asyncio.sleep(tick)
            try:
                await self._run_work(self.jobs.expire)  # peers' jobs queued too long
            except Exception as e:  # the store failed; try again on the next tick
                log.warning("expiring jobs failed: %s", e)
            # A mining node's miner takes its own queue; jobs from peers are for their own announcers.
            waiting = [] if self.is_mining() else [job.job_id for job in self.jobs.list(QUEUED)
                                                    if job.origin == LOCAL]
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

    async def get_blob_page(self, digest_hex: str, offset: int, length: int) -> tuple[int, bytes] | None:
        """``(total, bytes)`` of one page of a blob, read with one seek in the work pool; ``None`` if missing.

        At most ``MAX_PAGE_READS`` run at once, so peers asking for pages
        cannot take the whole work pool.
        """
        async with self._page_reads:
            try:
                return await self._run_work(self.blobs.serve_page, digest_hex, offset, length)
            except BlobError:
                return None

    async def submit_block(self, block: bytes, peer: str) -> Intake:
        """The chain's verdict on a peer's block (``intake_of``); ``IGNORED`` for a fault that depends on state.

        The size is checked on the bytes that arrived before anything else, and
        those bytes are decoded in the work pool; a ``DecodeError`` is a
        ``PeerFault`` (the sender is punished).
        """
        raw = bytes(block)
        limit = self.chain.params.max_block_size
        if len(raw) > limit:
            raise BlockTooLarge(f"expected at most {limit} bytes, found {len(raw)}")
        decoded = await self._run_work(decode_block, raw)
        try:
            sub = await self.chain.submit_block(decoded, peer, size=len(raw))
        except BlockStateInvalid as e:
            log.info("block %s from %s refused (%s): %s; not the sender's fault", decoded.header.block_id.hex()[:16],
                     peer, e.rule, e)
            return Intake.IGNORED
        return intake_of(sub.result)

    async def check_orphan(self, block: bytes) -> None:
        """``check_orphan_block`` in the work pool (at most ``MAX_ORPHAN_CHECKS`` at once)."""
        async with self._orphan_checks:
            await self._run_work(check_orphan_block, bytes(block), self.chain.params)

    async def submit_txs(self, txs: list[bytes], peer: str) -> list[TxOutcome]:
        # A batch holds up to thousands of transfers at a few hundred microseconds each: give the
        # loop back every TX_SLICE_SECONDS, so a batch never holds up RPC, blocks or requests.
        out = []
        slice_start = time.perf_counter()
        for raw in txs:
            out.append(await self._submit_tx(raw, peer))
            if time.perf_counter() - slice_start > TX_SLICE_SECONDS:
                await asyncio.sleep(0)
                slice_start = time.perf_counter()
        return out

    async def _submit_tx(self, raw: bytes, peer: str) -> TxOutcome:
        try:
            tx = decode_tx(bytes(raw))
            await self.txs.submit(tx, source=peer)
        except DecodeError as e:
            return TxOutcome(Intake.REJECTED, str(e))
        except MempoolError as e:
            if e.reason != "duplicate":
                return TxOutcome(Intake.IGNORED, e.reason)
            age = self.txs.mempool.seen_seconds_ago(compute_tx_id(tx))
            return TxOutcome(Intake.DUPLICATE, recent=age is not None and age < FREE_DUPLICATE_SECONDS)
        except (BadNonce, InsufficientBalance, JobStateFault) as e:
            # Nonce, balance and a job's record depend on what each node has seen (races, reorgs): not a fault.
            return TxOutcome(Intake.IGNORED, str(e))
        except InvalidTx as e:
            return TxOutcome(Intake.REJECTED, str(e))
        return TxOutcome(Intake.ACCEPTED)

    async def on_job_announcement(self, data: bytes, peer: str) -> None:
        """A job (miners fetch its matrices and queue it) or a job's result (holders of the job take it).

        Raises ``PeerFault`` for a shape the protocol forbids (the peer is
        penalised) and ``JobError`` for a job not taken now because of a limit
        (the peer's share of the queue, the fetch caps: the announcement is not
        forwarded, which keeps a flood from spreading; no penalty). A shape over
        this node's own limits is just not taken (other nodes may take it).
        Results are always forwarded.
        """
        ann = decode_job_message(data)
        job_id = ann.job_id.hex()
        job = self._held(job_id)
        if isinstance(ann, JobResultAnnouncement):
            claimed = self.claims.wants_product(ann.job_id) if self.claims is not None else []
            if (job is not None and job.status in WAITING) or claimed:
                try:
                    self._start(f"result {job_id}", peer, self._take_result(ann, job, peer))
                except JobError as e:  # busy: the result comes again when the job is announced again
                    log.info("job %s: result from %s not taken now: %s", job_id[:16], peer, e)
            return
        if job is not None:
            # Known already. Announced again means somebody still waits for the product: if this
            # node has it, say so again.
            done = job.status == DONE and not self._withheld(job_id)
            round_ = self.relay.resend_result(job_id) if done else None
            if round_ is not None:
                await self._net().announce_job(job_result_announcement(job, round_))
                log.info("job %s: result announced again for peer %s", job_id[:16], peer)
            return
        served = [p for p in self.claims.for_job(ann.job_id) if p.served] if self.claims is not None else []
        if served:  # a claimed product held here (an upload, a peer's): say where it is, do not mine it again
            round_ = self.relay.resend_result(job_id)
            if round_ is not None:
                await self._net().announce_job(JobResultAnnouncement(ann.job_id, bytes.fromhex(served[0].blob),
                                                                     served[0].h_c, round_ & 0xFFFFFFFF).encode())
            return
        if not self.is_mining():
            return
        try:
            self.jobs.check_shape(ann.m, ann.k, ann.n)
        except JobError as e:
            if e.kind == "invalid":
                raise PeerFault(f"job {job_id[:16]}: {e}") from None
            log.info("announced job %s not taken: %s", job_id[:16], e)
            return
        if f"job {job_id}" in self._fetching:
            return
        self.jobs.peer_room(peer, pending=self._by_peer[peer], pending_peers=len(self._fetching))
        self._start(f"job {job_id}", peer, self._take_job(ann, peer))

    def _held(self, job_id: str) -> Job | None:
        try:
            return self.jobs.get(job_id)
        except JobError:
            return None

    def _start(self, key: str, peer: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run one fetch task per ``key``, within ``MAX_FETCHES`` and ``MAX_FETCHES_PER_PEER``."""
        if key in self._fetching:
            coro.close()
            return
        if len(self._fetching) >= MAX_FETCHES or self._by_peer[peer] >= MAX_FETCHES_PER_PEER:
            coro.close()
            raise JobError("busy", f"{len(self._fetching)} fetches running ({self._by_peer[peer]} for peer "
                           f"{peer}); the most are {MAX_FETCHES} ({MAX_FETCHES_PER_PEER} per peer)")
        self._fetching.add(key)
        self._by_peer[peer] += 1
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Future) -> None:
            self._tasks.discard(t)
            self._fetching.discard(key)
            self._by_peer[peer] -= 1
            if self._by_peer[peer] <= 0:
                del self._by_peer[peer]
            if not t.cancelled() and t.exception() is not None:
                log.warning("fetch %s from %s failed: %r", key[:24], peer, t.exception())

        task.add_done_callback(done)

    async def wait_fetches(self) -> None:
        """Wait until no fetch task runs (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _fetch(self, digest: str, announcer: str, max_size: int,
                     check: Callable[[Path], object]) -> str | None:
        """Stream a blob into the store, from the announcing peer, else from any other; the peer that served it.

        Gossip names the relaying peer, which need not hold the blob (only the
        submitting node and miners do), and a request can time out under load,
        so other peers are asked and rounds are retried with back-off. At most
        ``max_size`` bytes are fetched (a peer offering more is not asked
        further) into a temporary file of the blob store, checked (its hash
        while it arrives, then ``check``) before it is renamed into place. A
        peer whose pages do not hash to the name is charged by the requester
        and not asked again. Bytes that hash right but are not what was
        announced (too big, not a matrix of the announced shape) make the
        announcer pay ``BAD_RESPONSE`` if it served them, and end the fetch:
        every peer holds the same bytes under that name. A blob that does not
        fit the quota raises ``BlobError("no-space")``.
        """
        net = self._net()
        raw = bytes.fromhex(digest)
        max_size = min(max_size, self.blobs.max_bytes)
        skip: set[str] = set()
        delay = FETCH_BACKOFF
        for attempt in range(FETCH_ATTEMPTS):
            others = [p["id"] for p in net.peer_info() if p["id"] != announcer]
            candidates = [c for c in [announcer, *others] if c not in skip]
            if not candidates:
                return None
            for candidate in candidates:
                writer = await self._run_work(self.blobs.writer, digest, max_size)
                try:
                    outcome = await net.requests.blob_into(candidate, raw, partial(self._run_work, writer.write),
                                                           max_bytes=max_size)
                    if outcome is BlobFetch.OK:
                        try:
                            await self._run_work(writer.commit, check)
                        except BlobError as e:
                            self._blame(candidate, announcer, f"blob {digest[:16]} is not what was announced: {e}")
                            return None
                        return candidate
                finally:
                    await self._run_work(writer.discard)
                if outcome is BlobFetch.TOO_LARGE:
                    self._blame(candidate, announcer, f"blob {digest[:16]} is over the {max_size} bytes announced")
                    skip.add(candidate)
                elif outcome is BlobFetch.BAD:
                    skip.add(candidate)
                else:
                    log.info("fetching blob %s from %s: %s", digest[:16], candidate, outcome)
            if attempt + 1 < FETCH_ATTEMPTS and set(candidates) - skip:
                await asyncio.sleep(delay)
                delay *= 2
        return None

    def _blame(self, server: str, announcer: str, detail: str) -> None:
        """The announcer pays for content that is not what it announced, when it served that content itself."""
        if server == announcer:
            self._net().requests.punish(announcer, Offence.BAD_RESPONSE, detail)
        else:
            log.info("peer %s: %s", server, detail)

    async def _take_result(self, ann: JobResultAnnouncement, job: Job | None, peer: str) -> None:
        """Fetch an announced product; the job takes it if Freivalds holds, a claimed offer if its root_C is the
        claim's (node/claims.py)."""
        digest = ann.blob_c.hex()
        claimed = self.claims.wants_product(ann.job_id) if self.claims is not None else []
        m, n = (job.shape[0], job.shape[2]) if job is not None else (claimed[0][1].m, claimed[0][1].n)
        fetched = False
        try:
            if not self.blobs.has(digest):
                server = await self._fetch(digest, peer, npy_max_size((m, n), np.int32), product_check((m, n)))
                if server is None:
                    log.info("job %s: peer %s did not serve its product", ann.job_id.hex()[:16], peer)
                    return
                fetched = True
            else:
                server = peer
            kept = []
            if claimed and self.claims is not None:
                try:
                    kept = await self._run_work(self.claims.take_from_peer, ann.job_id, digest, claimed)
                except ClaimError as e:
                    log.info("job %s: claimed product from peer %s not kept: %s", ann.job_id.hex()[:16], peer, e)
                for p in kept:
                    log.info("offer %s: claimed product from peer %s kept (freivalds_ok %s)", p.offer_id.hex()[:16],
                             peer, p.freivalds_ok)
            if job is None or job.status not in WAITING:
                return
            try:
                await self._run_work(self.jobs.finish_from_peer, job.job_id, await self._run_work(self.blobs.get,
                                                                                                  digest))
                log.info("job %s: product from peer %s checked and stored", job.job_id[:16], peer)
            except JobError as e:
                log.warning("job %s: product from peer %s refused: %s", job.job_id[:16], peer, e)
                if e.kind == "invalid" and fetched and not kept:  # the claimed product: no fault to relay it
                    self._blame(server, peer, f"job {job.job_id[:16]}: {e}")
        except BlobError as e:
            log.info("job %s: product from peer %s not taken: %s", ann.job_id.hex()[:16], peer, e)
        finally:
            if fetched:  # kept only if it became the job's result (the same bytes)
                await self._run_work(self.blobs.discard_unreferenced, [digest])

    async def _take_job(self, ann: JobAnnouncement, peer: str) -> None:
        job_id = ann.job_id.hex()
        fetched: list[str] = []
        servers: set[str] = set()
        try:
            for digest, shape, name in ((ann.blob_a.hex(), (ann.m, ann.k), "A"),
                                        (ann.blob_b.hex(), (ann.k, ann.n), "B")):
                if self.blobs.has(digest):
                    continue
                server = await self._fetch(digest, peer, npy_max_size(shape, np.int8), matrix_check(shape, name))
                if server is None:
                    log.info("job %s: peer %s did not serve blob %s", job_id[:16], peer, digest[:16])
                    return
                fetched.append(digest)
                servers.add(server)
            job = await self._run_work(partial(self.jobs.submit, ann.blob_a.hex(), ann.blob_b.hex(), origin=peer,
                                               job_id=job_id))
            log.info("took job %s from peer %s", job.job_id[:16], peer)
        except JobError as e:
            if e.kind == "mismatch" and peer in servers:  # it served the matrices: it knew their job id
                self._net().requests.punish(peer, Offence.BAD_RESPONSE, f"job {job_id[:16]}: {e}")
            log.info("announced job %s not taken: %s", job_id[:16], e)
        except BlobError as e:
            log.info("announced job %s not taken: %s", job_id[:16], e)
        finally:
            if fetched:  # a job that was not queued leaves nothing behind
                await self._run_work(self.blobs.discard_unreferenced, fetched)

    async def check_headers(self, headers: Sequence[Header], run: HeaderRun | None) -> HeaderRun:
        """``ChainHandle.check_headers``: a page of a branch's headers checked and weighed on the chain thread."""
        return await self.chain.check_headers(headers, run)


def job_announcement(job: Job, round_: int = 0) -> bytes:
    m, k, n = job.shape
    return JobAnnouncement(bytes.fromhex(job.job_id), bytes.fromhex(job.a), bytes.fromhex(job.b), m, k, n,
                           round_ & 0xFFFFFFFF).encode()


def job_result_announcement(job: Job, round_: int = 0) -> bytes:
    if job.result is None:
        raise ValueError(f"job {job.job_id} has no result to announce")
    return JobResultAnnouncement(bytes.fromhex(job.job_id), bytes.fromhex(job.result["c"]),
                                 bytes.fromhex(job.result["c_blake3"]), round_ & 0xFFFFFFFF).encode()
