"""The networking service: gossip, status handshakes, headers-first sync, blobs, bans.

``PeerNetwork`` sits between a ``P2PHost`` (bytes, peers, topics; ``p2p.host``)
and the node (``p2p.access.ChainAccess``). It is asyncio only: libp2p and trio
stay inside ``p2p.host`` and ``p2p.bridge``.

What travels (byte layouts in ``p2p.protocol``):

- Gossip. A block is forwarded only once ``ChainAccess.submit_block`` fully
  validated it, state included (``Intake.ACCEPTED``: the topic handler runs
  before forwarding). A block stored on a side branch (``STORED``: its state
  is not checked yet) or refused for a reason that is not the sender's fault
  (``IGNORED``: a fault that depends on account state, which a relay of
  another branch could not know) is not forwarded and costs nothing; a
  context-free fault (encoding, certificate, a wrong target for its parent)
  bans the sender. A block whose parent is unknown is checked on its own
  (``ChainAccess.check_orphan``, in the node's work pool), held in
  ``p2p.orphans.PendingOrphans`` (bounded per peer and in total, random
  eviction), not forwarded, and the sender becomes a sync candidate; once the
  parent is stored the block is submitted, and announced if it connected.
  Transactions
  travel in batches (``announce_txs`` collects them for a few milliseconds);
  a received batch is never forwarded as is: its validator only decodes it
  and queues it for admission (bounded), and the accepted transactions are
  announced again in this node's own batches, so transfers never hold the
  gossip validators that blocks need. Jobs are
  small announcements; the matrices are fetched with ``fetch_blob``.
- Status. On every new connection both sides exchange a ``Status`` (chain id,
  genesis, tip, height, work). Another chain or genesis: ban and disconnect.
  Statuses are polled every ``status_interval`` seconds.
- Sync, headers first, with the peer that claims the most work (more than
  ours): ``p2p.headersync``. Sync re-runs when a peer shows more work than
  ours (handshake, status poll, an orphan block), e.g. when a partition heals.

Peer faults cost score (``p2p.scoring``): malformed bytes, wrong answers,
timeouts, invalid transactions; an invalid block or a wrong chain bans at once.
Transient failures (the chain could not take a block now) and faults that
depend on account state cost nothing.

Data we announce ourselves goes through ``announce_*``; data that arrived by
gossip is forwarded by the topic handlers, so callers must not announce it again.
The ``peer`` passed to ``ChainAccess.submit_*`` is the base58 id of the peer the
data came from (``"orphan-pool"`` for a held orphan resubmitted once its parent
arrived), which tells a node's hooks not to re-announce it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from consensus.codec import decode_header
from consensus.errors import PeerFault
from pouw.header import compute_block_id

from .access import ChainAccess, Intake
from .errors import P2PDecodeError, P2PError, PeerRefused
from .headersync import HeadersFirstSync
from .orphans import (
    MAX_ORPHAN_CHECKS_PER_PEER,
    MAX_ORPHAN_CHECKS_WAITING,
    MAX_PENDING_ORPHANS,
    Orphan,
    PendingOrphans,
)
from .peers import NetworkStats, PeerState
from .protocol import (
    BLOB_CHUNK_BYTES,
    MAX_HEADERS,
    MAX_PAGE_BYTES,
    BlobChunk,
    BlockAnnouncement,
    Status,
    decode_blob_request,
    decode_blocks_request,
    decode_headers_request,
    decode_job_message,
    decode_tx_batch,
    encode_blob_response,
    encode_blocks_response,
    encode_headers_response,
    encode_tx_batch,
    protocol_ids,
    split_tx_batches,
)
from .requests import PeerRequester
from .scoring import BanEntry, Offence, ScoreBook
from .types import INBOUND, OUTBOUND, PeerInfo, Verdict

if TYPE_CHECKING:
    from .host import P2PHost

log = logging.getLogger(__name__)

MAX_KNOWN_BLOCKS = 4096
"""Recently accepted or announced block ids remembered, to tell duplicates at once."""
FREE_DUPLICATE_SECONDS = 10.0
"""A copy of a block that became known this recently is free: honest relays forward copies that
crossed ours in flight. Older copies cost a point (a flood of them adds up to a ban)."""
MAX_TX_BACKLOG = 50_000
"""Gossiped transfers waiting for admission, from all peers (the mempool's size); a batch that does not
fit is dropped (no charge)."""
MAX_TX_BACKLOG_PER_PEER = 10_000
"""Of those, the most from one peer."""
MAX_TX_BACKLOG_BYTES = 64 * 1024 * 1024
"""Bytes of the waiting transactions, from all peers: a fraud proof is up to ~530 KB, so the count alone
would let the queue hold gigabytes."""
MAX_TX_BACKLOG_BYTES_PER_PEER = 16 * 1024 * 1024
"""Of those, the most from one peer."""
ORPHAN_POOL = "orphan-pool"
"""The ``peer`` named to ``ChainAccess.submit_block`` for a held orphan submitted once its parent arrived."""


class PeerNetwork:
    """The node's peer-to-peer service; ``async with PeerNetwork(host, chain, ...) as net: ...``.

    Entering registers the topics and protocols on ``host``, makes
    ``scoring.is_banned`` the host's connection gater, starts the host if it is
    not running (and then stops it on exit), dials the ``bootstrap`` peers and
    keeps them connected, and starts the sync, status-poll and tx-batch tasks.
    """

    def __init__(
        self,
        host: P2PHost,
        chain: ChainAccess,
        *,
        chain_id: int,
        genesis_id: bytes,
        scoring: ScoreBook,
        bootstrap: Sequence[str] = (),
        status_interval: float = 15.0,
        request_timeout: float = 10.0,
        tx_batch_delay: float = 0.005,
        headers_per_page: int = MAX_HEADERS,
        body_chunk: int = 128,
        parallel_fetches: int = 4,
        max_pending_orphans: int = MAX_PENDING_ORPHANS,
        max_blob_bytes: int = 256 << 20,
        ban_grace: float = 0.25,
    ) -> None:
        self.host = host
        self.chain = chain
        self.chain_id = chain_id
        self.genesis_id = bytes(genesis_id)
        self.scoring = scoring
        self.ids = protocol_ids(chain_id)
        self.bootstrap = list(bootstrap)
        self.status_interval = status_interval
        self.request_timeout = request_timeout
        self.tx_batch_delay = tx_batch_delay
        self.ban_grace = ban_grace
        self.stats = NetworkStats()
        self._names = {getattr(self.ids, f.name): f.name for f in fields(self.ids)}
        """Topic id -> short name (``blocks``, ``txs``, ``jobs``), the keys of the gossip counters."""
        self.requests = PeerRequester(host, self.ids, scoring, timeout=request_timeout,
                                      max_blob_bytes=max_blob_bytes, stats=self.stats)
        self._peers: dict[str, PeerState] = {}
        self.sync = HeadersFirstSync(chain, self.requests, self._peers, self.stats,
                                     after_accept=self._after_accept, announce_block=self.announce_block,
                                     refresh_status=self._handshake, headers_per_page=headers_per_page,
                                     body_chunk=body_chunk, parallel_fetches=parallel_fetches)
        self._orphans = PendingOrphans(max_pending_orphans)
        self._tx_backlog: deque[tuple[str, list[bytes]]] = deque()
        """Gossiped transaction batches waiting for admission, with the peer that sent each."""
        self._tx_backlog_of: Counter[str] = Counter()
        self._tx_backlog_bytes_of: Counter[str] = Counter()
        self._tx_backlog_ready = asyncio.Event()
        self._checking: Counter[str] = Counter()
        """Orphans being fetched or checked now, by the peer that sent them."""
        self._inflight: set[bytes] = set()
        """Ids of gossiped blocks being checked now (at most one task per id)."""
        self._known: OrderedDict[bytes, float] = OrderedDict()
        """Ids of blocks recently accepted or announced (bounded, oldest forgotten first)."""
        self._persistent: dict[str, asyncio.Task] = {}
        self._disconnected: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task] = set()
        self._tx_pending: list[bytes] = []
        self._tx_wakeup = asyncio.Event()
        self._tx_idle = asyncio.Event()
        self._tx_idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owns_host = False
        self._running = False
        self._ban_listener_added = False
        self._register()

    # --- lifecycle -----------------------------------------------------------------------------

    def _register(self) -> None:
        host, ids = self.host, self.ids
        host.set_gater(self.scoring.is_banned)
        host.subscribe(ids.blocks, self._on_block_gossip)
        host.subscribe(ids.txs, self._on_tx_gossip)
        host.subscribe(ids.jobs, self._on_job_gossip)
        host.set_request_handler(ids.status, self._serve_status)
        host.set_request_handler(ids.headers, self._serve_headers)
        host.set_request_handler(ids.blocks_by_id, self._serve_blocks)
        host.set_request_handler(ids.blob, self._serve_blob)
        host.on_peer_connected(self._on_peer_connected)
        host.on_peer_disconnected(self._on_peer_disconnected)

    async def __aenter__(self) -> PeerNetwork:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self._ban_listener_added:
            self.scoring.on_ban(self._on_ban_any_thread)
            self._ban_listener_added = True
        if not self.host.running:
            await self.host.start()
            self._owns_host = True
        self._running = True
        self._spawn(self.sync.run(), "sync")
        self._spawn(self._status_loop(), "status poll")
        self._spawn(self._tx_flusher(), "tx batcher")
        self._spawn(self._admit_tx_batches(), "tx admission")
        for maddr in self.bootstrap:
            await self.addnode(maddr, "add")
        for info in self.host.peers():  # peers that connected before we started
            self._on_peer_connected(info)

    async def stop(self) -> None:
        self._running = False
        tasks = set(self._tasks) | set(self._persistent.values())
        for _ in range(3):  # a cancellation can be swallowed on 3.11 (see p2p.bridge.TrioThread.run)
            for task in tasks:
                task.cancel()
            _, tasks = await asyncio.wait(tasks, timeout=2.0) if tasks else (set(), set())
            if not tasks:
                break
        if tasks:
            log.error("%d p2p tasks ignored cancellation", len(tasks))
        self._persistent.clear()
        if self._owns_host:
            await self.host.stop()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("p2p task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    # --- peers ---------------------------------------------------------------------------------

    def _on_peer_connected(self, info: PeerInfo) -> None:
        if info.peer_id not in self._peers:
            self._peers[info.peer_id] = PeerState(info.peer_id, info.direction, info.connected_since)
        if self._running:
            self._spawn(self._handshake(info.peer_id), f"handshake {info.peer_id}")
        self._count_peers()

    def _on_peer_disconnected(self, info: PeerInfo) -> None:
        self._peers.pop(info.peer_id, None)
        event = self._disconnected.get(info.peer_id)
        if event is not None:
            event.set()
        self._count_peers()

    def _count_peers(self) -> None:
        """Recount ``stats.peers`` by direction from the host (what ``peer_info`` shows)."""
        counts = {INBOUND: 0, OUTBOUND: 0}
        for info in self.host.peers():
            counts[info.direction] = counts.get(info.direction, 0) + 1
        self.stats.peers = counts

    def _count_gossip(self, counters: dict[str, int], topic: str) -> None:
        name = self._names.get(topic, "other")
        counters[name] = counters.get(name, 0) + 1

    def _state(self, peer: str) -> PeerState:
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = PeerState(peer, "inbound", time.time())
        return state

    def _punish(self, peer: str, offence: Offence, detail: str = "") -> bool:
        return self.requests.punish(peer, offence, detail)

    def _on_ban_any_thread(self, entry: BanEntry) -> None:
        loop = self._loop
        if loop is None or not self._running:
            return
        try:
            loop.call_soon_threadsafe(self._on_ban, entry)
        except RuntimeError:
            pass

    def _on_ban(self, entry: BanEntry) -> None:
        self._orphans.drop_peer(entry.peer_id)  # what a banned peer sent is not worth its memory
        if self.host.is_connected(entry.peer_id) and self._running:
            self._spawn(self._disconnect_banned(entry.peer_id), f"disconnect {entry.peer_id}")

    async def _disconnect_banned(self, peer: str) -> None:
        # The gater already refuses the peer's new requests and gossip; the grace
        # lets answers in flight (our status, telling it why) reach it first.
        await asyncio.sleep(self.ban_grace)
        if self.scoring.is_banned(peer):  # not lifted meanwhile
            await self.host.disconnect(peer)

    def our_status(self) -> Status:
        tip, height, work = self.chain.status()
        return Status(self.chain_id, self.genesis_id, tip, height, work)

    def _record_status(self, peer: str, status: Status) -> bool:
        """Remember a peer's status; ban it if it is on another chain. True if it is usable."""
        if status.chain_id != self.chain_id or status.genesis_id != self.genesis_id:
            self._punish(peer, Offence.WRONG_CHAIN,
                         f"chain {status.chain_id} genesis {status.genesis_id.hex()[:16]}, "
                         f"ours {self.chain_id} {self.genesis_id.hex()[:16]}")
            return False
        state = self._state(peer)
        state.status, state.status_time = status, time.time()
        if status.work > self.chain.status()[2] and status.work != state.tried_work:
            self.sync.wanted.set()
        return True

    async def _handshake(self, peer: str) -> None:
        status = await self.requests.status(peer, self.our_status())
        if status is not None:
            self._record_status(peer, status)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            await self.poll_status()

    async def poll_status(self) -> None:
        """Ask every connected peer for its status now."""
        await asyncio.gather(*(self._handshake(p) for p in list(self._peers)), return_exceptions=True)

    async def connect(self, maddr: str) -> str:
        """Dial a peer once (``addnode <addr> onetry``); return its peer id."""
        return await self.host.connect(maddr)

    async def addnode(self, maddr: str, command: str = "add") -> str | None:
        """``add``: keep connected to ``maddr`` (redial with back-off); ``remove``: stop; ``onetry``: dial once."""
        if command == "onetry":
            return await self.connect(maddr)
        if command == "remove":
            task = self._persistent.pop(maddr, None)
            if task is not None:
                task.cancel()
            return None
        if command != "add":
            raise ValueError(f"addnode command must be add, remove or onetry, found {command!r}")
        if maddr not in self._persistent:
            self._persistent[maddr] = asyncio.ensure_future(self._keep_connected(maddr))
        return None

    async def _keep_connected(self, maddr: str) -> None:
        backoff = 0.5
        while True:
            try:
                peer = await self.host.connect(maddr)
            except PeerRefused as e:
                log.info("addnode %s refused: %s", maddr, e)
                backoff = 60.0
            except P2PError as e:
                log.info("addnode %s: %s", maddr, e)
                backoff = min(backoff * 2, 30.0)
            else:
                backoff = 0.5
                event = self._disconnected[peer] = asyncio.Event()
                if self.host.is_connected(peer):
                    await event.wait()
            await asyncio.sleep(backoff)

    @property
    def syncing(self) -> bool:
        return self.sync.syncing

    def request_sync(self) -> None:
        """Look for a peer with more work now (normally triggered by statuses and orphans)."""
        self.sync.wanted.set()

    def peer_info(self) -> list[dict]:
        """One entry per connected peer (``getpeerinfo``)."""
        now = time.time()
        out = []
        for info in self.host.peers():
            state = self._peers.get(info.peer_id)
            status = state.status if state else None
            out.append({
                "id": info.peer_id,
                "addrs": list(info.addrs),
                "direction": info.direction,
                "score": round(self.scoring.score(info.peer_id), 2),
                "height": status.height if status else None,
                "tip": status.tip_id.hex() if status else None,
                "chainwork": f"{status.work:064x}" if status else None,
                "connected_since": info.connected_since,
                "conntime": round(now - info.connected_since, 3),
            })
        return out

    async def setban(self, peer_id: str, command: str = "add", seconds: float | None = None,
                     reason: str = "manual") -> None:
        """``add``: ban (and disconnect) ``peer_id``; ``remove``: lift its ban."""
        if command == "add":
            self.scoring.ban(peer_id, seconds, reason)
            await self.host.disconnect(peer_id)
        elif command == "remove":
            self.scoring.unban(peer_id)
        else:
            raise ValueError(f"setban command must be add or remove, found {command!r}")

    def listbanned(self) -> list[dict]:
        return [e.to_json() for e in self.scoring.list_banned()]

    # --- announcing ----------------------------------------------------------------------------

    async def _publish(self, topic: str, payload: bytes) -> bool:
        try:
            await self.host.publish(topic, payload)
        except P2PError as e:
            log.warning("could not publish on %s: %s", topic, e)
            return False
        self.stats.published[topic] = self.stats.published.get(topic, 0) + 1
        self._count_gossip(self.stats.gossip_published, topic)
        return True

    async def announce_block(self, block: bytes) -> bool:
        """Gossip a block we accepted (the whole block, or its header if it is too big to gossip).

        Held orphans that waited for it are submitted too: a block the node mined or took over
        RPC reaches the network only here.
        """
        ann = BlockAnnouncement.for_block(block)
        block_id = compute_block_id(ann.header)
        self._remember_known(block_id)
        self._adopt_children(block_id)
        return await self._publish(self.ids.blocks, ann.encode())

    async def announce_txs(self, txs: Iterable[bytes]) -> None:
        """Queue transactions for gossip; they go out in batches a few milliseconds later."""
        txs = [bytes(t) for t in txs]
        if not txs:
            return
        self._tx_pending.extend(txs)
        self._tx_idle.clear()
        self._tx_wakeup.set()

    async def flush_txs(self, timeout: float = 30.0) -> None:
        """Wait until every queued transaction has been published."""
        await asyncio.wait_for(self._tx_idle.wait(), timeout)

    async def _tx_flusher(self) -> None:
        while True:
            await self._tx_wakeup.wait()
            await asyncio.sleep(self.tx_batch_delay)  # collect a burst into few messages
            self._tx_wakeup.clear()
            pending, self._tx_pending = self._tx_pending, []
            for batch in split_tx_batches(pending):
                await self._publish(self.ids.txs, encode_tx_batch(batch))
            if not self._tx_pending:
                self._tx_idle.set()

    async def announce_job(self, data: bytes) -> bool:
        """Gossip a job announcement or result (``p2p.protocol.JobAnnouncement``/``JobResultAnnouncement`` bytes)."""
        decode_job_message(data)  # a local caller's bug should not reach the wire
        return await self._publish(self.ids.jobs, bytes(data))

    # --- gossip handlers -----------------------------------------------------------------------

    async def _on_block_gossip(self, peer: str, data: bytes) -> Verdict:
        self.stats.blocks_received += 1
        self._count_gossip(self.stats.gossip_received, self.ids.blocks)
        try:
            ann = BlockAnnouncement.decode(data)
        except P2PDecodeError as e:
            self._punish(peer, Offence.MALFORMED, str(e))
            return Verdict.REJECT
        block_id = compute_block_id(ann.header)
        if block_id in self._inflight:
            # Another copy is being checked right now: libp2p marks a message seen only once its
            # validator returns, so relays forward copies meanwhile. Not the sender's fault.
            return Verdict.IGNORE
        self._inflight.add(block_id)
        try:
            try:
                parent_id = decode_header(ann.header).pre.prev_id
            except PeerFault as e:  # a header that does not decode: a bad encoding, whatever our chain
                self._punish(peer, Offence.INVALID_BLOCK, f"block {block_id.hex()[:16]}: {e}")
                return Verdict.REJECT
            if block_id in self._orphans:
                # Held already: another relay that has its parent (honest relays forward only
                # blocks they connected). Free, and that relay is worth syncing from too.
                self._hint_sync(peer)
                return Verdict.IGNORE
            known_at = self._known.get(block_id)
            missing = [] if known_at is not None else await self.chain.missing_blocks([block_id, parent_id])
            if block_id not in missing:
                if known_at is None or time.monotonic() - known_at > FREE_DUPLICATE_SECONDS:
                    self._punish(peer, Offence.USELESS, "a block we have")  # floods add up; the odd one recovers
                return Verdict.IGNORE
            if parent_id in missing:
                return await self._on_orphan(peer, block_id, parent_id, ann)
            block = await self._block_of(peer, block_id, ann)
            if block is None:
                return Verdict.IGNORE
            return await self._submit_gossip_block(peer, block_id, block)
        finally:
            self._inflight.discard(block_id)

    async def _block_of(self, peer: str, block_id: bytes, ann: BlockAnnouncement) -> bytes | None:
        """The announced block: its bytes, or for a header-only announcement, fetched from ``peer``."""
        if ann.full:
            return ann.data
        got = await self.requests.blocks([block_id], [peer])
        return got[block_id][0] if block_id in got else None

    async def _on_orphan(self, peer: str, block_id: bytes, parent_id: bytes, ann: BlockAnnouncement) -> Verdict:
        """A block whose parent is unknown: within the check bounds, fetched if need be, checked and held.

        At most ``MAX_ORPHAN_CHECKS_PER_PEER`` of a peer's orphans, and
        ``MAX_ORPHAN_CHECKS_WAITING`` in all, are fetched or checked at once;
        more are dropped unread (no charge: an honest relay of a burst of new
        blocks meets the bound too, and sync fetches what it dropped). So a
        flood of orphans cannot pile up in memory while the checks run.
        """
        if (self._checking[peer] >= MAX_ORPHAN_CHECKS_PER_PEER
                or sum(self._checking.values()) >= MAX_ORPHAN_CHECKS_WAITING):
            self._hint_sync(peer)
            return Verdict.IGNORE
        self._checking[peer] += 1
        try:
            block = await self._block_of(peer, block_id, ann)
            if block is None:
                return Verdict.IGNORE
            return await self._take_orphan(peer, block_id, parent_id, block)
        finally:
            self._checking[peer] -= 1
            if self._checking[peer] <= 0:
                del self._checking[peer]

    def _remember_known(self, block_id: bytes) -> None:
        """Note a block the chain holds, so a later copy is recognised without asking the chain."""
        if block_id in self._known:
            return  # keep when it first became known
        self._known[block_id] = time.monotonic()
        while len(self._known) > MAX_KNOWN_BLOCKS:
            self._known.popitem(last=False)

    def _hint_sync(self, peer: str) -> None:
        """``peer`` sent a block we could not place: it knows blocks we lack, so sync from it."""
        state = self._peers.get(peer)
        if state is not None:
            state.sync_hint = True
            self.sync.wanted.set()

    async def _submit_gossip_block(self, peer: str, block_id: bytes, block: bytes) -> Verdict:
        """Hand a block whose parent we hold to the chain; only a fully validated one is forwarded."""
        try:
            result = await self.chain.submit_block(block, peer)
        except PeerFault as e:
            self._punish(peer, Offence.INVALID_BLOCK, f"block {block_id.hex()[:16]}: {e}")
            return Verdict.REJECT
        except Exception as e:  # transient: the chain could not take it now
            log.info("block %s from %s not taken now: %s", block_id.hex()[:16], peer, e)
            return Verdict.IGNORE
        if result == Intake.ACCEPTED:
            self.stats.blocks_accepted += 1
            self._after_accept(block_id)
            return Verdict.ACCEPT
        if result == Intake.STORED:
            # A side branch: its state is not checked until the branch overtakes the tip, so it
            # is not forwarded (a node for which it extends the tip would check it and could find
            # a fault we did not). Its held children may make the branch overtake.
            self._after_accept(block_id)
        elif result == Intake.ORPHAN:  # its parent went away meanwhile: the chain holds it
            self._hint_sync(peer)
        elif result == Intake.REJECTED:
            self._punish(peer, Offence.INVALID_BLOCK, f"block {block_id.hex()[:16]}")
            return Verdict.REJECT
        elif result == Intake.IGNORED:
            log.info("block %s from %s refused, not its fault", block_id.hex()[:16], peer)
        return Verdict.IGNORE

    async def _take_orphan(self, peer: str, block_id: bytes, parent_id: bytes, block: bytes) -> Verdict:
        """Check a block whose parent is unknown on its own and hold it; never forwarded."""
        try:
            await self.chain.check_orphan(block)
        except PeerFault as e:
            self._punish(peer, Offence.INVALID_BLOCK, f"orphan {block_id.hex()[:16]}: {e}")
            return Verdict.REJECT
        except Exception as e:  # transient: the check could not run now
            log.info("orphan %s from %s not checked now: %s", block_id.hex()[:16], peer, e)
            return Verdict.IGNORE
        if self.scoring.is_banned(peer):
            return Verdict.IGNORE  # banned while its block was checked: hold nothing of it
        self._orphans.add(block_id, parent_id, block, peer)
        self._hint_sync(peer)
        # The parent may have been stored while the block was checked (and found no children then).
        if not await self.chain.missing_blocks([parent_id]):
            self._adopt_children(parent_id)
        return Verdict.IGNORE

    def _after_accept(self, block_id: bytes) -> None:
        """A block was stored (connected, or on a side branch): remember it, and submit the held
        orphans that waited for it (children of a side-branch block may make its branch overtake)."""
        self._remember_known(block_id)
        self._adopt_children(block_id)

    def _adopt_children(self, parent_id: bytes) -> None:
        for orphan in self._orphans.take_children(parent_id):
            self._spawn(self._adopt_orphan(orphan), "orphan")

    async def _adopt_orphan(self, orphan: Orphan) -> None:
        """Submit a held orphan now that its parent is stored; announce it only if it connected."""
        block_id = orphan.block_id
        try:
            result = await self.chain.submit_block(orphan.raw, ORPHAN_POOL)
        except PeerFault as e:
            # It passed the context-free checks when it came; what fails now is checked against its
            # parent (a wrong target, a time warp) and does not depend on state: the sender's fault.
            self._punish(orphan.peer, Offence.INVALID_BLOCK, f"orphan {block_id.hex()[:16]}: {e}")
            return
        except Exception as e:  # transient
            log.info("orphan %s not taken: %s", block_id.hex()[:16], e)
            return
        if result == Intake.ACCEPTED:
            self.stats.blocks_accepted += 1
            self._after_accept(block_id)
            # Peers downstream never saw it (we did not forward it): announce it now.
            await self.announce_block(orphan.raw)
        elif result == Intake.STORED:
            self._after_accept(block_id)
        elif result == Intake.DUPLICATE:  # sync brought it meanwhile (and told us, if it connected)
            self._adopt_children(block_id)
        else:
            log.info("orphan %s from %s: %s", block_id.hex()[:16], orphan.peer, result)

    async def _on_tx_gossip(self, peer: str, data: bytes) -> Verdict:
        """Decode a batch and queue it for admission; never forwarded as is (see ``_admit_tx_batches``).

        Admitting a batch of thousands of transfers takes a while, and py-libp2p runs at most ten
        validators at once for all topics together: a validator that waited for admission would
        hold blocks and job announcements behind transfers (blocks took seconds to propagate under
        a burst of transfers). So the validator only decodes; the batch waits in a bounded queue
        (``MAX_TX_BACKLOG`` transactions, ``MAX_TX_BACKLOG_PER_PEER`` of one peer, and at most
        ``MAX_TX_BACKLOG_BYTES`` / ``MAX_TX_BACKLOG_BYTES_PER_PEER`` bytes; a batch beyond that
        is dropped, at no charge: an overloaded node, not a faulty peer), and the transactions it
        admits are announced again in this node's own batches.
        """
        self._count_gossip(self.stats.gossip_received, self.ids.txs)
        try:
            txs = decode_tx_batch(data)
        except P2PDecodeError as e:
            self._punish(peer, Offence.MALFORMED, str(e))
            return Verdict.REJECT
        self.stats.txs_received += len(txs)
        waiting = sum(self._tx_backlog_of.values())
        size = sum(len(t) for t in txs)
        waiting_bytes = sum(self._tx_backlog_bytes_of.values())
        if (waiting + len(txs) > MAX_TX_BACKLOG or self._tx_backlog_of[peer] + len(txs) > MAX_TX_BACKLOG_PER_PEER
                or waiting_bytes + size > MAX_TX_BACKLOG_BYTES
                or self._tx_backlog_bytes_of[peer] + size > MAX_TX_BACKLOG_BYTES_PER_PEER):
            self.stats.tx_batches_dropped += 1
            log.info("tx batch of %d (%d bytes) from %s dropped: %d transactions (%d bytes) wait for admission",
                     len(txs), size, peer, waiting, waiting_bytes)
            return Verdict.IGNORE
        self._tx_backlog.append((peer, txs))
        self._tx_backlog_of[peer] += len(txs)
        self._tx_backlog_bytes_of[peer] += size
        self._tx_backlog_ready.set()
        return Verdict.IGNORE

    async def _admit_tx_batches(self) -> None:
        """Admit queued batches in arrival order, until cancelled."""
        while True:
            await self._tx_backlog_ready.wait()
            self._tx_backlog_ready.clear()
            while self._tx_backlog:
                peer, txs = self._tx_backlog.popleft()
                self._tx_backlog_of[peer] -= len(txs)
                self._tx_backlog_bytes_of[peer] -= sum(len(t) for t in txs)
                if self._tx_backlog_of[peer] <= 0:
                    del self._tx_backlog_of[peer]
                    del self._tx_backlog_bytes_of[peer]
                if not self.scoring.is_banned(peer):
                    await self._admit_tx_batch(peer, txs)

    async def _admit_tx_batch(self, peer: str, txs: list[bytes]) -> None:
        try:
            results = await self.chain.submit_txs(txs, peer)
        except Exception as e:  # transient
            log.info("tx batch from %s not taken: %s", peer, e)
            return
        accepted = [t for t, r in zip(txs, results, strict=True) if r.intake == Intake.ACCEPTED]
        rejected = [r.reason for r in results if r.intake == Intake.REJECTED]
        self.stats.txs_accepted += len(accepted)
        for reason in rejected:
            if self.scoring.penalise(peer, Offence.INVALID_TX, reason):
                break
        if accepted:
            await self.announce_txs(accepted)
        elif not rejected and all(r.intake == Intake.DUPLICATE and not r.recent for r in results):
            # Only a batch of old duplicates is useless: "ignored" ones (a nonce or balance that
            # depends on what each node has seen so far) are races under load, and duplicates first
            # seen moments ago crossed ours in flight (relays re-announce what they accepted).
            self._punish(peer, Offence.USELESS, "a batch of transactions we have")

    async def _on_job_gossip(self, peer: str, data: bytes) -> Verdict:
        self._count_gossip(self.stats.gossip_received, self.ids.jobs)
        try:
            decode_job_message(data)
        except P2PDecodeError as e:
            self._punish(peer, Offence.MALFORMED, str(e))
            return Verdict.REJECT
        try:
            await self.chain.on_job_announcement(data, peer)
        except PeerFault as e:
            self._punish(peer, Offence.MALFORMED, f"job announcement: {e}")
            return Verdict.REJECT
        except Exception as e:  # transient
            log.info("job announcement from %s not taken: %s", peer, e)
            return Verdict.IGNORE
        return Verdict.ACCEPT

    # --- serving requests ----------------------------------------------------------------------

    def _decode_request(self, peer: str, decode: Callable[[bytes], Any], data: bytes) -> Any:
        try:
            return decode(data)
        except P2PDecodeError as e:
            self._punish(peer, Offence.MALFORMED, str(e))
            raise

    async def _serve_status(self, peer: str, data: bytes) -> bytes:
        theirs = self._decode_request(peer, Status.decode, data)
        self._record_status(peer, theirs)
        return self.our_status().encode()

    async def _serve_headers(self, peer: str, data: bytes) -> bytes:
        locator, max_count = self._decode_request(peer, decode_headers_request, data)
        headers = await self.chain.headers_after(locator, min(max_count, MAX_HEADERS))
        return encode_headers_response(headers[:max_count])

    async def _serve_blocks(self, peer: str, data: bytes) -> bytes:
        ids = self._decode_request(peer, decode_blocks_request, data)
        return encode_blocks_response(await self.chain.get_blocks(ids, MAX_PAGE_BYTES))

    async def _serve_blob(self, peer: str, data: bytes) -> bytes:
        """One page of a blob, read on its own (``ChainAccess.get_blob_page``): no whole-blob reads."""
        digest, offset = self._decode_request(peer, decode_blob_request, data)
        page = await self.chain.get_blob_page(digest.hex(), offset, BLOB_CHUNK_BYTES)
        if page is None:
            return encode_blob_response(None)
        total, chunk = page
        return encode_blob_response(BlobChunk(total, chunk[:BLOB_CHUNK_BYTES]))

    async def fetch_blob(self, digest_hex: str, *, peers: Sequence[str] | None = None,
                         max_bytes: int | None = None) -> bytes | None:
        """A blob (job matrix) from whichever peer has it, checked against its hash; ``None`` if none has it.

        The blob is held in memory: ``max_bytes`` bounds it (besides the
        requester's ``max_blob_bytes``). To stream a blob to disk, use
        ``self.requests.blob_into``.
        """
        digest = bytes.fromhex(digest_hex)
        if len(digest) != 32:
            raise ValueError(f"a blob hash is 32 bytes, found {len(digest)}")
        for peer in list(peers) if peers is not None else list(self._peers):
            blob = await self.requests.blob(peer, digest, max_bytes=max_bytes)
            if blob is not None:
                return blob
        return None

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no sync runs and no tx batch waits (tests, benchmarks)."""
        async def idle() -> None:
            while self.sync.wanted.is_set() or self.sync.syncing or not self._tx_idle.is_set():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(idle(), timeout)
