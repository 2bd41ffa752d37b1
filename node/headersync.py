"""Headers-first sync, the part of ``node.sync.PeerNetwork`` that catches up with peers.

With the peer that claims the most work (more than ours): ask for headers after
our block locator (pages of up to 2000), check they link, fetch the bodies we
lack by id from several peers in parallel (pages under 4 MiB, re-asked for the
rest), and submit them in order. Forks need nothing special: the locator finds
the fork point, the chain stores the other branch and reorganises when it
carries more work. Sync re-runs when a peer shows more work than ours
(handshake, status poll, an orphan block), e.g. when a partition heals.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from consensus.codec import decode_header
from consensus.errors import DecodeError, PeerFault
from p2p.protocol import MAX_LOCATOR
from p2p.scoring import Offence

from .peerstate import ACCEPTED, ORPHAN, PeerState

log = logging.getLogger(__name__)


class _SyncAbort(Exception):
    """Stop syncing from this peer (the reason is logged where it is raised)."""


class HeadersFirstSync:
    """Mixed into ``PeerNetwork``: uses its chain, peers, requester, scores and settings."""


    @property
    def syncing(self) -> bool:
        return not self._sync_idle.is_set()

    def request_sync(self) -> None:
        """Look for a peer with more work now (normally triggered by statuses and orphans)."""
        self._sync_wanted.set()

    def _sync_candidate(self) -> PeerState | None:
        our_work = self.chain.status()[2]
        best: PeerState | None = None
        for state in self._peers.values():
            st = state.status
            if st is None:
                continue
            wanted = state.sync_hint or (st.work > our_work and st.work != state.tried_work)
            if wanted and (best is None or st.work > best.status.work):  # type: ignore[union-attr]
                best = state
        return best

    async def _sync_loop(self) -> None:
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted.clear()
            self._sync_idle.clear()
            try:
                while (state := self._sync_candidate()) is not None:
                    peer = state.peer_id
                    state.sync_hint = False
                    claimed = state.status.work if state.status else 0
                    self.stats.syncs += 1
                    try:
                        progressed = await self._sync_from(peer)
                    except _SyncAbort as e:
                        log.info("sync from %s stopped: %s", peer, e)
                        progressed = False
                    except Exception:  # noqa: BLE001 - the sync loop must outlive one bad round
                        log.exception("sync from %s failed", peer)
                        progressed = False
                    if not progressed and peer in self._peers:
                        self._peers[peer].tried_work = claimed
                    if progressed:
                        await self._announce_tip()
                    if peer in self._peers:
                        await self._handshake(peer)  # their status may have moved on meanwhile
            finally:
                self._sync_idle.set()

    async def _announce_tip(self) -> None:
        # Blocks that came by sync were never gossiped to us, so our other peers may
        # lack them (a healed partition): announcing the new tip lets them find out
        # (they hold it as an orphan and sync from us). Peers that have it drop it.
        tip = self.chain.get_block_bytes(self.chain.status()[0])
        if tip is not None:
            await self.announce_block(tip)

    def _body_sources(self, peer: str) -> list[str]:
        """Peers to spread body requests over: the sync peer and others about as far along."""
        lead = self._peers.get(peer)
        lead_work = lead.status.work if lead and lead.status else 0
        others = [p for p, s in self._peers.items()
                  if p != peer and s.status is not None and s.status.work >= lead_work]
        return [peer, *others]

    async def _sync_from(self, peer: str) -> bool:
        """Headers first from ``peer`` until it has nothing more; True if any block was new to us."""
        progressed = False
        base = self.chain.locator()[:MAX_LOCATOR]
        locator = base
        while peer in self._peers:
            headers = await self.requests.headers(peer, locator, self.headers_per_page)
            if headers is None:
                raise _SyncAbort("no usable headers answer")
            try:
                parsed = [decode_header(h) for h in headers]
            except DecodeError as e:
                self._punish(peer, Offence.MALFORMED, str(e))
                raise _SyncAbort("malformed headers") from e
            if not parsed:
                return progressed
            ids = [h.block_id for h in parsed]
            for prev, header in zip(ids, parsed[1:]):
                if header.pre.prev_id != prev:
                    self._punish(peer, Offence.BAD_RESPONSE, "headers do not link")
                    raise _SyncAbort("unlinked headers")
            if not self.chain.has_block(parsed[0].pre.prev_id):
                self._punish(peer, Offence.BAD_RESPONSE, "headers do not start from our locator")
                raise _SyncAbort("headers from an unknown parent")
            missing = [i for i in ids if not self.chain.has_block(i)]
            if missing:
                progressed |= await self._fetch_and_submit(peer, missing)
            if len(parsed) < self.headers_per_page:
                return progressed
            locator = [ids[-1], *base[:MAX_LOCATOR - 1]]
        return progressed

    async def _fetch_and_submit(self, peer: str, missing: list[bytes]) -> bool:
        """Fetch ``missing`` (in chain order) from several peers at once; submit in order."""
        sources = self._body_sources(peer)
        chunks = [missing[i:i + self.body_chunk] for i in range(0, len(missing), self.body_chunk)]
        window: deque[asyncio.Task] = deque()
        next_chunk = 0
        accepted = False

        def launch() -> None:
            nonlocal next_chunk
            i = next_chunk
            next_chunk += 1
            helper = sources[i % len(sources)]
            window.append(asyncio.ensure_future(self.requests.blocks(chunks[i], [helper, peer])))

        try:
            for chunk in chunks:
                while next_chunk < len(chunks) and len(window) < self.parallel_fetches:
                    launch()
                got = await window.popleft()
                for block_id in chunk:
                    if block_id not in got:
                        raise _SyncAbort(f"no peer served block {block_id.hex()[:16]}")
                    block, src = got[block_id]
                    try:
                        result = await self.chain.submit_block(block, src)
                    except PeerFault as e:
                        self._punish(src, Offence.INVALID_BLOCK, f"block {block_id.hex()[:16]}: {e}")
                        raise _SyncAbort(f"invalid block from {src}") from e
                    except Exception as e:  # noqa: BLE001 - transient
                        raise _SyncAbort(f"chain did not take block {block_id.hex()[:16]}: {e}") from e
                    if result == ACCEPTED:
                        accepted = True
                        self.stats.blocks_synced += 1
                        self._after_accept(block_id)
                    elif result == ORPHAN:
                        raise _SyncAbort(f"block {block_id.hex()[:16]} arrived as an orphan")
        finally:
            for task in window:
                task.cancel()
        return accepted
