"""The chain handle: one thread for every chain call, snapshots for the loop, events after each write."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from consensus import errors
from consensus.codec import encode_block
from consensus.keys import devnet_keypairs
from consensus.tx import make_transfer
from node.chain import BlockStatus, ChainService
from node.chainhandle import ChainHandle
from node.errors import BlockStateInvalid
from node.events import BlockAccepted, Events, TipMoved
from node.store import LevelDBStore
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.memstore import MemoryStore

P = easy_params()
KEYS = devnet_keypairs(3)
NOW = P.genesis_time + 10**6


class ThreadRecordingChain(ChainService):
    """A chain service that notes the thread of every call that touches its state."""

    def __init__(self, *args, **kwargs) -> None:
        self.threads: set[int] = set()
        super().__init__(*args, **kwargs)

    def submit_block(self, block, size=None, **kwargs):
        self.threads.add(threading.get_ident())
        return super().submit_block(block, size, **kwargs)

    def get_block(self, block_id):
        self.threads.add(threading.get_ident())
        return super().get_block(block_id)

    def snapshot_state(self):
        self.threads.add(threading.get_ident())
        return super().snapshot_state()


@pytest.fixture
async def handle():
    events = Events()
    heard: list[object] = []
    events.subscribe(TipMoved, heard.append)
    events.subscribe(BlockAccepted, heard.append)
    executor = ThreadPoolExecutor(1, thread_name_prefix="pouw-chain")
    chain = ThreadRecordingChain(MemoryStore(), P, clock=lambda: NOW)
    h = await asyncio.get_running_loop().run_in_executor(executor, ChainHandle, chain, executor, events)
    yield h, chain, heard
    executor.shutdown(wait=True)


@pytest.fixture(scope="module")
def blocks():
    builder = ChainBuilder(P, coinbase_to=KEYS[2].address)
    a = builder.extend(builder.genesis_id, 3)
    b = builder.extend(builder.genesis_id, 4, coinbase_to=KEYS[1].address)
    return builder, a, b


async def test_every_chain_call_runs_on_one_thread_that_is_not_the_loop(handle, blocks):
    h, chain, _ = handle
    _, a, b = blocks
    for block in a + b:
        await h.submit_block(block, "test")
    await h.read(lambda c: c.get_block(a[0].header.block_id))
    assert len(chain.threads) == 1
    assert threading.get_ident() not in chain.threads


async def test_a_connected_block_moves_the_snapshot_then_tells_listeners(handle, blocks):
    h, _, heard = handle
    _, a, _ = blocks
    before = h.snapshot
    sub = await h.submit_block(a[0], "miner")
    assert sub.status == BlockStatus.CONNECTED
    assert h.snapshot.tip_id == a[0].header.block_id and h.snapshot.height == 1
    assert before.height == 0  # the old snapshot is frozen
    moved, accepted = heard
    assert isinstance(moved, TipMoved) and moved.connected == (a[0],) and moved.disconnected == ()
    assert moved.snapshot is h.snapshot
    assert isinstance(accepted, BlockAccepted) and accepted.source == "miner" and accepted.block == a[0]


async def test_a_reorg_reports_the_blocks_taken_off_and_put_on(handle, blocks):
    h, _, heard = handle
    _, a, b = blocks
    for block in a:
        await h.submit_block(block, "peer")
    heard.clear()
    for block in b[:3]:
        sub = await h.submit_block(block, "peer")
        assert sub.status == BlockStatus.SIDE_BRANCH  # ties keep the tip
    assert [type(e) for e in heard] == [BlockAccepted] * 3
    heard.clear()
    sub = await h.submit_block(b[3], "peer")
    assert sub.status == BlockStatus.CONNECTED
    assert sub.disconnected == tuple(reversed(a)) and sub.connected == tuple(b)
    assert isinstance(heard[0], TipMoved) and heard[0].disconnected == tuple(reversed(a))
    assert h.snapshot.tip_id == b[3].header.block_id


async def test_snapshot_accounts_belong_to_the_snapshot_tip(handle, blocks):
    h, _, _ = handle
    _, a, _ = blocks
    coinbase_to = KEYS[2].address
    reward = a[0].transactions[0].amount
    first = h.snapshot
    base = first.get_account(coinbase_to).balance
    await h.submit_block(a[0], "peer")
    second = h.snapshot
    await h.submit_block(a[1], "peer")
    assert first.get_account(coinbase_to).balance == base  # read after two more blocks were written
    assert second.get_account(coinbase_to).balance == base + reward
    assert h.snapshot.get_account(coinbase_to).balance == base + 2 * reward


async def test_an_invalid_block_changes_nothing_and_tells_nobody(handle, blocks):
    h, _, heard = handle
    builder, a, _ = blocks
    await h.submit_block(a[0], "peer")
    heard.clear()
    before = h.snapshot
    unfunded = make_transfer(KEYS[0], P.chain_id, 5, KEYS[1].address, 1, 1000)  # nonce 5: never valid here
    bad = builder.child(a[0].header.block_id, [unfunded])
    with pytest.raises(BlockStateInvalid):  # a state fault: from a peer, no PeerFault
        await h.submit_block(bad, "peer")
    assert h.snapshot is before and heard == []


async def test_a_state_fault_of_a_local_block_is_its_consensus_error(handle, blocks):
    """The miner and RPC submitblock are judged by nobody: they read the consensus error, as for any invalid block."""
    h, _, heard = handle
    builder, a, _ = blocks
    await h.submit_block(a[0], "miner")
    heard.clear()
    stale = make_transfer(KEYS[0], P.chain_id, 5, KEYS[1].address, 1, 1000)
    for source in ("miner", "rpc"):
        bad = builder.child(a[0].header.block_id, [stale], coinbase_to=KEYS[0 if source == "miner" else 1].address)
        with pytest.raises(errors.BlockTxInvalid) as info:
            await h.submit_block(bad, source)
        assert isinstance(info.value.cause, errors.BadNonce)
    assert heard == [] and h.snapshot.height == 1


async def test_a_low_work_block_is_a_status_that_changes_nothing(handle, blocks):
    h, chain, heard = handle
    builder, a, b = blocks
    for block in a + builder.extend(a[2].header.block_id, 8):  # the tip at height 11
        await h.submit_block(block, "peer")
    heard.clear()
    before = h.snapshot
    sub = await h.submit_block(b[0], "peer")  # height 1: out of reach of the tip (margin 6)
    assert sub.status == BlockStatus.LOW_WORK
    assert h.snapshot is before and heard == [] and chain.get_entry(b[0].header.block_id) is None


async def test_an_orphan_is_held_and_counted_without_events(handle, blocks):
    h, _, heard = handle
    _, a, _ = blocks
    sub = await h.submit_block(a[2], "peer", size=len(encode_block(a[2])))
    assert sub.status == BlockStatus.ORPHAN
    assert h.snapshot.orphans == 1 and heard == []
    assert (await h.submit_block(a[2], "peer")).status == BlockStatus.DUPLICATE


async def test_open_closes_the_database_and_joins_the_thread(tmp_path):
    path = str(tmp_path / "chain")
    async with ChainHandle.open(path, P, Events()) as h:
        assert h.snapshot.height == 0
        assert any(t.name.startswith("pouw-chain") for t in threading.enumerate())
    LevelDBStore(path).close()  # the lock was released: the database is closed
    assert not any(t.name.startswith("pouw-chain") for t in threading.enumerate())


async def test_orphans_that_connect_behind_a_block_move_the_tip_in_one_event(handle, blocks):
    h, _, heard = handle
    _, a, _ = blocks
    await h.submit_block(a[2], "peer")  # parent unknown: held
    await h.submit_block(a[1], "peer")  # parent unknown: held
    assert heard == [] and h.snapshot.orphans == 2
    sub = await h.submit_block(a[0], "peer")
    assert sub.result.orphans_accepted == (a[1].header.block_id, a[2].header.block_id)
    assert sub.connected == tuple(a) and h.snapshot.height == 3 and h.snapshot.orphans == 0
    moved = [e for e in heard if isinstance(e, TipMoved)]
    assert len(moved) == 1 and moved[0].connected == tuple(a)
