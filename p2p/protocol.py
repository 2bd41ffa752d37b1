"""The node's wire protocol over libp2p: topic names, request/response ids, and every byte layout.

All integers are little-endian, as in ``consensus.codec``. Decoders accept
exactly one encoding of each value (no trailing bytes, counts within their
caps) and raise only ``P2PDecodeError``.

Gossip topics (payloads at most ``MAX_GOSSIP_BYTES``):

```
/pouw/<chain_id>/blocks/1   BlockAnnouncement = u8 kind || body
                              kind 0 (full):   body = Block                    (consensus.codec)
                              kind 1 (header): body = Header 212               (block too big to gossip:
                                                                                fetch it by id from the sender)
/pouw/<chain_id>/txs/1      TxBatch = u32 count || (u32 len || Tx) * count     (count >= 1)
/pouw/<chain_id>/jobs/1     JobAnnouncement = job_id 32 || blob_a 32 || blob_b 32 || u32 m || u32 k || u32 n
```

Request/response protocols (one stream per request; requests at most
``MAX_REQUEST_BYTES``, responses below ``MAX_PAGE_BYTES``):

```
/pouw/<chain_id>/status/1        request  = Status (the requester's)   response = Status (the responder's)
                                 Status   = u32 chain_id || genesis_id 32 || tip_id 32 || u64 height || work u256 (32)
/pouw/<chain_id>/headers/1       request  = u16 n || block_id 32 * n (locator, newest first) || u32 max_count
                                 response = u32 count || Header 212 * count   (main-chain headers after the
                                            newest locator entry on the responder's main chain; count <= max_count)
/pouw/<chain_id>/blocks-by-id/1  request  = u16 n || block_id 32 * n
                                 response = u32 count || (u32 len || Block) * count
                                            entry i answers request id i (len 0: not available); count <= n and
                                            the responder stops early to stay under MAX_PAGE_BYTES: ask again
                                            for the rest
/pouw/<chain_id>/blob/1          request  = digest 32 || u64 offset
                                 response = u8 found || [u64 total || chunk]  (found = 1: bytes [offset, offset +
                                            len(chunk)) of a blob of ``total`` bytes; chunk <= BLOB_CHUNK_BYTES)
```
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from consensus.codec import decode_tx
from consensus.errors import DecodeError
from pouw.constants import HEADER_SIZE

from .errors import P2PDecodeError

MAX_GOSSIP_BYTES = 1_000_000
"""Largest gossip payload; libp2p silently drops RPC frames over 1 MiB (1,048,576), envelope included."""
MAX_REQUEST_BYTES = 1 << 20
"""Largest request a node sends or accepts."""
MAX_PAGE_BYTES = 4_000_000 + 64
"""Responses are paged below this (a maximal 4,000,000-byte block plus framing fits alone)."""
MAX_RESPONSE_BYTES = 8 << 20
"""What the transport accepts; pages stay under ``MAX_PAGE_BYTES`` (0.8.1 fails on responses >= 7 MiB)."""
MAX_HEADERS = 2000
"""Headers per page."""
MAX_IDS = 2000
"""Block ids per blocks-by-id request."""
MAX_LOCATOR = 101
"""Entries of a block locator (enough for 2^90 blocks with exponential spacing)."""
BLOB_CHUNK_BYTES = 3 << 20
"""Bytes of blob per response."""
MAX_TX_BATCH = 10_000
"""Transactions per gossip batch."""

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_STATUS = struct.Struct("<I32s32sQ32s")
_JOB = struct.Struct("<32s32s32sIIII")

STATUS_SIZE = _STATUS.size
JOB_ANNOUNCEMENT_SIZE = _JOB.size
_JOB_RESULT = struct.Struct("<32s32s32sI")
JOB_RESULT_SIZE = _JOB_RESULT.size
BLOCK_FULL = 0
BLOCK_HEADER_ONLY = 1


# --- names --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolIds:
    """Every topic and protocol id of one chain."""

    blocks: str
    txs: str
    jobs: str
    status: str
    headers: str
    blocks_by_id: str
    blob: str


def protocol_ids(chain_id: int) -> ProtocolIds:
    """Topic names and request/response protocol ids for ``chain_id``."""
    p = f"/pouw/{int(chain_id)}"
    return ProtocolIds(
        blocks=f"{p}/blocks/1", txs=f"{p}/txs/1", jobs=f"{p}/jobs/1",
        status=f"{p}/status/1", headers=f"{p}/headers/1", blocks_by_id=f"{p}/blocks-by-id/1", blob=f"{p}/blob/1",
    )


# --- helpers ------------------------------------------------------------------------------------


class _Reader:
    """Bounds-checked cursor over untrusted bytes."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise P2PDecodeError(
                f"{self.what}: needs {n} bytes at offset {self.pos}, only {len(self.data) - self.pos} remain")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, s: struct.Struct) -> tuple:
        return s.unpack(self.take(s.size))

    def end(self) -> None:
        if self.pos != len(self.data):
            raise P2PDecodeError(f"{self.what}: {len(self.data) - self.pos} trailing bytes")


def _check_id(name: str, value: bytes) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes, found {value!r}")
    return bytes(value)


def _encode_ids(ids: list[bytes], cap: int, what: str) -> bytes:
    if len(ids) > cap:
        raise ValueError(f"{what}: at most {cap} ids, found {len(ids)}")
    return _U16.pack(len(ids)) + b"".join(_check_id("block id", i) for i in ids)


def _decode_ids(r: _Reader, cap: int) -> list[bytes]:
    (n,) = r.unpack(_U16)
    if n > cap:
        raise P2PDecodeError(f"{r.what}: at most {cap} ids, found {n}")
    raw = r.take(32 * n)
    return [raw[i:i + 32] for i in range(0, len(raw), 32)]


# --- block locator ------------------------------------------------------------------------------


def compute_locator(height: int, id_at: Callable[[int], bytes]) -> list[bytes]:
    """Block locator of a chain of ``height``: the 10 newest ids, then steps doubling back,
    genesis last (newest first, at most ``MAX_LOCATOR`` ids). ``id_at(h)`` is the id at height ``h``."""
    out: list[bytes] = []
    step, h = 1, height
    while h > 0 and len(out) < MAX_LOCATOR - 1:
        out.append(id_at(h))
        if len(out) >= 10:
            step *= 2
        h -= step
    out.append(id_at(0))
    return out


# --- status -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """A node's view of its chain: exchanged when peers connect and polled afterwards."""

    chain_id: int
    genesis_id: bytes
    tip_id: bytes
    height: int
    work: int
    """Cumulative work of the main chain (u256)."""

    def encode(self) -> bytes:
        if not 0 <= self.work < 1 << 256:
            raise ValueError(f"work must fit in 256 bits, found {self.work}")
        return _STATUS.pack(self.chain_id, _check_id("genesis_id", self.genesis_id),
                            _check_id("tip_id", self.tip_id), self.height, self.work.to_bytes(32, "little"))

    @classmethod
    def decode(cls, data: bytes) -> Status:
        if len(data) != STATUS_SIZE:
            raise P2PDecodeError(f"status: expected {STATUS_SIZE} bytes, found {len(data)}")
        chain_id, genesis_id, tip_id, height, work = _STATUS.unpack(bytes(data))
        return cls(chain_id, genesis_id, tip_id, height, int.from_bytes(work, "little"))


# --- headers ------------------------------------------------------------------------------------


def encode_headers_request(locator: list[bytes], max_count: int) -> bytes:
    """A locator (newest first) and the most headers wanted."""
    if not 1 <= max_count <= MAX_HEADERS:
        raise ValueError(f"max_count must be in [1, {MAX_HEADERS}], found {max_count}")
    return _encode_ids(list(locator), MAX_LOCATOR, "locator") + _U32.pack(max_count)


def decode_headers_request(data: bytes) -> tuple[list[bytes], int]:
    r = _Reader(data, "headers request")
    locator = _decode_ids(r, MAX_LOCATOR)
    (max_count,) = r.unpack(_U32)
    r.end()
    if not 1 <= max_count <= MAX_HEADERS:
        raise P2PDecodeError(f"headers request: max_count must be in [1, {MAX_HEADERS}], found {max_count}")
    return locator, max_count


def encode_headers_response(headers: list[bytes]) -> bytes:
    """Encoded headers (212 bytes each), oldest first."""
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers per page, found {len(headers)}")
    for h in headers:
        if len(h) != HEADER_SIZE:
            raise ValueError(f"a header is {HEADER_SIZE} bytes, found {len(h)}")
    return _U32.pack(len(headers)) + b"".join(bytes(h) for h in headers)


def decode_headers_response(data: bytes) -> list[bytes]:
    """The raw 212-byte headers (their fields are checked by whoever uses them)."""
    r = _Reader(data, "headers response")
    (n,) = r.unpack(_U32)
    if n > MAX_HEADERS:
        raise P2PDecodeError(f"headers response: at most {MAX_HEADERS} headers, found {n}")
    raw = r.take(HEADER_SIZE * n)
    r.end()
    return [raw[i:i + HEADER_SIZE] for i in range(0, len(raw), HEADER_SIZE)]


# --- blocks by id -------------------------------------------------------------------------------


def encode_blocks_request(ids: list[bytes]) -> bytes:
    return _encode_ids(list(ids), MAX_IDS, "blocks-by-id request")


def decode_blocks_request(data: bytes) -> list[bytes]:
    r = _Reader(data, "blocks-by-id request")
    ids = _decode_ids(r, MAX_IDS)
    r.end()
    return ids


def encode_blocks_response(blocks: list[bytes | None]) -> bytes:
    """Entries in request order; ``None`` (or empty) for a block the responder does not have."""
    parts = [_U32.pack(len(blocks))]
    for b in blocks:
        b = bytes(b or b"")
        parts.append(_U32.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def blocks_page(ids: Sequence[bytes], get_block: Callable[[bytes], bytes | None],
                limit: int = MAX_PAGE_BYTES) -> list[bytes | None]:
    """The entries of a blocks-by-id response: blocks for the longest prefix of ``ids`` whose
    encoding stays under ``limit`` bytes (at least one entry), each from ``get_block``
    (``None``: not available)."""
    entries: list[bytes | None] = []
    size = _U32.size
    for block_id in ids:
        block = get_block(block_id)
        entry = _U32.size + len(block or b"")
        if entries and size + entry > limit:
            break
        size += entry
        entries.append(block)
    return entries


def encode_blocks_page(ids: Sequence[bytes], get_block: Callable[[bytes], bytes | None],
                       limit: int = MAX_PAGE_BYTES) -> bytes:
    """Response to a blocks-by-id request: ``encode_blocks_response`` of ``blocks_page``."""
    return encode_blocks_response(blocks_page(ids, get_block, limit))


def decode_blocks_response(data: bytes, requested: int) -> list[bytes | None]:
    """Entries for a prefix of the ``requested`` ids; ``None`` where the responder had no block."""
    r = _Reader(data, "blocks-by-id response")
    (n,) = r.unpack(_U32)
    if n > requested:
        raise P2PDecodeError(f"blocks-by-id response: {n} entries for {requested} requested ids")
    out: list[bytes | None] = []
    for _ in range(n):
        (size,) = r.unpack(_U32)
        out.append(r.take(size) if size else None)
    r.end()
    return out


# --- blobs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobChunk:
    """One page of a blob: ``data`` is bytes ``[offset, offset + len(data))`` of ``total``."""

    total: int
    data: bytes


def encode_blob_request(digest: bytes, offset: int = 0) -> bytes:
    return _check_id("digest", digest) + _U64.pack(offset)


def decode_blob_request(data: bytes) -> tuple[bytes, int]:
    r = _Reader(data, "blob request")
    digest = r.take(32)
    (offset,) = r.unpack(_U64)
    r.end()
    return digest, offset


def encode_blob_page(blob: bytes | None, offset: int) -> bytes:
    """Response to a blob request: the chunk of ``blob`` at ``offset`` (``None``: not found)."""
    if blob is None:
        return encode_blob_response(None)
    return encode_blob_response(BlobChunk(len(blob), blob[offset:offset + BLOB_CHUNK_BYTES]))


def encode_blob_response(chunk: BlobChunk | None) -> bytes:
    """``None``: the responder has no such blob."""
    if chunk is None:
        return _U8.pack(0)
    if len(chunk.data) > BLOB_CHUNK_BYTES:
        raise ValueError(f"a blob chunk is at most {BLOB_CHUNK_BYTES} bytes, found {len(chunk.data)}")
    return _U8.pack(1) + _U64.pack(chunk.total) + bytes(chunk.data)


def decode_blob_response(data: bytes) -> BlobChunk | None:
    r = _Reader(data, "blob response")
    (found,) = r.unpack(_U8)
    if found == 0:
        r.end()
        return None
    if found != 1:
        raise P2PDecodeError(f"blob response: found flag must be 0 or 1, found {found}")
    (total,) = r.unpack(_U64)
    chunk = r.take(len(r.data) - r.pos)
    if len(chunk) > BLOB_CHUNK_BYTES:
        raise P2PDecodeError(f"blob response: chunk of {len(chunk)} bytes over {BLOB_CHUNK_BYTES}")
    return BlobChunk(total, chunk)


# --- gossip payloads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockAnnouncement:
    """A gossiped block: the whole block, or only its header when the block is too big to gossip."""

    full: bool
    data: bytes
    """The encoded block (``full``) or its 212-byte header."""

    @property
    def header(self) -> bytes:
        return self.data[:HEADER_SIZE]

    def encode(self) -> bytes:
        return _U8.pack(BLOCK_FULL if self.full else BLOCK_HEADER_ONLY) + self.data

    @classmethod
    def for_block(cls, block: bytes) -> BlockAnnouncement:
        """Full when it fits a gossip message, header-only otherwise."""
        block = bytes(block)
        if len(block) < HEADER_SIZE:
            raise ValueError(f"a block is at least {HEADER_SIZE} bytes, found {len(block)}")
        if 1 + len(block) <= MAX_GOSSIP_BYTES:
            return cls(True, block)
        return cls(False, block[:HEADER_SIZE])

    @classmethod
    def decode(cls, data: bytes) -> BlockAnnouncement:
        r = _Reader(data, "block announcement")
        (kind,) = r.unpack(_U8)
        body = r.take(len(r.data) - r.pos)
        if kind == BLOCK_FULL:
            if len(body) <= HEADER_SIZE:
                raise P2PDecodeError(f"block announcement: a block is more than {HEADER_SIZE} bytes, found {len(body)}")
            return cls(True, body)
        if kind == BLOCK_HEADER_ONLY:
            if len(body) != HEADER_SIZE:
                raise P2PDecodeError(f"block announcement: a header is {HEADER_SIZE} bytes, found {len(body)}")
            return cls(False, body)
        raise P2PDecodeError(f"block announcement: unknown kind {kind}")


def encode_tx_batch(txs: list[bytes]) -> bytes:
    """``u32 count || (u32 len || tx) * count``."""
    if not 1 <= len(txs) <= MAX_TX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_TX_BATCH} transactions, found {len(txs)}")
    return _U32.pack(len(txs)) + b"".join(_U32.pack(len(t)) + bytes(t) for t in txs)


def tx_batch_size(sizes: list[int]) -> int:
    """Encoded size of a batch of transactions of these sizes."""
    return _U32.size + sum(_U32.size + s for s in sizes)


def split_tx_batches(txs: list[bytes], limit: int = MAX_GOSSIP_BYTES) -> Iterator[list[bytes]]:
    """Consecutive groups of ``txs`` whose batch encoding stays within ``limit`` bytes."""
    batch: list[bytes] = []
    size = _U32.size
    for tx in txs:
        entry = _U32.size + len(tx)
        if batch and (size + entry > limit or len(batch) >= MAX_TX_BATCH):
            yield batch
            batch, size = [], _U32.size
        batch.append(tx)
        size += entry
    if batch:
        yield batch


def decode_tx_batch(data: bytes) -> list[bytes]:
    """The raw transactions; each must decode as a transfer (``consensus.codec.decode_tx``)."""
    r = _Reader(data, "tx batch")
    (n,) = r.unpack(_U32)
    if not 1 <= n <= MAX_TX_BATCH:
        raise P2PDecodeError(f"tx batch: count must be in [1, {MAX_TX_BATCH}], found {n}")
    out = []
    for i in range(n):
        (size,) = r.unpack(_U32)
        raw = r.take(size)
        try:
            decode_tx(raw)
        except DecodeError as e:
            raise P2PDecodeError(f"tx batch: transaction {i} does not decode: {e}") from e
        out.append(raw)
    r.end()
    return out


@dataclass(frozen=True)
class JobAnnouncement:
    """A job another node accepted: enough to fetch its matrices (``blob`` protocol) and mine it."""

    job_id: bytes
    blob_a: bytes
    """BLAKE3 of A's ``.npy`` bytes."""
    blob_b: bytes
    m: int
    k: int
    n: int
    """Shape as submitted: A is m x k, B is k x n."""
    round: int = 0
    """How many times the sender announced this job before (gossip ids are payload hashes: a repeat must differ)."""

    def encode(self) -> bytes:
        return _JOB.pack(_check_id("job_id", self.job_id), _check_id("blob_a", self.blob_a),
                         _check_id("blob_b", self.blob_b), self.m, self.k, self.n, self.round)

    @classmethod
    def decode(cls, data: bytes) -> JobAnnouncement:
        if len(data) != JOB_ANNOUNCEMENT_SIZE:
            raise P2PDecodeError(f"job announcement: expected {JOB_ANNOUNCEMENT_SIZE} bytes, found {len(data)}")
        job = cls(*_JOB.unpack(bytes(data)))
        if min(job.m, job.k, job.n) < 1:
            raise P2PDecodeError(f"job announcement: empty shape {(job.m, job.k, job.n)}")
        return job


@dataclass(frozen=True)
class JobResultAnnouncement:
    """A node finished a job: where to fetch its product (``blob`` protocol) and the product's hash.

    Travels on the jobs topic beside ``JobAnnouncement`` (told apart by length).
    A receiver that holds the job fetches the product, checks it with Freivalds'
    test itself, and only then reports the job done.
    """

    job_id: bytes
    blob_c: bytes
    """BLAKE3 of the product's ``.npy`` bytes."""
    c_blake3: bytes
    """``H(C)`` of docs/protocol.md section 9."""
    round: int = 0
    """How many times the sender announced this result before (see ``JobAnnouncement.round``)."""

    def encode(self) -> bytes:
        return _JOB_RESULT.pack(_check_id("job_id", self.job_id), _check_id("blob_c", self.blob_c),
                                _check_id("c_blake3", self.c_blake3), self.round)

    @classmethod
    def decode(cls, data: bytes) -> JobResultAnnouncement:
        if len(data) != JOB_RESULT_SIZE:
            raise P2PDecodeError(f"job result: expected {JOB_RESULT_SIZE} bytes, found {len(data)}")
        return cls(*_JOB_RESULT.unpack(bytes(data)))


def decode_job_message(data: bytes) -> JobAnnouncement | JobResultAnnouncement:
    """A message of the jobs topic: a job announcement or a job result."""
    if len(data) == JOB_RESULT_SIZE:
        return JobResultAnnouncement.decode(data)
    return JobAnnouncement.decode(data)
