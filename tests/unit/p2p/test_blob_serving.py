"""``PeerNetwork._serve_blob``: one page per request, read through ``get_blob_page``; no whole-blob reads."""

from __future__ import annotations

from p2p.network import PeerNetwork
from p2p.protocol import BLOB_CHUNK_BYTES, decode_blob_response, encode_blob_request
from p2p.scoring import ScoreBook
from pouw.hashing import H
from tests.support.stubhost import StubHost


class PagedChain:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.pages: list[tuple[str, int, int]] = []

    async def get_blob_page(self, digest_hex, offset, length):
        self.pages.append((digest_hex, offset, length))
        if digest_hex != H(self.blob).hex():
            return None
        return len(self.blob), self.blob[offset:offset + length]


async def test_each_request_reads_one_page():
    blob = bytes(range(256)) * (BLOB_CHUNK_BYTES // 256 + 100)
    chain = PagedChain(blob)
    net = PeerNetwork(StubHost(), chain, chain_id=1, genesis_id=bytes(32), scoring=ScoreBook())
    digest = H(blob)
    first = decode_blob_response(await net._serve_blob("peer", encode_blob_request(digest, 0)))
    second = decode_blob_response(await net._serve_blob("peer", encode_blob_request(digest, BLOB_CHUNK_BYTES)))
    assert first.total == second.total == len(blob)
    assert first.data + second.data == blob
    assert chain.pages == [(digest.hex(), 0, BLOB_CHUNK_BYTES), (digest.hex(), BLOB_CHUNK_BYTES, BLOB_CHUNK_BYTES)]
    assert decode_blob_response(await net._serve_blob("peer", encode_blob_request(H(b"no"), 0))) is None
    assert not hasattr(net, "_blob_cache")
