"""p2p.protocol: round trips, fixed vectors, limits, and fuzzing (only P2PDecodeError escapes a decoder)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.codec import encode_block, encode_tx
from consensus.genesis import make_genesis_block
from consensus.keys import devnet_keypairs
from consensus.networks import DEVNET
from consensus.tx import make_transfer
from p2p import protocol as p
from p2p.errors import P2PDecodeError

ID_A, ID_B, ID_C = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
GENESIS = make_genesis_block(DEVNET)
GENESIS_BYTES = encode_block(GENESIS)
HEADER = GENESIS_BYTES[:212]


def _tx(nonce: int = 0, memo: bytes = b"") -> bytes:
    key = devnet_keypairs(1)[0]
    return encode_tx(make_transfer(key, DEVNET.chain_id, nonce, bytes(20), 5, 1000, memo))


def test_names_carry_the_chain_id():
    ids = p.protocol_ids(1337)
    assert ids.blocks == "/pouw/1337/blocks/1"
    assert ids.txs == "/pouw/1337/txs/1"
    assert ids.jobs == "/pouw/1337/jobs/1"
    assert ids.status == "/pouw/1337/status/1"
    assert ids.headers == "/pouw/1337/headers/1"
    assert ids.blocks_by_id == "/pouw/1337/blocks-by-id/1"
    assert ids.blob == "/pouw/1337/blob/1"


def test_status_vector_and_round_trip():
    status = p.Status(1337, ID_A, ID_B, 7, (1 << 200) + 5)
    raw = status.encode()
    assert len(raw) == p.STATUS_SIZE == 108
    assert raw[:4] == (1337).to_bytes(4, "little")
    assert raw[4:36] == ID_A and raw[36:68] == ID_B
    assert raw[68:76] == (7).to_bytes(8, "little")
    assert raw[76:] == ((1 << 200) + 5).to_bytes(32, "little")
    assert p.Status.decode(raw) == status
    with pytest.raises(P2PDecodeError):
        p.Status.decode(raw[:-1])


def test_headers_request_vector_and_limits():
    raw = p.encode_headers_request([ID_A, ID_B], 2000)
    assert raw == (2).to_bytes(2, "little") + ID_A + ID_B + (2000).to_bytes(4, "little")
    assert p.decode_headers_request(raw) == ([ID_A, ID_B], 2000)
    for bad in (0, p.MAX_HEADERS + 1):
        with pytest.raises(ValueError):
            p.encode_headers_request([ID_A], bad)
        with pytest.raises(P2PDecodeError):
            p.decode_headers_request((1).to_bytes(2, "little") + ID_A + bad.to_bytes(4, "little"))
    too_long = (p.MAX_LOCATOR + 1).to_bytes(2, "little") + ID_A * (p.MAX_LOCATOR + 1) + (1).to_bytes(4, "little")
    with pytest.raises(P2PDecodeError):
        p.decode_headers_request(too_long)


def test_headers_response_round_trip():
    raw = p.encode_headers_response([HEADER, HEADER])
    assert raw == (2).to_bytes(4, "little") + HEADER + HEADER
    assert p.decode_headers_response(raw) == [HEADER, HEADER]
    assert p.decode_headers_response(p.encode_headers_response([])) == []
    with pytest.raises(P2PDecodeError):
        p.decode_headers_response(raw + b"x")
    with pytest.raises(ValueError):
        p.encode_headers_response([HEADER[:-1]])


def test_blocks_request_and_response():
    raw = p.encode_blocks_request([ID_A, ID_C])
    assert p.decode_blocks_request(raw) == [ID_A, ID_C]
    resp = p.encode_blocks_response([GENESIS_BYTES, None])
    assert resp == (2).to_bytes(4, "little") + len(GENESIS_BYTES).to_bytes(4, "little") + GENESIS_BYTES + bytes(4)
    assert p.decode_blocks_response(resp, 2) == [GENESIS_BYTES, None]
    with pytest.raises(P2PDecodeError):
        p.decode_blocks_response(resp, 1)  # more entries than ids asked for


def test_blocks_page_stays_under_the_limit_and_holds_at_least_one_block():
    blocks = {bytes([i]) * 32: bytes(1000) for i in range(10)}
    ids = list(blocks)
    page = p.decode_blocks_response(p.encode_blocks_page(ids, blocks.get, limit=3500), len(ids))
    assert len(page) == 3 and len(p.encode_blocks_page(ids, blocks.get, limit=3500)) <= 3500
    one = p.decode_blocks_response(p.encode_blocks_page(ids, blocks.get, limit=10), len(ids))
    assert len(one) == 1
    assert len(p.encode_blocks_page(ids, blocks.get)) < p.MAX_PAGE_BYTES < 4 * 1024 * 1024


def test_blob_request_and_pages():
    assert p.decode_blob_request(p.encode_blob_request(ID_A, 77)) == (ID_A, 77)
    assert p.decode_blob_response(p.encode_blob_page(None, 0)) is None
    blob = bytes(range(256)) * 10
    chunk = p.decode_blob_response(p.encode_blob_page(blob, 100))
    assert chunk == p.BlobChunk(len(blob), blob[100:])
    with pytest.raises(P2PDecodeError):
        p.decode_blob_response(b"\x02")


def test_block_announcement_full_or_header_only():
    ann = p.BlockAnnouncement.for_block(GENESIS_BYTES)
    assert ann.full and ann.encode() == b"\x00" + GENESIS_BYTES
    assert p.BlockAnnouncement.decode(ann.encode()) == ann
    big = HEADER + bytes(p.MAX_GOSSIP_BYTES)
    ann = p.BlockAnnouncement.for_block(big)
    assert not ann.full and ann.encode() == b"\x01" + HEADER
    assert p.BlockAnnouncement.decode(ann.encode()).header == HEADER
    for bad in (b"", b"\x02" + HEADER, b"\x01" + HEADER[:-1], b"\x00" + HEADER):
        with pytest.raises(P2PDecodeError):
            p.BlockAnnouncement.decode(bad)


def test_tx_batch_round_trip_and_splitting():
    txs = [_tx(i) for i in range(3)]
    raw = p.encode_tx_batch(txs)
    assert raw[:4] == (3).to_bytes(4, "little")
    assert raw[4:8] == len(txs[0]).to_bytes(4, "little")
    assert p.decode_tx_batch(raw) == txs
    with pytest.raises(P2PDecodeError):
        p.decode_tx_batch((0).to_bytes(4, "little"))
    with pytest.raises(P2PDecodeError):  # a transfer that does not decode
        p.decode_tx_batch((1).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc")
    many = [_tx(0, bytes(200))] * 6000
    batches = list(p.split_tx_batches(many))
    assert sum(map(len, batches)) == 6000 and len(batches) > 1
    assert all(len(p.encode_tx_batch(b)) <= p.MAX_GOSSIP_BYTES for b in batches)


def test_job_announcement_vector():
    job = p.JobAnnouncement(ID_A, ID_B, ID_C, 3, 4, 5, 7)
    raw = job.encode()
    assert raw == ID_A + ID_B + ID_C + b"".join(x.to_bytes(4, "little") for x in (3, 4, 5, 7))
    assert p.JobAnnouncement.decode(raw) == job
    # A repeat (another round) is another payload, so content-addressed gossip does not swallow it.
    assert p.JobAnnouncement(ID_A, ID_B, ID_C, 3, 4, 5, 8).encode() != raw
    with pytest.raises(P2PDecodeError):
        p.JobAnnouncement.decode(ID_A + ID_B + ID_C + bytes(16))  # empty shape


def test_job_result_vector_and_topic_dispatch():
    result = p.JobResultAnnouncement(ID_A, ID_B, ID_C, 2)
    raw = result.encode()
    assert raw == ID_A + ID_B + ID_C + (2).to_bytes(4, "little") and p.JobResultAnnouncement.decode(raw) == result
    assert p.decode_job_message(raw) == result
    job = p.JobAnnouncement(ID_A, ID_B, ID_C, 1, 2, 3)
    assert p.decode_job_message(job.encode()) == job
    with pytest.raises(P2PDecodeError):
        p.decode_job_message(raw + b"x")


def test_locator_is_newest_first_exponential_and_ends_at_genesis():
    ids = {h: h.to_bytes(32, "little") for h in range(1001)}
    loc = p.compute_locator(1000, ids.__getitem__)
    heights = [int.from_bytes(x, "little") for x in loc]
    assert heights[:10] == list(range(1000, 990, -1))
    assert heights[-1] == 0 and len(heights) < 25
    steps = [a - b for a, b in zip(heights, heights[1:-1], strict=False)]
    assert steps == sorted(steps)
    assert p.compute_locator(0, ids.__getitem__) == [ids[0]]


DECODERS = [
    p.Status.decode,
    p.decode_headers_request,
    p.decode_headers_response,
    p.decode_blocks_request,
    lambda b: p.decode_blocks_response(b, 5),
    p.decode_blob_request,
    p.decode_blob_response,
    p.BlockAnnouncement.decode,
    p.decode_tx_batch,
    p.JobAnnouncement.decode,
    p.decode_job_message,
]
VALID = [
    p.Status(1, ID_A, ID_B, 3, 9).encode(),
    p.encode_headers_request([ID_A, ID_B, ID_C], 10),
    p.encode_headers_response([HEADER] * 3),
    p.encode_blocks_request([ID_A, ID_B]),
    p.encode_blocks_response([GENESIS_BYTES, None, b"xyz"]),
    p.encode_blob_request(ID_A, 5),
    p.encode_blob_page(b"hello", 1),
    p.BlockAnnouncement.for_block(GENESIS_BYTES).encode(),
    p.encode_tx_batch([_tx(0), _tx(1, b"memo")]),
    p.JobAnnouncement(ID_A, ID_B, ID_C, 1, 2, 3).encode(),
    p.JobResultAnnouncement(ID_A, ID_B, ID_C).encode(),
]


def _only_decode_errors(decode, data: bytes) -> None:
    try:
        decode(data)
    except P2PDecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(len(DECODERS))), st.binary(max_size=600))
def test_fuzz_random_bytes(index, data):
    _only_decode_errors(DECODERS[index], data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(len(DECODERS))), st.data())
def test_fuzz_mutated_valid_messages(index, data):
    raw = bytearray(VALID[index])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos:pos + data.draw(st.integers(1, 40))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _only_decode_errors(DECODERS[index], bytes(raw))


@pytest.mark.parametrize("index", range(len(DECODERS)))
def test_every_valid_vector_decodes(index):
    DECODERS[index](VALID[index])
