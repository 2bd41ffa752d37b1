"""Headers-first sync: how ``p2p.network.PeerNetwork`` catches up with peers.

With the peer that claims the most work (more than ours): ask for headers after
our block locator (pages of up to 2000), check they link, and have the chain
check and weigh each page (``ChainAccess.check_headers``: every header against
its parent, targets included, and the branch's work summed from the headers'
own targets). The claim in the peer's status only picks whom to ask; what
counts is the work of the headers received. Only once that work is in reach
of our tip (more, or within ``side_branch_margin`` tip blocks) are the bodies
we lack fetched by id from several peers in parallel (pages under 4 MiB,
re-asked for the rest) and submitted in order; the chain stores them although
the stored part of the branch is still short (it checked their headers).

Until then (presync, after Bitcoin Core's idea of weighing headers before
keeping them) a branch costs bounded memory: the running total, the last
header's ``ParentInfo`` and a bounded list of the ids of the headers we lack
(the chain's presync limit), in a ``consensus.forkchoice.HeaderRun``. A branch that ends out of reach is simply
not followed; one that forks more than ``max_fork_depth`` below our tip is
refused; neither costs the peer anything. Headers that do not link, that do
not start on a block we have, or that break a header rule (a wrong target for
their parent, a time warp) are the peer's fault. Headers prove no work here by
themselves (the certificate travels with the body): a peer that serves
fabricated headers is found out at the first body, whose certificate fails,
and banned.

Sync re-runs when a peer shows more work than ours (handshake, status poll, an
orphan block), e.g. when a partition heals.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from consensus.codec import decode_header
from consensus.errors import DecodeError, PeerFault
from consensus.forkchoice import HeaderRun, RunVerdict
from consensus.types import Header

from .access import ChainAccess, Intake
from .peers import NetworkStats, PeerState
from .protocol import MAX_HEADERS, MAX_IDS, MAX_LOCATOR
from .requests import PeerRequester
from .scoring import Offence

log = logging.getLogger(__name__)


class _SyncAbort(Exception):
    """Stop syncing from this peer (the reason is logged where it is raised)."""


class HeadersFirstSync:
    """The sync task of a ``PeerNetwork``; it shares the network's peer table, requester and stats.

    ``after_accept(block_id)`` is told of every block sync got accepted (held
    orphans may be waiting for it), ``announce_block(raw)`` gossips our new tip
    after a sync that made progress, and ``refresh_status(peer)`` asks a peer
    for its status again.
    """

    def __init__(self, chain: ChainAccess, requests: PeerRequester, peers: dict[str, PeerState],
                 stats: NetworkStats, *, after_accept: Callable[[bytes], None],
                 announce_block: Callable[[bytes], Awaitable[bool]],
                 refresh_status: Callable[[str], Awaitable[None]],
                 headers_per_page: int = MAX_HEADERS, body_chunk: int = 128, parallel_fetches: int = 4) -> None:
        self.chain = chain
        self.requests = requests
        self.peers = peers
        self.stats = stats
        self.after_accept = after_accept
        self.announce_block = announce_block
        self.refresh_status = refresh_status
        self.headers_per_page = min(headers_per_page, MAX_HEADERS)
        self.body_chunk = min(body_chunk, MAX_IDS)
        self.parallel_fetches = parallel_fetches
        self.wanted = asyncio.Event()
        """Set to look for a peer with more work (statuses and orphans set it)."""
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def syncing(self) -> bool:
        return not self.idle.is_set()

    def candidate(self) -> PeerState | None:
        """The peer to sync from: the most work claimed beyond ours, or one that sent an orphan."""
        our_work = self.chain.status()[2]
        best: PeerState | None = None
        best_work = -1
        for state in self.peers.values():
            st = state.status
            if st is None:
                continue
            wanted = state.sync_hint or (st.work > our_work and st.work != state.tried_work)
            if wanted and st.work > best_work:
                best, best_work = state, st.work
        return best

    async def run(self) -> None:
        """Sync whenever ``wanted`` is set, until cancelled."""
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            self.idle.clear()
            try:
                while (state := self.candidate()) is not None:
                    await self._round(state)
            finally:
                self.idle.set()

    async def _round(self, state: PeerState) -> None:
        peer = state.peer_id
        state.sync_hint = False
        claimed = state.status.work if state.status else 0
        self.stats.syncs += 1
        try:
            progressed = await self.sync_from(peer)
        except _SyncAbort as e:
            log.info("sync from %s stopped: %s", peer, e)
            progressed = False
        except Exception:  # the sync loop must outlive one bad round
            log.exception("sync from %s failed", peer)
            progressed = False
        if not progressed and peer in self.peers:
            self.peers[peer].tried_work = claimed
        if progressed:
            await self._announce_tip()
        if peer in self.peers:
            await self.refresh_status(peer)  # their status may have moved on meanwhile

    async def _announce_tip(self) -> None:
        # Blocks that came by sync were never gossiped to us, so our other peers may
        # lack them (a healed partition): announcing the new tip lets them find out
        # (they hold it as an orphan and sync from us). Peers that have it drop it.
        tip = (await self.chain.get_blocks([self.chain.status()[0]], 1 << 30))[0]
        if tip is not None:
            await self.announce_block(tip)

    def _body_sources(self, peer: str) -> list[str]:
        """Peers to spread body requests over: the sync peer and others about as far along."""
        lead = self.peers.get(peer)
        lead_work = lead.status.work if lead and lead.status else 0
        others = [p for p, s in self.peers.items()
                  if p != peer and s.status is not None and s.status.work >= lead_work]
        return [peer, *others]

    async def sync_from(self, peer: str) -> bool:
        """Headers first from ``peer`` until it has nothing more; True if any block was new to us."""
        progressed = False
        base = (await self.chain.locator())[:MAX_LOCATOR]
        locator = base
        run: HeaderRun | None = None
        while peer in self.peers:
            parsed = await self._headers_page(peer, locator)
            if not parsed:
                break
            start = parsed[0].pre.prev_id
            if run is None and await self.chain.missing_blocks([start]):
                self.requests.punish(peer, Offence.BAD_RESPONSE, "headers do not start from our locator")
                raise _SyncAbort("headers from an unknown parent")
            if run is not None and start != run.last.block_id:
                self.requests.punish(peer, Offence.BAD_RESPONSE, "headers do not continue the page before")
                raise _SyncAbort("unlinked header pages")
            run = await self._check_page(peer, parsed, run)
            if run.verdict in (RunVerdict.TOO_DEEP, RunVerdict.TOO_LONG):
                raise _SyncAbort(f"branch refused ({run.verdict}) at height {run.last.height}")
            if run.fetch:
                progressed |= await self._fetch_and_submit(peer, list(run.fetch))
            if len(parsed) < self.headers_per_page:
                break
            locator = [parsed[-1].block_id, *base[:MAX_LOCATOR - 1]]
        if run is not None and run.verdict == RunVerdict.PRESYNC and run.pending:
            log.info("sync from %s: its branch (work %d at height %d) is out of reach of our tip; not followed",
                     peer, run.chain_work, run.last.height)
        return progressed

    async def _check_page(self, peer: str, parsed: list[Header], run: HeaderRun | None) -> HeaderRun:
        """The chain's check of a page of headers; a header invalid on its parent is the peer's fault."""
        try:
            return await self.chain.check_headers(parsed, run)
        except PeerFault as e:
            self.requests.punish(peer, Offence.INVALID_BLOCK, f"header: {e}")
            raise _SyncAbort("invalid headers") from e
        except Exception as e:  # not judged now (a header ahead of our clock, a branch found invalid): no fault
            raise _SyncAbort(f"headers not taken: {e}") from e

    async def _headers_page(self, peer: str, locator: list[bytes]) -> list[Header]:
        """One page of linked headers after ``locator`` from ``peer``."""
        headers = await self.requests.headers(peer, locator, self.headers_per_page)
        if headers is None:
            raise _SyncAbort("no usable headers answer")
        try:
            parsed = [decode_header(h) for h in headers]
        except DecodeError as e:
            self.requests.punish(peer, Offence.MALFORMED, str(e))
            raise _SyncAbort("malformed headers") from e
        for prev, header in zip(parsed, parsed[1:], strict=False):
            if header.pre.prev_id != prev.block_id:
                self.requests.punish(peer, Offence.BAD_RESPONSE, "headers do not link")
                raise _SyncAbort("unlinked headers")
        return parsed

    async def _fetch_and_submit(self, peer: str, missing: list[bytes]) -> bool:
        """Fetch ``missing`` (in chain order) from several peers at once; submit in order."""
        sources = self._body_sources(peer)
        chunks = [missing[i:i + self.body_chunk] for i in range(0, len(missing), self.body_chunk)]
        window: deque[asyncio.Future] = deque()
        next_chunk = 0
        accepted = False
        try:
            for chunk in chunks:
                while next_chunk < len(chunks) and len(window) < self.parallel_fetches:
                    helper = sources[next_chunk % len(sources)]
                    window.append(asyncio.ensure_future(self.requests.blocks(chunks[next_chunk], [helper, peer])))
                    next_chunk += 1
                got = await window.popleft()
                for block_id in chunk:
                    if block_id not in got:
                        raise _SyncAbort(f"no peer served block {block_id.hex()[:16]}")
                    accepted |= await self._submit_synced(block_id, *got[block_id])
        finally:
            for task in window:
                task.cancel()
        return accepted

    async def _submit_synced(self, block_id: bytes, block: bytes, src: str) -> bool:
        try:
            result = await self.chain.submit_block(block, src)
        except PeerFault as e:
            self.requests.punish(src, Offence.INVALID_BLOCK, f"block {block_id.hex()[:16]}: {e}")
            raise _SyncAbort(f"invalid block from {src}") from e
        except Exception as e:  # transient
            raise _SyncAbort(f"chain did not take block {block_id.hex()[:16]}: {e}") from e
        if result == Intake.ORPHAN:
            raise _SyncAbort(f"block {block_id.hex()[:16]} arrived as an orphan")
        if result == Intake.IGNORED:  # refused (not its fault): the rest of the branch cannot follow it
            raise _SyncAbort(f"chain refused block {block_id.hex()[:16]}")
        if result in (Intake.ACCEPTED, Intake.STORED):  # STORED: the branch has not overtaken yet
            self.stats.blocks_synced += 1
            self.after_accept(block_id)
            return result == Intake.ACCEPTED
        return False
