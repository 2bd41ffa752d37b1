"""The requesting side of the sync protocols: status, headers, blocks by id, blobs.

``PeerRequester`` sends one request at a time over a ``P2PHost``, decodes the
answer with ``p2p.protocol`` and charges the peer for what went wrong
(``p2p.scoring``): a timeout, malformed bytes, or an answer that decodes but is
wrong (a block other than the one asked for, a blob that does not hash to its
name). Every method returns ``None`` (or what it got so far, or a
``BlobFetch`` outcome) instead of raising for a peer's failure; ``ValueError``
only for a local caller's mistake. Blobs are streamed page by page
(``blob_into``) and hashed as they arrive, never held whole unless asked
(``blob``), and never beyond the size the caller expects.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields
from enum import StrEnum
from typing import TYPE_CHECKING

from blake3 import blake3

from pouw.constants import HEADER_SIZE
from pouw.header import compute_block_id

from .errors import P2PDecodeError, P2PError, RequestTimeout
from .peers import NetworkStats
from .protocol import (
    ProtocolIds,
    Status,
    decode_blob_response,
    decode_blocks_response,
    decode_headers_response,
    encode_blob_request,
    encode_blocks_request,
    encode_headers_request,
)
from .scoring import Offence, ScoreBook

if TYPE_CHECKING:
    from .host import P2PHost

log = logging.getLogger(__name__)


class BlobFetch(StrEnum):
    """How ``PeerRequester.blob_into`` ended."""

    OK = "ok"
    """The whole blob was written, and it hashes to its name."""
    NOT_FOUND = "not-found"
    """The peer does not have it."""
    FAILED = "failed"
    """No answer (a timeout costs the peer ``TIMEOUT``), or the blob went away between pages."""
    TOO_LARGE = "too-large"
    """The peer says the blob is bigger than asked for; nothing was written."""
    BAD = "bad"
    """Malformed or inconsistent pages, or bytes that do not hash to the name: the peer was penalised."""


class PeerRequester:
    """Client side of the request/response protocols of one chain.

    Timeouts are counted in ``stats.request_timeouts`` by protocol name (a
    ``NetworkStats`` of its own unless the caller shares one).
    """

    def __init__(self, host: P2PHost, ids: ProtocolIds, scoring: ScoreBook, *, timeout: float = 10.0,
                 max_blob_bytes: int = 256 << 20, stats: NetworkStats | None = None) -> None:
        self.host = host
        self.ids = ids
        self.scoring = scoring
        self.timeout = timeout
        self.max_blob_bytes = max_blob_bytes
        self.stats = stats if stats is not None else NetworkStats()
        self._names = {getattr(ids, f.name): f.name for f in fields(ids)}

    def punish(self, peer: str, offence: Offence, detail: str = "") -> bool:
        """Charge ``peer`` for ``offence``; True if that banned it."""
        log.info("peer %s: %s %s", peer, offence.label, detail)
        return self.scoring.penalise(peer, offence, detail)

    async def request(self, peer: str, protocol: str, data: bytes) -> bytes | None:
        """One request; a timeout costs score; ``None`` on any failure."""
        try:
            return await self.host.request(peer, protocol, data, self.timeout)
        except RequestTimeout:
            name = self._names.get(protocol, "other")
            self.stats.request_timeouts[name] = self.stats.request_timeouts.get(name, 0) + 1
            self.punish(peer, Offence.TIMEOUT, protocol)
        except P2PError as e:
            log.debug("%s to %s failed: %s", protocol, peer, e)
        return None

    async def status(self, peer: str, ours: Status) -> Status | None:
        """Send our status, get theirs."""
        raw = await self.request(peer, self.ids.status, ours.encode())
        if raw is None:
            return None
        try:
            return Status.decode(raw)
        except P2PDecodeError as e:
            self.punish(peer, Offence.MALFORMED, str(e))
            return None

    async def headers(self, peer: str, locator: list[bytes], max_count: int) -> list[bytes] | None:
        """Raw 212-byte headers after ``locator`` on ``peer``'s main chain."""
        raw = await self.request(peer, self.ids.headers, encode_headers_request(locator, max_count))
        if raw is None:
            return None
        try:
            headers = decode_headers_response(raw)
        except P2PDecodeError as e:
            self.punish(peer, Offence.MALFORMED, str(e))
            return None
        if len(headers) > max_count:
            self.punish(peer, Offence.BAD_RESPONSE, f"{len(headers)} headers for {max_count} asked")
            return None
        return headers

    async def blocks_page(self, peer: str, ids: list[bytes]) -> list[bytes | None] | None:
        """One blocks-by-id page: entries for a prefix of ``ids`` (``None``: not available)."""
        raw = await self.request(peer, self.ids.blocks_by_id, encode_blocks_request(ids))
        if raw is None:
            return None
        try:
            return decode_blocks_response(raw, len(ids))
        except P2PDecodeError as e:
            self.punish(peer, Offence.MALFORMED, str(e))
            return None

    async def blocks(self, ids: list[bytes], sources: Sequence[str]) -> dict[bytes, tuple[bytes, str]]:
        """Blocks by id, asking ``sources`` in turn and paging; ``{id: (block, source)}`` for those found.

        Each block's header is checked to hash to the id asked for.
        """
        got: dict[bytes, tuple[bytes, str]] = {}
        for src in dict.fromkeys(sources):
            want = [i for i in ids if i not in got]
            while want:
                entries = await self.blocks_page(src, want)
                if not entries:
                    break
                for block_id, block in zip(want, entries, strict=False):  # a page answers a prefix
                    if block is None:
                        continue
                    if len(block) < HEADER_SIZE or compute_block_id(block[:HEADER_SIZE]) != block_id:
                        self.punish(src, Offence.BAD_RESPONSE, "a block that is not the one asked for")
                        entries = []
                        break
                    got[block_id] = (block, src)
                if not entries or all(e is None for e in entries):
                    break
                want = want[len(entries):]
            if len(got) == len(ids):
                break
        return got

    async def blob_into(self, peer: str, digest: bytes, write: Callable[[bytes], Awaitable[object]], *,
                        max_bytes: int | None = None) -> BlobFetch:
        """Stream a blob from ``peer`` page by page into ``write``, hashing it as it goes.

        ``max_bytes`` (at most the requester's ``max_blob_bytes``): a blob the
        peer says is bigger is not fetched at all (``TOO_LARGE``, after one
        page; the caller decides whether that is the peer's fault). Pages that
        disagree or bytes that do not hash to ``digest`` cost the peer
        ``BAD_RESPONSE`` (``BAD``); ``write`` has then seen bytes that must be
        thrown away. Only ``OK`` means ``write`` got the whole blob, checked.
        """
        limit = self.max_blob_bytes if max_bytes is None else min(max_bytes, self.max_blob_bytes)
        hasher = blake3()
        offset, total = 0, None
        while total is None or offset < total:
            raw = await self.request(peer, self.ids.blob, encode_blob_request(digest, offset))
            if raw is None:
                return BlobFetch.FAILED
            try:
                chunk = decode_blob_response(raw)
            except P2PDecodeError as e:
                self.punish(peer, Offence.MALFORMED, str(e))
                return BlobFetch.BAD
            if chunk is None:  # not there (or gone since the first page: evicted, not a fault)
                return BlobFetch.NOT_FOUND if offset == 0 else BlobFetch.FAILED
            if total is None:
                total = chunk.total
                if total > limit:
                    log.info("blob %s from %s: %d bytes is over the %d expected", digest.hex()[:16], peer, total,
                             limit)
                    return BlobFetch.TOO_LARGE
            if chunk.total != total or (not chunk.data and offset < total) or offset + len(chunk.data) > total:
                self.punish(peer, Offence.BAD_RESPONSE, "inconsistent blob pages")
                return BlobFetch.BAD
            hasher.update(chunk.data)
            await write(chunk.data)
            offset += len(chunk.data)
        if hasher.digest() != digest:
            self.punish(peer, Offence.BAD_RESPONSE, f"blob {digest.hex()[:16]} does not match its hash")
            return BlobFetch.BAD
        return BlobFetch.OK

    async def blob(self, peer: str, digest: bytes, *, max_bytes: int | None = None) -> bytes | None:
        """A whole blob from ``peer`` in memory (at most ``max_bytes``); checked against its BLAKE3 ``digest``."""
        parts: list[bytes] = []

        async def keep(data: bytes) -> None:
            parts.append(data)

        outcome = await self.blob_into(peer, digest, keep, max_bytes=max_bytes)
        return b"".join(parts) if outcome is BlobFetch.OK else None
