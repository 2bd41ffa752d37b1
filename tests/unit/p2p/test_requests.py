"""``PeerRequester``'s blob fetches over a fake host: streamed in pages, hashed as they come, bounded, penalised."""

from __future__ import annotations

import pytest

from p2p.protocol import (
    BLOB_CHUNK_BYTES,
    BlobChunk,
    decode_blob_request,
    encode_blob_page,
    encode_blob_response,
    protocol_ids,
)
from p2p.requests import BlobFetch, PeerRequester
from p2p.scoring import ScoreBook
from pouw.hashing import H

IDS = protocol_ids(1)
BLOB = bytes(range(256)) * (BLOB_CHUNK_BYTES // 256 * 2 + 10)  # three pages


class Host:
    def __init__(self, answer) -> None:
        self.answer = answer
        self.offsets: list[int] = []

    async def request(self, peer, protocol, data, timeout):
        digest, offset = decode_blob_request(data)
        self.offsets.append(offset)
        return self.answer(digest, offset)


def requester(answer):
    host = Host(answer)
    return PeerRequester(host, IDS, ScoreBook(recovery_per_second=0.0)), host


async def collect(req, digest, **kw):
    pages: list[bytes] = []

    async def write(data):
        pages.append(data)

    return await req.blob_into("peer", digest, write, **kw), pages


async def test_a_blob_is_streamed_page_by_page_and_checked():
    req, host = requester(lambda d, o: encode_blob_page(BLOB, o))
    outcome, pages = await collect(req, H(BLOB), max_bytes=len(BLOB))
    assert outcome is BlobFetch.OK and b"".join(pages) == BLOB
    assert len(pages) == 3 and max(map(len, pages)) == BLOB_CHUNK_BYTES
    assert host.offsets == [0, BLOB_CHUNK_BYTES, 2 * BLOB_CHUNK_BYTES]
    assert await req.blob("peer", H(BLOB)) == BLOB and req.scoring.score("peer") == 0


async def test_a_blob_over_the_expected_size_is_not_fetched_and_costs_nothing_here():
    req, host = requester(lambda d, o: encode_blob_page(BLOB, o))
    outcome, pages = await collect(req, H(BLOB), max_bytes=len(BLOB) - 1)
    assert outcome is BlobFetch.TOO_LARGE and pages == [] and host.offsets == [0]
    assert req.scoring.score("peer") == 0  # whether it is a fault depends on who announced what: the caller's call
    assert await req.blob("peer", H(BLOB), max_bytes=1000) is None


@pytest.mark.parametrize("answer", [
    lambda d, o: encode_blob_page(b"x" + BLOB[1:], o),  # does not hash to the name
    lambda d, o: encode_blob_response(BlobChunk(len(BLOB) + o, BLOB[o:o + BLOB_CHUNK_BYTES])),  # total changes
    lambda d, o: encode_blob_response(BlobChunk(10, b"x" * 20)),  # more bytes than the total
    lambda d, o: encode_blob_response(BlobChunk(len(BLOB), b"")),  # no progress
    lambda d, o: b"\x07garbage",
])
async def test_bad_pages_cost_the_peer(answer):
    req, _ = requester(answer)
    outcome, _ = await collect(req, H(BLOB))
    assert outcome is BlobFetch.BAD and req.scoring.score("peer") == -20


async def test_a_blob_the_peer_does_not_have():
    req, _ = requester(lambda d, o: encode_blob_response(None))
    assert (await collect(req, H(BLOB)))[0] is BlobFetch.NOT_FOUND and req.scoring.score("peer") == 0
