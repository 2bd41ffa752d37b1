"""The requesting side of the sync protocols: status, headers, blocks by id, blobs.

``PeerRequester`` sends one request at a time over a ``P2PHost``, decodes the
answer with ``p2p.protocol`` and charges the peer for what went wrong
(``p2p.scoring``): a timeout, malformed bytes, or an answer that decodes but is
wrong (a block other than the one asked for, a blob that does not hash to its
name). Every method returns ``None`` (or what it got so far) instead of
raising for a peer's failure; ``ValueError`` only for a local caller's mistake.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pouw.constants import HEADER_SIZE
from pouw.hashing import H
from pouw.header import compute_block_id

from .errors import P2PDecodeError, P2PError, RequestTimeout
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


class PeerRequester:
    """Client side of the request/response protocols of one chain."""

    def __init__(self, host: P2PHost, ids: ProtocolIds, scoring: ScoreBook, *, timeout: float = 10.0,
                 max_blob_bytes: int = 256 << 20) -> None:
        self.host = host
        self.ids = ids
        self.scoring = scoring
        self.timeout = timeout
        self.max_blob_bytes = max_blob_bytes

    def punish(self, peer: str, offence: Offence, detail: str = "") -> bool:
        """Charge ``peer`` for ``offence``; True if that banned it."""
        log.info("peer %s: %s %s", peer, offence.label, detail)
        return self.scoring.penalise(peer, offence, detail)

    async def request(self, peer: str, protocol: str, data: bytes) -> bytes | None:
        """One request; a timeout costs score; ``None`` on any failure."""
        try:
            return await self.host.request(peer, protocol, data, self.timeout)
        except RequestTimeout:
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

    async def blob(self, peer: str, digest: bytes) -> bytes | None:
        """A whole blob from ``peer`` in pages; checked against its BLAKE3 ``digest``."""
        parts: list[bytes] = []
        offset, total = 0, None
        while total is None or offset < total:
            raw = await self.request(peer, self.ids.blob, encode_blob_request(digest, offset))
            if raw is None:
                return None
            try:
                chunk = decode_blob_response(raw)
            except P2PDecodeError as e:
                self.punish(peer, Offence.MALFORMED, str(e))
                return None
            if chunk is None:
                return None
            if total is None:
                total = chunk.total
                if total > self.max_blob_bytes:
                    log.info("blob %s from %s: %d bytes is over our limit", digest.hex(), peer, total)
                    return None
            if chunk.total != total or (not chunk.data and offset < total):
                self.punish(peer, Offence.BAD_RESPONSE, "inconsistent blob pages")
                return None
            parts.append(chunk.data)
            offset += len(chunk.data)
        blob = b"".join(parts)
        if len(blob) != total or H(blob) != digest:
            self.punish(peer, Offence.BAD_RESPONSE, f"blob {digest.hex()[:16]} does not match its hash")
            return None
        return blob
