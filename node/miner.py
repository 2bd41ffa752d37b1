"""The miner: builds templates, mines off the event loop, and hands found blocks to the node.

Work comes from the job queue (a job's padded matrices, one nonce: the exact
product falls out of that matmul) or, when no job waits, from a random int7
pair of the configured shape, committed once and reused for every nonce. The
miner rebuilds its template when the tip changes (and every few seconds, to
refresh time and transactions). A found block goes through ``Node.submit_block``,
the same path as a block from a peer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from consensus.assemble import BlockTemplate, assemble_block
from kernels.base import Backend, Prepared, prepare

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger(__name__)
TEMPLATE_MAX_AGE = 5.0


class Miner:
    """Mines continuously while started; also serves ``generate`` for ``generatetoaddress``."""

    def __init__(self, node: Node, backend: Backend, address: bytes, shape: tuple[int, int, int]) -> None:
        self.node = node
        self.backend = backend
        self.address = address
        self.shape = shape
        """``(m, k, n)`` of the random matrices."""
        self.matmuls = 0
        self.macs = 0
        self.blocks_found = 0
        self._random: Prepared | None = None
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="pouw-miner")
        self._task: asyncio.Task | None = None
        self._nonce = int.from_bytes(np.random.default_rng().bytes(4), "little") << 32
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Miner:
        return self

    async def __aexit__(self, *exc) -> None:
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

    async def _random_pair(self) -> Prepared:
        if self._random is None:
            m, k, n = self.shape

            def make() -> Prepared:
                rng = np.random.default_rng()  # work matrices, not consensus values
                return prepare(rng.integers(-64, 64, (m, k), dtype=np.int8), rng.integers(-64, 64, (k, n), dtype=np.int8))

            self._random = await asyncio.get_running_loop().run_in_executor(self._exec, make)
        return self._random

    async def _run(self) -> None:
        while True:
            try:
                await self.mine_round(self.address, stop_on_block=False)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep mining after a bad round, but say why
                log.exception("mining round failed; retrying in 1 s")
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
        """Mine one template until it is stale (or, with ``stop_on_block``, until a block connects)."""
        loop = asyncio.get_running_loop()
        taken = await loop.run_in_executor(self._exec, self.node.jobs.take_next)
        job, prepared = taken if taken is not None else (None, await self._random_pair())
        m, k, n = prepared.shape
        template: BlockTemplate = await self.node.make_template(address, (m, n, k))
        built = time.monotonic()
        first = True
        while True:
            nonce = self._nonce
            self._nonce = (self._nonce + 1) % (1 << 64)
            want_product = job is not None and first
            result = await loop.run_in_executor(
                self._exec, lambda: self.backend.mine(prepared, template.pre, nonce, want_product=want_product))
            self.matmuls += 1
            self.macs += m * k * n
            self.node.metrics_miner(m * k * n)
            block_id = None
            if result.winners:
                w = result.winners[0]
                block = assemble_block(template, result.header(prepared, w), result.certificate(prepared, w))
                outcome = await self.node.submit_block(block, source="miner")
                block_id = block.header.block_id
                if outcome is not None:
                    self.blocks_found += 1
                    self.node.metrics.miner_blocks_found.inc()
                    log.info("mined block %s at height %d", block_id.hex()[:16], block.height)
                if job is not None:
                    await loop.run_in_executor(self._exec, self.node.jobs.add_block, job.job_id, block_id)
            if want_product:
                await self.node.finish_job(job.job_id, result.product)
                job = None
                return block_id
            first = False
            if block_id is not None or self.node.chain.tip_id != template.pre.prev_id:
                return block_id
            if stop_on_block is False and (time.monotonic() - built > TEMPLATE_MAX_AGE or self.node.jobs_waiting()):
                return None
