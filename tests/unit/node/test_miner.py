"""The miner through its narrow collaborators: a fake chain, fake job queue and metrics, real templates and backend."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from consensus import errors
from consensus.assemble import BlockTemplate, build_template
from consensus.genesis import make_genesis_block
from consensus.validation import make_parent_info
from kernels.base import prepare
from kernels.select import get_backend
from node.jobs import Job, JobStatus
from node.miner import Miner
from pouw.matrix import pad_pair
from tests.support.blockgen import TEST_SHAPE, easy_params

P = easy_params()
ADDRESS = bytes([7]) * 20
M, N, K = TEST_SHAPE


class FakeChain:
    def __init__(self, reject: bool = False) -> None:
        self.tip_id = make_genesis_block(P).header.block_id
        self.blocks = []
        self.reject = reject

    async def submit_block(self, block, source):
        if self.reject:
            raise errors.InvalidBlock("rejected by the test")
        self.blocks.append((block, source))
        self.tip_id = block.header.block_id


class Templates:
    """Real templates on genesis, at any target (``target`` None: the preset's, where every tile wins)."""

    def __init__(self, target: int | None = None) -> None:
        self.parent = make_parent_info(make_genesis_block(P).header)
        self.target = target
        self.asked: list[tuple[bytes, tuple[int, int, int]]] = []

    async def template(self, address, shape) -> BlockTemplate:
        self.asked.append((address, shape))
        t = build_template(self.parent, P, self.parent.time + 60, address, (), shape)
        return t if self.target is None else replace(t, pre=replace(t.pre, target=self.target))


class FakeJobs:
    def __init__(self, jobs=()) -> None:
        self.queue = list(jobs)
        self.finished: dict[str, np.ndarray] = {}
        self.blocks: dict[str, list[bytes]] = {}

    def take_next(self):
        return self.queue.pop(0) if self.queue else None

    def has_queued(self) -> bool:
        return bool(self.queue)

    def add_block(self, job_id, block_id) -> None:
        self.blocks.setdefault(job_id, []).append(block_id)

    def finish(self, job_id, product):
        self.finished[job_id] = product


class FakeMetrics:
    def __init__(self) -> None:
        self.macs = 0
        self.found = 0

    def record_mined(self, *, matmuls: int = 1, macs: int = 0) -> None:
        self.macs += macs

    def record_block_found(self) -> None:
        self.found += 1


def make_miner(chain=None, templates=None, jobs=None, metrics=None) -> Miner:
    return Miner(get_backend("numpy"), chain=chain or FakeChain(), templates=templates or Templates(),
                 jobs=jobs or FakeJobs(), metrics=metrics or FakeMetrics(), address=ADDRESS, shape=(M, K, N))


async def test_generate_submits_blocks_that_pay_the_address():
    chain, metrics = FakeChain(), FakeMetrics()
    async with make_miner(chain, metrics=metrics) as miner:
        ids = await miner.generate(2, ADDRESS)
    assert [b.header.block_id for b, _ in chain.blocks] == ids
    assert all(source == "miner" and b.transactions[0].to == ADDRESS for b, source in chain.blocks)
    assert miner.blocks_found == metrics.found == 2 and metrics.macs == miner.macs > 0


async def test_a_rejected_block_is_not_counted_as_found():
    metrics = FakeMetrics()
    async with make_miner(FakeChain(reject=True), metrics=metrics) as miner:
        block_id = await miner.mine_round(ADDRESS, stop_on_block=True)
    assert block_id is not None and miner.blocks_found == metrics.found == 0


async def test_a_queued_job_is_mined_once_and_its_exact_product_handed_back():
    rng = np.random.default_rng(3)
    a = rng.integers(-64, 64, (20, 100), dtype=np.int8)
    b = rng.integers(-64, 64, (100, 9), dtype=np.int8)
    prepared = prepare(*pad_pair(a, b))
    job = Job("ab" * 32, JobStatus.MINING, (20, 100, 9), prepared.shape, "a", "b", 0.0)
    jobs, templates = FakeJobs([(job, prepared)]), Templates()
    async with make_miner(jobs=jobs, templates=templates) as miner:
        await miner.mine_round(ADDRESS, stop_on_block=False)
    pm, pk, pn = prepared.shape
    assert templates.asked == [(ADDRESS, (pm, pn, pk))]  # the job's padded shape, as (m, n, k)
    product = jobs.finished[job.job_id]
    assert np.array_equal(product[:20, :9], a.astype(np.int64) @ b.astype(np.int64))
    assert len(jobs.blocks[job.job_id]) == 1  # the easy target: that one nonce won a block


async def test_a_round_on_random_matrices_ends_when_the_tip_moves():
    chain = FakeChain()
    templates = Templates(target=0)  # nothing ever wins

    class MovingTip(FakeMetrics):
        def record_mined(self, *, matmuls: int = 1, macs: int = 0) -> None:
            super().record_mined(matmuls=matmuls, macs=macs)
            chain.tip_id = bytes(32)  # a block arrived from elsewhere while this nonce was mined

    async with make_miner(chain, templates, metrics=MovingTip()) as miner:
        assert await miner.mine_round(ADDRESS, stop_on_block=False) is None
    assert miner.matmuls == 1 and chain.blocks == []


async def test_a_round_on_random_matrices_ends_when_a_job_arrives():
    jobs = FakeJobs()
    templates = Templates(target=0)

    class JobArrives(FakeMetrics):
        def record_mined(self, *, matmuls: int = 1, macs: int = 0) -> None:
            super().record_mined(matmuls=matmuls, macs=macs)
            if self.macs >= 3 * M * N * K:
                jobs.queue.append("a job")

    async with make_miner(templates=templates, jobs=jobs, metrics=JobArrives()) as miner:
        assert await miner.mine_round(ADDRESS, stop_on_block=False) is None
    assert miner.matmuls == 3


async def test_start_and_stop():
    chain = FakeChain()
    async with make_miner(chain) as miner:
        miner.start()
        assert miner.running
        await miner.stop()
        assert not miner.running
    with pytest.raises(RuntimeError):  # the thread is gone after leaving
        miner._exec.submit(lambda: None)
