"""The miner: builds templates, mines off the event loop, and hands found blocks to the chain.

Work comes from the job queue (a job's padded matrices, one nonce: the exact
product falls out of that matmul) or, when no job waits, from a random int7
pair of the configured shape, committed once and reused for every nonce. The
miner rebuilds its template when the tip changes (and every few seconds, to
refresh time and transactions). A found block goes through the chain handle's
``submit_block``, the same path as a block from a peer.

A paid job (an open offer carries it) mined by a node with a claim key goes
through the ``MinerClaimer`` (node/claimer.py): its result is withheld before
the job is marked done, then the claim is sent with the roots the miner
committed from the job's blobs, and the product is served once the claim
confirms (node/claims.py).

The miner sees only its narrow collaborators (``MinerChain``,
``TemplateSource``, ``JobQueue``, ``MinerMetrics``, ``MinerClaimer``) and a
``kernels`` backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from consensus.assemble import BlockTemplate, assemble_block
from consensus.errors import ConsensusError
from consensus.types import Block
from kernels.base import Backend, Prepared, prepare

from .jobs import Job

log = logging.getLogger(__name__)
TEMPLATE_MAX_AGE = 5.0


class MinerChain(Protocol):
    """The chain as the miner sees it (``node.chainhandle.ChainHandle``)."""

    @property
    def tip_id(self) -> bytes: ...

    async def submit_block(self, block: Block, source: str) -> Any:
        """Take a block; raise ``ConsensusError`` if it is invalid."""
        ...


class TemplateSource(Protocol):
    """Templates on the current tip (``node.templates.TemplateMaker``)."""

    async def template(self, address: bytes, shape: tuple[int, int, int]) -> BlockTemplate:
        """A template paying ``address``; ``shape`` is ``(m, n, k)``."""
        ...


class JobQueue(Protocol):
    """The job queue as the miner sees it (``node.jobs.JobService``); called from the miner's thread."""

    def take_next(self) -> tuple[Job, Prepared] | None: ...

    def has_queued(self) -> bool: ...

    def add_block(self, job_id: str, block_id: bytes) -> None: ...

    def finish(self, job_id: str, product: np.ndarray) -> Job: ...


class MinerClaimer(Protocol):
    """The claim-key side (``node.claimer.Claimer``), called on the event loop."""

    async def hold(self, job: Job) -> bool:
        """Before the job is marked done: whether its result is withheld for a claim."""
        ...

    async def claimed(self, job: Job, roots: tuple[bytes, bytes] | None = None) -> Any:
        """After a held job is done: send the claim (or release the result)."""
        ...

    async def release(self, job: Job) -> None:
        """A held job took no product after all: nothing to claim, its result is no longer withheld."""
        ...


class MinerMetrics(Protocol):
    def record_mined(self, *, matmuls: int = 1, macs: int = 0) -> None: ...

    def record_block_found(self) -> None: ...


class Miner:
    """Mines continuously while started; also serves ``generate`` for ``generatetoaddress``.

    Use as ``async with Miner(...) as miner``: leaving stops mining and joins
    the miner's thread.
    """

    def __init__(self, backend: Backend, *, chain: MinerChain, templates: TemplateSource, jobs: JobQueue,
                 metrics: MinerMetrics, address: bytes, shape: tuple[int, int, int],
                 claimer: MinerClaimer | None = None) -> None:
        self.backend = backend
        self.chain = chain
        self.templates = templates
        self.jobs = jobs
        self.metrics = metrics
        self.address = address
        self.shape = shape
        """``(m, k, n)`` of the random matrices."""
        self.claimer = claimer
        self.matmuls = 0
        self.macs = 0
        self.blocks_found = 0
        self._random: Prepared | None = None
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="pouw-miner")
        self._task: asyncio.Task | None = None
        self._nonce = int.from_bytes(np.random.default_rng().bytes(4), "little") << 32

    async def __aenter__(self) -> Miner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self._exec.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="miner")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _on_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._exec, fn, *args)

    async def _random_pair(self) -> Prepared:
        if self._random is None:
            m, k, n = self.shape

            def make() -> Prepared:
                rng = np.random.default_rng()  # work matrices, not consensus values
                return prepare(rng.integers(-64, 64, (m, k), dtype=np.int8),
                               rng.integers(-64, 64, (k, n), dtype=np.int8))

            self._random = await self._on_thread(make)
        return self._random

    async def _run(self) -> None:
        while True:
            try:
                await self.mine_round(self.address, stop_on_block=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("mining round failed; retrying in 1 s")  # keep mining, but say why
                await asyncio.sleep(1.0)

    async def generate(self, count: int, address: bytes) -> list[bytes]:
        """Mine until ``count`` blocks paying ``address`` are connected; return their ids."""
        found: list[bytes] = []
        while len(found) < count:
            block_id = await self.mine_round(address, stop_on_block=True)
            if block_id is not None:
                found.append(block_id)
        return found

    async def mine_round(self, address: bytes, *, stop_on_block: bool) -> bytes | None:
        """Mine one template until it is stale (or, with ``stop_on_block``, until a block is found).

        A job's matrices are mined for one nonce (that yields the product) and
        the round ends there; random matrices are mined until the tip moves, a
        block is found, the template ages, or a job arrives.
        """
        taken = await self._on_thread(self.jobs.take_next)
        job, prepared = taken if taken is not None else (None, await self._random_pair())
        m, k, n = prepared.shape
        template = await self.templates.template(address, (m, n, k))
        built = time.monotonic()
        while True:
            want_product = job is not None
            result = await self._mine_nonce(prepared, template, want_product)
            block_id = await self._submit_winner(template, prepared, result, job)
            if job is not None:
                held = self.claimer is not None and await self.claimer.hold(job)
                done = await self._on_thread(self.jobs.finish, job.job_id, result.product)
                if held and self.claimer is not None:
                    roots = (prepared.commitment.root_a, prepared.commitment.root_b)
                    await self.claimer.claimed(done, roots)
                return block_id
            if block_id is not None or self.chain.tip_id != template.pre.prev_id:
                return block_id
            if not stop_on_block and (time.monotonic() - built > TEMPLATE_MAX_AGE or self.jobs.has_queued()):
                return None

    async def _mine_nonce(self, prepared: Prepared, template: BlockTemplate, want_product: bool) -> Any:
        nonce = self._nonce
        self._nonce = (self._nonce + 1) % (1 << 64)
        result = await self._on_thread(
            lambda: self.backend.mine(prepared, template.pre, nonce, want_product=want_product))
        m, k, n = prepared.shape
        self.matmuls += 1
        self.macs += m * k * n
        self.metrics.record_mined(matmuls=1, macs=m * k * n)
        return result

    async def _submit_winner(self, template: BlockTemplate, prepared: Prepared, result: Any,
                             job: Job | None) -> bytes | None:
        """Assemble and submit the block of the first winning tile, if any; its id."""
        if not result.winners:
            return None
        w = result.winners[0]
        block = assemble_block(template, result.header(prepared, w), result.certificate(prepared, w))
        block_id = block.header.block_id
        try:
            await self.chain.submit_block(block, "miner")
        except ConsensusError as e:
            log.warning("mined block %s rejected: %s", block_id.hex()[:16], e)
        else:
            self.blocks_found += 1
            self.metrics.record_block_found()
            log.info("mined block %s at height %d", block_id.hex()[:16], block.height)
        if job is not None:
            await self._on_thread(self.jobs.add_block, job.job_id, block_id)
        return block_id
