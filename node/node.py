"""The node: chain, mempool, jobs, blobs and miner wired together on one asyncio loop.

Every ``ChainService`` call runs on one dedicated thread (``call_chain``), so
heavy validation never blocks the event loop and the chain is only ever touched
by one thread. The mempool lives on the loop. Blocks from the miner, from RPC
(``submitblock``) and, later, from peers all go through ``submit_block``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from consensus.address import decode_address, encode_address
from consensus.assemble import BlockTemplate, build_template
from consensus.errors import ConsensusError
from consensus.networks import NetworkParams, get_network
from consensus.tx import compute_tx_id
from consensus.types import Block, Tx
from kernels.select import get_backend

from .blobs import BlobStore
from .chain import CONNECTED, ChainService, SubmitResult, TipChange
from .config import NodeConfig
from .jobs import Job, JobService
from .mempool import Mempool
from .metrics import Metrics
from .miner import Miner
from .store import LevelDBStore

log = logging.getLogger(__name__)

Listener = Callable[[str, dict], None]


class Node:
    """A running node; use as ``async with Node(config) as node: ...``."""

    def __init__(self, config: NodeConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.params: NetworkParams = get_network(config.network)
        self.clock = clock
        self.datadir = Path(config.datadir)
        self.metrics = Metrics()
        self.started = clock()
        self._chain_exec = ThreadPoolExecutor(1, thread_name_prefix="pouw-chain")
        self._work_exec = ThreadPoolExecutor(2, thread_name_prefix="pouw-work")
        self._listeners: list[Listener] = []
        self.block_hooks: list[Callable[[Block, str], Awaitable[None]]] = []
        """Coroutines told of every accepted block and its source (p2p gossip hooks in here)."""
        self.tx_hooks: list[Callable[[Tx, str], Awaitable[None]]] = []
        self.chain: ChainService | None = None
        self.jobs: JobService | None = None
        self.blobs: BlobStore | None = None
        self.mempool: Mempool | None = None
        self.miner: Miner | None = None
        self.rpc = None
        self._relay_task: asyncio.Future | None = None
        self.network = None
        """The peer-to-peer service (``node.sync.PeerNetwork``) once started; None without networking."""
        self.reorgs = 0
        self.stopping = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        self.datadir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self.chain = await loop.run_in_executor(
            self._chain_exec, lambda: ChainService.open(str(self.datadir / "chain"), self.params, sync=True))
        self.blobs = BlobStore(self.datadir / "blobs", self.config.max_blob_bytes)
        self._jobs_store = LevelDBStore(str(self.datadir / "jobs"), sync=True)
        self.jobs = JobService(self._jobs_store, self.blobs, max_queued=self.config.max_jobs,
                               clock=self.clock, on_change=self._job_changed)
        self.mempool = Mempool(self.params.chain_id, self.params.max_memo, self.chain.get_account, clock=self.clock)
        backend = await loop.run_in_executor(self._work_exec, get_backend, self.config.miner_backend)
        m, n, k = self.params.mining_shape
        shape = self.config.miner_shape or (m, k, n)
        self.miner = Miner(self, backend, self.miner_address(), shape)
        self._update_chain_metrics()
        self.metrics.set_jobs(self.jobs.counts())
        self.metrics.set_tip_time_source(lambda: self.chain.tip.time)
        self.bind_loop()
        if not self.config.no_p2p:
            await self._start_p2p()
        await self._start_rpc()
        if self.config.mine:
            self.miner.start()
        return self

    async def _start_rpc(self) -> None:
        from .api import register_chain_methods
        from .api_jobs import blob_routes, register_job_methods
        from .rpc.registry import Registry
        from .rpc.server import RpcServer

        registry = Registry(info={"title": "pouwd JSON-RPC", "version": __import__("node").__version__})
        register_chain_methods(registry, self)
        register_job_methods(registry, self)
        c = self.config
        self.rpc = RpcServer(registry, c.rpc_bind, c.rpc_port, cookie_path=self.datadir / ".cookie",
                             rpc_user=c.rpc_user, rpc_password=c.rpc_password,
                             metrics=self.metrics if c.metrics else None, extra_routes=blob_routes(self))
        await self.rpc.start()
        self.add_listener(self.rpc.publish)

    async def _start_p2p(self) -> None:
        from p2p.host import P2PHost
        from p2p.scoring import ScoreBook

        from .config import p2p_seed_from_text
        from .netglue import NodeChainAccess, install_hooks
        from .sync import PeerNetwork

        c = self.config
        seed = p2p_seed_from_text(c.p2p_key_seed) if c.p2p_key_seed else None
        host = P2PHost(key_dir=self.datadir, seed=seed, listen=[f"/ip4/{c.p2p_bind}/tcp/{c.p2p_port}"])
        access = NodeChainAccess(self)
        self.network = PeerNetwork(host, access, chain_id=self.params.chain_id,
                                   genesis_id=self.chain.genesis_id,
                                   # Honest peers under load time out and resend now and then; a point a
                                   # second of recovery keeps that from adding up to a ban, while invalid
                                   # blocks (immediate ban) and floods (hundreds of points) still get one.
                                   scoring=ScoreBook(self.datadir, recovery_per_second=1.0),
                                   bootstrap=[*c.bootstrap, *c.connect])
        await self.network.start()
        install_hooks(self)
        self._relay_task = asyncio.ensure_future(access.relay_jobs())

    def request_stop(self) -> None:
        """Ask the daemon to shut down (the ``stop`` RPC, signals)."""
        self.stopping.set()

    async def announce_job(self, job: Job) -> None:
        """Tell peers about a new job (a no-op without networking)."""
        if self.network is not None:
            from .netglue import job_announcement

            await self.network.announce_job(job_announcement(job))

    async def __aexit__(self, *exc) -> None:
        if self.miner is not None:
            await self.miner.stop()
        if self.rpc is not None:
            await self.rpc.stop()
        if self._relay_task is not None:
            self._relay_task.cancel()
        if self.network is not None:
            await self.network.stop()
        if self.miner is not None:
            await self.miner.__aexit__(*exc)
        loop = asyncio.get_running_loop()
        if self.chain is not None:
            await loop.run_in_executor(self._chain_exec, self.chain.close)
        if self.jobs is not None:
            self._jobs_store.close()
        self._chain_exec.shutdown(wait=True)
        self._work_exec.shutdown(wait=True)

    def miner_address(self) -> bytes:
        if self.config.miner_address:
            return decode_address(self.config.miner_address, self.params.hrp)
        if self.params.allocations:
            return self.params.allocations[0].address
        raise ValueError("set --miner-address: this network has no prefunded default account")

    def encode_address(self, address: bytes) -> str:
        return encode_address(address, self.params.hrp)

    # --- events ------------------------------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        """``fn(topic, payload)`` for ``newblock``, ``newtx`` and ``job``; called on the loop."""
        self._listeners.append(fn)

    def _emit(self, topic: str, payload: dict) -> None:
        for fn in self._listeners:
            try:
                fn(topic, payload)
            except Exception:  # noqa: BLE001 - one bad listener must not stop the others
                log.exception("listener failed on %s", topic)

    def _job_changed(self, job: Job) -> None:
        # Called from whichever thread changed the job; hop onto the loop.
        try:
            loop = self._loop
        except AttributeError:
            return
        loop.call_soon_threadsafe(self._on_job_changed, job.to_json())

    def _on_job_changed(self, job: dict) -> None:
        self.metrics.set_jobs(self.jobs.counts())
        self._emit("job", job)

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return self.__dict__["_loop_ref"]

    def bind_loop(self) -> None:
        self.__dict__["_loop_ref"] = asyncio.get_running_loop()

    # --- chain -------------------------------------------------------------------------------

    async def call_chain(self, fn, *args):
        """Run ``fn(*args)`` on the chain thread."""
        return await asyncio.get_running_loop().run_in_executor(self._chain_exec, lambda: fn(*args))

    async def submit_block(self, block: Block, source: str) -> SubmitResult | None:
        """Validate and store a block; None if it is invalid (logged)."""
        try:
            return await self.submit_block_checked(block, source)
        except ConsensusError as e:
            log.warning("rejected block %s from %s: %s", block.header.block_id.hex()[:16], source, e)
            return None

    async def submit_block_checked(self, block: Block, source: str) -> SubmitResult:
        """Validate and store a block; raise ``ConsensusError`` if it is invalid."""
        start = time.perf_counter()
        result: SubmitResult = await self.call_chain(self.chain.submit_block, block)
        self.metrics.block_validation_seconds.observe(time.perf_counter() - start)
        if result.tip_change is not None:
            await self._on_tip_change(result.tip_change)
        if result.status == CONNECTED or result.tip_change is not None or result.status == "side-branch":
            for hook in self.block_hooks:
                await hook(block, source)
        return result

    async def _on_tip_change(self, change: TipChange) -> None:
        def blocks(ids):
            return [self.chain.get_block(i) for i in ids]

        connected = await self.call_chain(blocks, change.connected)
        disconnected = await self.call_chain(blocks, change.disconnected)
        if change.disconnected:
            self.reorgs += 1
            self.metrics.record_reorg(len(change.disconnected))
        mined = [t for b in connected for t in b.transfers]
        returned = [t for b in disconnected for t in b.transfers]
        self.mempool.on_tip_change(mined, returned)
        self._update_chain_metrics()
        for b in connected:
            self._emit("newblock", {"hash": b.header.block_id.hex(), "height": b.height,
                                    "time": b.header.pre.time, "txs": len(b.transactions)})

    def _update_chain_metrics(self) -> None:
        tip = self.chain.tip
        self.metrics.chain_height.set(tip.height)
        self.metrics.chain_difficulty.set(difficulty(tip.target))
        self.metrics.chain_work.set(float(tip.chain_work))
        self.metrics.mempool_txs.set(len(self.mempool) if self.mempool else 0)
        self.metrics.mempool_bytes.set(self.mempool.bytes if self.mempool else 0)

    async def submit_tx(self, tx: Tx, source: str) -> bytes:
        """Admit a transfer to the mempool (raises ``MempoolError``/``InvalidTx``); returns its id.

        From a peer, a transfer slightly ahead of its sender's nonce is held until
        the gap closes (gossip reorders); from RPC it must be next in line.
        """
        entries = [self.mempool.add(tx)] if source in ("rpc", "miner") else self.mempool.add_or_hold(tx)
        self.metrics.mempool_txs.set(len(self.mempool))
        self.metrics.mempool_bytes.set(self.mempool.bytes)
        for entry in entries:
            t = entry.tx
            self._emit("newtx", {"txid": entry.tx_id.hex(), "from": self.encode_address(entry.sender),
                                 "to": self.encode_address(t.body.to), "amount": t.body.amount, "fee": t.body.fee})
            for hook in self.tx_hooks:
                await hook(t, source)
        return compute_tx_id(tx)

    async def make_template(self, address: bytes, shape: tuple[int, int, int]) -> BlockTemplate:
        """A template on the current tip paying ``address``; ``shape`` is ``(m, n, k)``."""
        transfers = self.mempool.select(self.params.max_tx_count - 1, self.params.max_block_size // 2)

        def build() -> BlockTemplate:
            parent = self.chain.get_parent_info(self.chain.tip_id)
            median = sorted(parent.recent_times)[len(parent.recent_times) // 2]
            now = max(int(self.clock()), median + 1)
            return build_template(parent, self.params, now, address, transfers, shape)

        return await self.call_chain(build)

    # --- jobs and miner ----------------------------------------------------------------------

    def jobs_waiting(self) -> bool:
        return any(True for _ in self.jobs.list("queued"))

    async def finish_job(self, job_id: str, product) -> None:
        """Check and store the product of a job this node mined; tell peers where to fetch it."""
        job = await asyncio.get_running_loop().run_in_executor(self._work_exec, self.jobs.finish, job_id, product)
        if self.network is not None and job.status == "done":
            from .netglue import job_result_announcement

            await self.network.announce_job(job_result_announcement(job))

    async def run_work(self, fn, *args):
        """Run CPU-heavy work (matrix parsing, hashing) off the loop."""
        return await asyncio.get_running_loop().run_in_executor(self._work_exec, lambda: fn(*args))

    def metrics_miner(self, macs: int) -> None:
        self.metrics.record_mined(matmuls=1, macs=macs)


def difficulty(target: int) -> float:
    """Expected multiply-accumulates per block at ``target``, as a float for display."""
    return float((1 << 256) // (target + 1))
