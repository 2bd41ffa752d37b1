"""The node's ``ChainAccess``: what peers send takes the node's own paths, and each outcome is an ``Intake``;
jobs from peers: bounded fetches, streamed and checked blobs, penalties, shares of the queue."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from consensus import errors
from consensus.codec import certificate_end, decode_header, encode_block, encode_header, encode_tx
from consensus.keys import devnet_keypairs
from consensus.tx import make_transfer
from kernels.base import prepare
from node import netadapter
from node.blobs import BlobStore, encode_npy
from node.chain import ChainService
from node.chainhandle import ChainHandle
from node.errors import BlockStateInvalid
from node.events import Events, TxAdmitted
from node.jobs import MAX_JOBS_PER_PEER, JobError, JobService
from node.mempool import Mempool
from node.netadapter import MAX_FETCHES, MAX_FETCHES_PER_PEER, NetAdapter
from node.txintake import TxIntake
from p2p.access import Intake
from p2p.protocol import (
    BlobChunk,
    JobAnnouncement,
    JobResultAnnouncement,
    decode_blob_request,
    encode_blob_page,
    encode_blob_response,
    protocol_ids,
)
from p2p.requests import PeerRequester
from p2p.scoring import ScoreBook
from pouw.constants import HEADER_SIZE
from pouw.hashing import H
from pouw.jobs import compute_job_id
from pouw.matrix import pad_pair
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.memstore import MemoryStore

P = easy_params()
IDS = protocol_ids(P.chain_id)
KEYS = devnet_keypairs(3)
NOW = P.genesis_time + 10**6


@pytest.fixture
async def adapter(tmp_path):
    events = Events()
    chain_exec = ThreadPoolExecutor(1, thread_name_prefix="pouw-chain")
    work = ThreadPoolExecutor(1, thread_name_prefix="pouw-work")
    store = MemoryStore()
    chain = ChainService(store, P, clock=lambda: NOW)
    handle = await asyncio.get_running_loop().run_in_executor(chain_exec, ChainHandle, chain, chain_exec, events)
    mempool = Mempool(P, lambda a: handle.snapshot.get_account(a), clock=lambda: time.time())
    blobs = BlobStore(tmp_path / "blobs")
    jobs = JobService(MemoryStore(), blobs)
    admitted: list[TxAdmitted] = []
    events.subscribe(TxAdmitted, admitted.append)
    net = NetAdapter(handle, TxIntake(mempool, events), blobs, jobs, work=work, is_mining=lambda: False)
    yield net, store, admitted
    chain_exec.shutdown(wait=True)
    work.shutdown(wait=True)


@pytest.fixture(scope="module")
def blocks():
    builder = ChainBuilder(P, coinbase_to=KEYS[2].address)
    return builder.extend(builder.genesis_id, 3)


async def test_garbage_block_bytes_are_the_peers_fault_and_change_nothing(adapter):
    net, store, _ = adapter
    before = store.snapshot()
    with pytest.raises(errors.PeerFault):
        await net.submit_block(b"\x00" * 300, "peer")
    assert store.snapshot() == before and net.status()[1] == 0


async def test_blocks_from_peers_come_back_as_intake(adapter, blocks):
    net, _, _ = adapter
    raw = [encode_block(b) for b in blocks]
    assert await net.submit_block(raw[0], "peer") == Intake.ACCEPTED
    assert await net.submit_block(raw[0], "peer") == Intake.DUPLICATE
    assert await net.submit_block(raw[2], "peer") == Intake.ORPHAN
    assert await net.submit_block(raw[1], "peer") == Intake.ACCEPTED  # and the orphan connects after it
    assert net.status()[:2] == (blocks[2].header.block_id, 3)
    ids = [b.header.block_id for b in blocks]
    assert await net.missing_blocks([*ids, bytes(32)]) == [bytes(32)]


async def test_reads_for_peers_answer_from_the_chain(adapter, blocks):
    net, _, _ = adapter
    for b in blocks:
        await net.submit_block(encode_block(b), "peer")
    locator = await net.locator()
    assert locator[0] == blocks[-1].header.block_id and locator[-1] == blocks[0].prev_id  # genesis last
    headers = await net.headers_after([locator[-1]], 10)
    assert [decode_header(h).block_id for h in headers] == [b.header.block_id for b in blocks]
    page = await net.get_blocks([b.header.block_id for b in blocks] + [bytes(32)], 1 << 20)
    assert page == [encode_block(b) for b in blocks] + [None]
    assert await net.get_blocks([b.header.block_id for b in blocks], 10) == [encode_block(blocks[0])]
    assert await net.get_blob_page("00" * 32, 0, 100) is None


async def test_transactions_from_peers(adapter):
    net, _, admitted = adapter
    good = encode_tx(make_transfer(KEYS[0], P.chain_id, 0, KEYS[1].address, 5, 1000))
    wrong_chain = encode_tx(make_transfer(KEYS[0], P.chain_id + 1, 0, KEYS[1].address, 5, 1000))
    far_ahead = encode_tx(make_transfer(KEYS[1], P.chain_id, 10_000, KEYS[0].address, 5, 1000))
    out = await net.submit_txs([good, good, b"\x01\x02", wrong_chain, far_ahead], "peer")
    assert [o.intake for o in out] == [Intake.ACCEPTED, Intake.DUPLICATE, Intake.REJECTED, Intake.REJECTED,
                                       Intake.IGNORED]
    assert out[2].reason.startswith("decode:") and out[4].reason
    assert [e.source for e in admitted] == ["peer"]
    assert out[1].recent  # a copy of a transfer first seen a moment ago: crossed ours in flight


async def test_a_large_batch_gives_the_loop_back_while_it_is_admitted(adapter):
    net, _, _ = adapter
    batch = [encode_tx(make_transfer(KEYS[0], P.chain_id, n, KEYS[1].address, 5, 1000)) for n in range(300)]
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    out = await net.submit_txs(batch, "peer")
    done.set()
    await task
    assert all(o.intake == Intake.ACCEPTED for o in out)
    # 300 signature checks take well over one 5 ms slice: the loop ran other tasks in between.
    assert ticks - start >= 2


async def test_a_duplicate_first_seen_long_ago_is_not_recent(adapter, monkeypatch):
    net, _, _ = adapter
    good = encode_tx(make_transfer(KEYS[0], P.chain_id, 0, KEYS[1].address, 5, 1000))
    await net.submit_txs([good], "peer")
    later = time.time() + 60
    monkeypatch.setattr(time, "time", lambda: later)
    (again,) = await net.submit_txs([good], "peer")
    assert again.intake == Intake.DUPLICATE and not again.recent


# --- jobs from peers --------------------------------------------------------------------------------


class BlobPeers:
    """A fake ``P2PHost`` for ``PeerRequester``: each peer serves the blobs in its dict, page by page.

    ``answer[peer]``, if set, replaces a peer's answer (``fn(digest, offset) -> bytes``); ``gate``, if
    set, holds every request until it is set.
    """

    def __init__(self) -> None:
        self.blobs: dict[str, dict[bytes, bytes]] = {}
        self.answer: dict = {}
        self.requests: list[tuple[str, str, int]] = []
        self.gate: asyncio.Event | None = None

    async def request(self, peer, protocol, data, timeout):
        assert protocol == IDS.blob
        digest, offset = decode_blob_request(data)
        self.requests.append((peer, digest.hex(), offset))
        if self.gate is not None:
            await self.gate.wait()
        if peer in self.answer:
            return self.answer[peer](digest, offset)
        return encode_blob_page(self.blobs.get(peer, {}).get(digest), offset)


class FakeNetwork:
    """What the adapter uses of ``PeerNetwork`` for jobs: a real requester over ``BlobPeers``, peers, announcing."""

    def __init__(self, host: BlobPeers, peers=("p1",)) -> None:
        self.scoring = ScoreBook(recovery_per_second=0.0)
        self.requests = PeerRequester(host, IDS, self.scoring, timeout=1.0)
        self.peers = list(peers)
        self.announced: list[bytes] = []

    def peer_info(self):
        return [{"id": p} for p in self.peers]

    async def announce_job(self, data):
        self.announced.append(data)


@pytest.fixture
async def miner_net(tmp_path, monkeypatch):
    """A mining node's adapter with a fake network of peers p1, p2, p3; its blob store has a 1 MiB quota."""
    monkeypatch.setattr(netadapter, "FETCH_BACKOFF", 0.01)
    events = Events()
    chain_exec = ThreadPoolExecutor(1, thread_name_prefix="pouw-chain")
    work = ThreadPoolExecutor(2, thread_name_prefix="pouw-work")
    chain = ChainService(MemoryStore(), P, clock=lambda: NOW)
    handle = await asyncio.get_running_loop().run_in_executor(chain_exec, ChainHandle, chain, chain_exec, events)
    mempool = Mempool(P, lambda a: handle.snapshot.get_account(a))
    blobs = BlobStore(tmp_path / "blobs", quota_bytes=1 << 20, evict_min_age=0)
    jobs = JobService(MemoryStore(), blobs)
    net = NetAdapter(handle, TxIntake(mempool, events), blobs, jobs, work=work, is_mining=lambda: True)
    host = BlobPeers()
    net.network = FakeNetwork(host, ["p1", "p2", "p3"])
    yield net, host
    await net.wait_fetches()
    chain_exec.shutdown(wait=True)
    work.shutdown(wait=True)


def job_pair(seed=1, m=16, k=16, n=16):
    """``(A bytes, B bytes, A, B, job id)`` of a small job."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-64, 64, (m, k), dtype=np.int8), rng.integers(-64, 64, (k, n), dtype=np.int8)
    c = prepare(*pad_pair(a, b)).commitment
    return encode_npy(a), encode_npy(b), a, b, compute_job_id(m, k, n, c.root_a, c.root_b)


def announce(job_id, a_bytes, b_bytes, m=16, k=16, n=16):
    return JobAnnouncement(job_id, H(a_bytes), H(b_bytes), m, k, n).encode()


def files(net):
    return sorted(p.name for p in net.blobs.dir.iterdir())


async def test_a_peers_job_is_streamed_checked_and_queued_with_its_origin(miner_net):
    net, host = miner_net
    a_bytes, b_bytes, _, _, job_id = job_pair()
    host.blobs["p1"] = {H(a_bytes): a_bytes, H(b_bytes): b_bytes}
    await net.on_job_announcement(announce(job_id, a_bytes, b_bytes), "p1")
    await net.wait_fetches()
    job = net.jobs.get(job_id.hex())
    assert job.status == "queued" and job.origin == "p1"
    assert files(net) == sorted([H(a_bytes).hex(), H(b_bytes).hex()])  # no temporary file left
    assert net.network.scoring.score("p1") == 0


@pytest.mark.parametrize("case", ["garbage", "not-a-matrix", "wrong-shape", "oversized", "wrong-job-id"])
async def test_a_peer_serving_what_it_did_not_announce_is_penalised_and_leaves_nothing(miner_net, case):
    net, host = miner_net
    a_bytes, b_bytes, _, _, job_id = job_pair()
    digest_a = H(a_bytes)
    served = {H(b_bytes): b_bytes}
    if case == "garbage":  # bytes that do not hash to the announced name
        served[digest_a] = np.random.default_rng(0).bytes(len(a_bytes))
    elif case == "not-a-matrix":  # hashes right, but no .npy matrix
        a_bytes = b"\x00" * 300
        digest_a = H(a_bytes)
        served[digest_a] = a_bytes
    elif case == "wrong-shape":  # a matrix, not the 16x16 announced
        a_bytes = encode_npy(np.ones((16, 17), np.int8))
        digest_a = H(a_bytes)
        served[digest_a] = a_bytes
    elif case == "oversized":  # says it is 200 MiB: not fetched beyond the first page
        host.answer["p1"] = lambda d, o: encode_blob_response(BlobChunk(200 << 20, b"\x00" * 1000))
    else:
        served[digest_a] = a_bytes
        job_id = H(b"another job")
    host.blobs["p1"] = served
    if case != "garbage":
        host.blobs["p2"] = dict(served)  # an honest peer holding the same bytes is not penalised for them
    await net.on_job_announcement(announce(job_id, a_bytes, b_bytes), "p1")
    await net.wait_fetches()
    assert net.network.scoring.score("p1") == -20
    assert net.network.scoring.score("p2") == 0 and net.network.scoring.score("p3") == 0
    assert net.jobs.list() == [] and files(net) == [] and net.blobs.usage() == 0
    if case == "oversized":
        assert [r for r in host.requests if r[0] == "p1"] == [("p1", digest_a.hex(), 0)]


async def test_a_shape_over_the_limits_is_not_fetched_and_one_the_protocol_forbids_is_a_fault(miner_net):
    net, host = miner_net
    await net.on_job_announcement(JobAnnouncement(H(b"j"), H(b"a"), H(b"b"), 5000, 5000, 5000).encode(), "p1")
    await net.on_job_announcement(JobAnnouncement(H(b"j"), H(b"a"), H(b"b"), 4096, 4096, 4096).encode(), "p1")
    with pytest.raises(errors.PeerFault):
        await net.on_job_announcement(JobAnnouncement(H(b"j"), H(b"a"), H(b"b"), 16, 70_000, 16).encode(), "p1")
    await net.wait_fetches()
    assert host.requests == [] and net.jobs.list() == []


async def test_fetches_are_capped_per_peer_and_in_total(miner_net):
    net, host = miner_net
    host.gate = asyncio.Event()
    anns = [JobAnnouncement(H(b"job %d" % i), H(b"a %d" % i), H(b"b"), 16, 16, 16).encode() for i in range(6)]
    for ann in anns[:MAX_FETCHES_PER_PEER]:
        await net.on_job_announcement(ann, "p1")
    with pytest.raises(JobError) as e:
        await net.on_job_announcement(anns[MAX_FETCHES_PER_PEER], "p1")
    assert e.value.kind == "busy"
    for ann in anns[MAX_FETCHES_PER_PEER:MAX_FETCHES]:
        await net.on_job_announcement(ann, "p2")
    with pytest.raises(JobError):
        await net.on_job_announcement(anns[MAX_FETCHES], "p3")
    await asyncio.sleep(0.05)
    assert len({r[1] for r in host.requests}) == MAX_FETCHES  # one blob being fetched per running task
    host.gate.set()
    await net.wait_fetches()
    await net.on_job_announcement(anns[MAX_FETCHES], "p3")  # room again


async def test_a_peers_share_of_the_queue_is_checked_before_anything_is_fetched(miner_net):
    net, host = miner_net
    for seed in range(MAX_JOBS_PER_PEER):
        a_bytes, b_bytes, a, b, _ = job_pair(10 + seed)
        net.jobs.submit(net.blobs.put(a_bytes), net.blobs.put(b_bytes), origin="p1")
    a_bytes, b_bytes, _, _, job_id = job_pair(99)
    host.blobs["p1"] = {H(a_bytes): a_bytes, H(b_bytes): b_bytes}
    with pytest.raises(JobError) as e:
        await net.on_job_announcement(announce(job_id, a_bytes, b_bytes), "p1")
    assert e.value.kind == "queue-full" and host.requests == []


async def test_a_blob_that_does_not_fit_the_quota_is_not_fetched(miner_net):
    net, host = miner_net
    net.blobs.quota_bytes = 1000
    a_bytes, b_bytes, _, _, job_id = job_pair(m=64, k=16, n=16)
    host.blobs["p1"] = {H(a_bytes): a_bytes, H(b_bytes): b_bytes}
    await net.on_job_announcement(announce(job_id, a_bytes, b_bytes, 64, 16, 16), "p1")
    await net.wait_fetches()
    assert host.requests == [] and net.jobs.list() == [] and files(net) == []


async def test_a_peers_product_is_streamed_and_checked_and_a_wrong_one_penalised(miner_net):
    net, host = miner_net
    a_bytes, b_bytes, a, b, _ = job_pair(3)
    job = net.jobs.submit(net.blobs.put(a_bytes), net.blobs.put(b_bytes))
    right = encode_npy((a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32))
    wrong_c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    wrong_c[0, 0] += 1
    wrong = encode_npy(wrong_c)
    host.blobs["p1"] = {H(wrong): wrong}
    host.blobs["p2"] = {H(right): right}
    result = JobResultAnnouncement(bytes.fromhex(job.job_id), H(wrong), H(b"c"), 0).encode()
    await net.on_job_announcement(result, "p1")
    await net.wait_fetches()
    assert net.jobs.get(job.job_id).status == "queued" and net.network.scoring.score("p1") == -20
    assert not net.blobs.has(H(wrong).hex())
    result = JobResultAnnouncement(bytes.fromhex(job.job_id), H(right), H(b"c"), 0).encode()
    await net.on_job_announcement(result, "p2")
    await net.wait_fetches()
    done = net.jobs.get(job.job_id)
    assert done.status == "done" and done.result["computed_by"] == "peer" and net.blobs.get(done.result["c"]) == right


async def test_blob_pages_for_peers_are_read_one_at_a_time(miner_net):
    net, _ = miner_net
    data = bytes(range(256)) * 1000
    digest = net.blobs.put(data)
    assert await net.get_blob_page(digest, 1000, 500) == (len(data), data[1000:1500])
    assert await net.get_blob_page("00" * 32, 0, 10) is None
    assert await net.get_blob_page("not hex", 0, 10) is None


async def test_a_blob_is_taken_from_an_honest_peer_after_the_announcer_served_garbage(miner_net):
    net, host = miner_net
    a_bytes, b_bytes, _, _, job_id = job_pair(5)
    host.blobs["p1"] = {H(a_bytes): b"\x00" * len(a_bytes), H(b_bytes): b_bytes}
    host.blobs["p3"] = {H(a_bytes): a_bytes}
    await net.on_job_announcement(announce(job_id, a_bytes, b_bytes), "p1")
    await net.wait_fetches()
    assert net.jobs.get(job_id.hex()).status == "queued" and net.network.scoring.score("p1") == -20
    assert net.network.scoring.score("p3") == 0 and net.blobs.get(H(a_bytes).hex()) == a_bytes


async def test_the_relay_expires_peers_old_jobs(miner_net, monkeypatch):
    net, host = miner_net
    a_bytes, b_bytes, _, _, _ = job_pair(6)
    job = net.jobs.submit(net.blobs.put(a_bytes), net.blobs.put(b_bytes), origin="p1")
    now = net.jobs.clock()
    monkeypatch.setattr(net.jobs, "clock", lambda: now + 3601)
    relay = asyncio.ensure_future(net.run_relay(tick=0.01))
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if net.jobs.get(job.job_id).status == "cancelled":
                break
    finally:
        relay.cancel()
    assert net.jobs.get(job.job_id).error.startswith("expired") and files(net) == []


# --- blocks from peers: what is forwarded, what is checked before holding -------------------------


def _state_invalid_child(builder: ChainBuilder, parent: bytes):
    """A child of ``parent`` carrying one funded transfer with the wrong nonce (valid in every other way)."""
    bad_nonce = make_transfer(KEYS[0], P.chain_id, 5, KEYS[1].address, 5, 1000)  # the next nonce is 0
    return builder.child(parent, [bad_nonce])


async def test_bytes_over_the_block_size_are_refused_before_they_are_decoded(adapter, monkeypatch):
    net, store, _ = adapter
    before = store.snapshot()

    def no_decoding(raw):
        raise AssertionError("decoded bytes over the block size")

    monkeypatch.setattr(netadapter, "decode_block", no_decoding)
    with pytest.raises(errors.BlockTooLarge):
        await net.submit_block(b"\x00" * (P.max_block_size + 1), "peer")
    assert store.snapshot() == before


async def test_a_side_branch_block_is_stored_not_accepted_and_connected_once_its_branch_wins(adapter, blocks):
    net, _, _ = adapter
    assert await net.submit_block(encode_block(blocks[0]), "peer") == Intake.ACCEPTED
    other = ChainBuilder(P, coinbase_to=KEYS[1].address)
    s1 = other.child(other.genesis_id)
    s2 = other.child(s1.header.block_id)
    assert await net.submit_block(encode_block(s1), "peer") == Intake.STORED  # equal work: state unchecked
    assert await net.submit_block(encode_block(s2), "peer") == Intake.ACCEPTED  # the branch overtakes
    assert net.status()[:2] == (s2.header.block_id, 2)


async def test_a_side_block_whose_held_child_made_it_win_is_accepted(adapter, blocks):
    net, _, _ = adapter
    assert await net.submit_block(encode_block(blocks[0]), "peer") == Intake.ACCEPTED
    other = ChainBuilder(P, coinbase_to=KEYS[1].address)
    s1 = other.child(other.genesis_id)
    s2 = other.child(s1.header.block_id)
    assert await net.submit_block(encode_block(s2), "rpc-like") == Intake.ORPHAN  # the chain holds it
    # s1 alone would be a side branch; with s2 behind it the branch connects, state and all.
    assert await net.submit_block(encode_block(s1), "peer") == Intake.ACCEPTED
    assert net.status()[0] == s2.header.block_id


async def test_a_state_fault_is_ignored_not_charged_and_its_descendants_too(adapter, blocks):
    net, _, _ = adapter
    builder = ChainBuilder(P, coinbase_to=KEYS[2].address)
    bad = _state_invalid_child(builder, builder.genesis_id)
    assert await net.submit_block(encode_block(bad), "relay") == Intake.IGNORED
    child = builder.child(bad.header.block_id)
    assert await net.submit_block(encode_block(child), "relay") == Intake.IGNORED
    assert net.status()[1] == 0
    assert await net.submit_block(encode_block(blocks[0]), "relay") == Intake.ACCEPTED  # the chain carries on


async def test_the_adapter_maps_block_state_invalid_to_ignored(adapter, blocks, monkeypatch):
    net, _, _ = adapter

    async def state_fault(block, source, size=None):
        raise BlockStateInvalid("transaction 1: tx-nonce: expected 0, found 5", "block-tx")

    monkeypatch.setattr(net.chain, "submit_block", state_fault)
    assert await net.submit_block(encode_block(blocks[0]), "relay") == Intake.IGNORED


async def test_a_context_free_fault_is_still_the_senders(adapter, blocks):
    net, _, _ = adapter
    raw = bytearray(encode_block(blocks[0]))
    raw[HEADER_SIZE + 10] ^= 1  # a byte of the certificate: it no longer opens to the header's root
    with pytest.raises(errors.PeerFault):
        await net.submit_block(bytes(raw), "forger")


async def test_an_orphan_is_checked_in_the_work_pool(adapter, blocks, monkeypatch):
    net, _, _ = adapter
    threads = []
    real = netadapter.check_orphan_block

    def spy(raw, params, **kwargs):
        threads.append(threading.current_thread().name)
        return real(raw, params, **kwargs)

    monkeypatch.setattr(netadapter, "check_orphan_block", spy)
    await net.check_orphan(encode_block(blocks[2]))  # its parent is unknown here: judged on its own
    assert threads and threads[0].startswith("pouw-work")
    bad = bytearray(encode_block(blocks[2]))
    bad[HEADER_SIZE + 10] ^= 1
    with pytest.raises(errors.BadCertificate):
        await net.check_orphan(bytes(bad))


def _with_header(block, **pre_fields) -> bytes:
    header = replace(block.header, pre=replace(block.header.pre, **pre_fields))
    raw = encode_block(block)
    return encode_header(header) + raw[HEADER_SIZE:]


def _tx_count_at(raw: bytes, k: int) -> int:
    return certificate_end(raw, HEADER_SIZE, k)


def test_orphan_checks_refuse_what_needs_no_parent_to_refuse(blocks):
    check = netadapter.check_orphan_block
    good = encode_block(blocks[1])
    assert check(good, P).header.block_id == blocks[1].header.block_id
    with pytest.raises(errors.BlockTooLarge):  # counted on the bytes that arrived, before decoding
        check(good + bytes(P.max_block_size), P)
    with pytest.raises(errors.BadTarget):
        check(_with_header(blocks[1], target=0), P)
    with pytest.raises(errors.BadTarget):  # easier than the network allows
        check(good, replace(P, pow_limit=blocks[1].header.pre.target - 1))
    with pytest.raises(errors.BadLinkage):
        check(encode_block(ChainBuilder(P).genesis), P)
    # More transactions than allowed: refused from the count alone (the rest is never decoded).
    at = _tx_count_at(good, blocks[1].header.pre.k)
    many = good[:at] + (P.max_tx_count + 1).to_bytes(4, "little") + b"\xff" * 64
    with pytest.raises(errors.TooManyTxs):
        check(many, P)
    # A real header (and certificate) with another body: the root does not match.
    other = encode_block(blocks[2])
    swapped = good[:at] + other[_tx_count_at(other, blocks[2].header.pre.k):]
    with pytest.raises(errors.BadTxRoot):
        check(swapped, P)
    with pytest.raises(errors.DecodeError):
        check(good[:-1], P)
