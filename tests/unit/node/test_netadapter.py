"""The node's ``ChainAccess``: what peers send takes the node's own paths, and each outcome is an ``Intake``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from consensus import errors
from consensus.codec import decode_header, encode_block, encode_tx
from consensus.keys import devnet_keypairs
from consensus.tx import make_transfer
from node.blobs import BlobStore
from node.chain import ChainService
from node.chainhandle import ChainHandle
from node.events import Events, TxAdmitted
from node.jobs import JobService
from node.mempool import Mempool
from node.netadapter import NetAdapter
from node.txintake import TxIntake
from p2p.access import Intake
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.memstore import MemoryStore

P = easy_params()
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
    mempool = Mempool(P.chain_id, P.max_memo, lambda a: handle.snapshot.get_account(a))
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
    assert await net.get_blob("00" * 32) is None


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
