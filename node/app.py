"""The composition root: every service of a running node, started in order and torn down in reverse.

``open_node(config)`` is an async context manager that builds, on one
``AsyncExitStack``:

1. storage: the work threads, the blob store, the chain (``ChainHandle``, which
   owns the chain thread) and the job records;
2. the mempool, the transaction intake and the template maker;
3. the miner (with its backend);
4. the network (``p2p.network.PeerNetwork`` over ``node.netadapter.NetAdapter``)
   unless ``--no-p2p``;
5. the JSON-RPC server with the method groups of ``node.api``.

Services learn of each other's news through ``node.events.Events``,
subscribed here; none holds the others. Leaving the context (or a failure
half-way through starting) unwinds the stack: mining stops first, then RPC,
networking, the miner's thread, the job records, the chain (closed on its
thread) and the work threads.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from consensus.address import decode_address, encode_address
from consensus.networks import NetworkParams, get_network
from consensus.types import JOB_KIND_NAMES, TX_KIND_TRANSFER, TxBody
from kernels.select import get_backend
from p2p.errors import P2PError
from p2p.network import PeerNetwork
from p2p.peers import ConnectionLimits
from p2p.scoring import ScoreBook

from . import __version__
from .api.chain import ChainMethods
from .api.control import ControlMethods
from .api.explorer import ExplorerMethods
from .api.jobs import JobMethods
from .api.mempool import MempoolMethods
from .api.mining import MiningMethods
from .api.network import NetworkMethods
from .api.offers import OfferMethods
from .api.routes import blob_routes
from .api.views import Addresses
from .blobs import BlobStore
from .chainhandle import ChainHandle
from .claimer import Claimer, load_claim_key
from .claims import ClaimProducts, OfferIndex
from .config import NodeConfig, p2p_seed_from_text
from .errors import StartupError
from .events import BlockAccepted, Events, JobChanged, TipMoved, TxAdmitted
from .jobs import Job, JobService
from .lagwatch import watch_lag
from .mempool import Mempool
from .metrics import Metrics
from .miner import Miner
from .netadapter import NetAdapter
from .offers import OfferBook
from .rpc.registry import Registry
from .rpc.server import RpcServer
from .store import LevelDBStore
from .templates import TemplateMaker, TemplateWatch
from .txintake import TxIntake


@dataclass
class Node:
    """A running node's services, for ``pouwd`` and tests; built by ``open_node``."""

    config: NodeConfig
    params: NetworkParams
    events: Events
    metrics: Metrics
    chain: ChainHandle
    mempool: Mempool
    jobs: JobService
    blobs: BlobStore
    miner: Miner
    rpc: RpcServer
    network: PeerNetwork | None = None
    """None without networking (``--no-p2p``)."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    offers: OfferBook | None = None
    """Paid job offers, live and final (``node.offers``)."""

    def request_stop(self) -> None:
        """Ask ``pouwd`` to shut down (the ``stop`` RPC, signals)."""
        self.stopping.set()

    def encode_address(self, address: bytes) -> str:
        return encode_address(address, self.params.hrp)


LIVE_RECORDS_LOADED = 1 << 20
"""Live job records the offer book loads at start (each one escrows coins and paid a fee)."""


def miner_address(config: NodeConfig, params: NetworkParams) -> bytes:
    """The address mined blocks pay: ``--miner-address``, else the preset's first prefunded account."""
    if config.miner_address:
        return decode_address(config.miner_address, params.hrp)
    if params.allocations:
        return params.allocations[0].address
    raise ValueError("set --miner-address: this network has no prefunded default account")


@asynccontextmanager
async def open_node(config: NodeConfig, *, clock: Callable[[], float] = time.time) -> AsyncIterator[Node]:
    """Start every service of a node for ``config``; stop them all on leaving."""
    params = get_network(config.network)
    if config.datadir is None or config.rpc_port is None:
        raise ValueError("a NodeConfig from load_config (or one whose __post_init__ ran) sets datadir and rpc_port")
    datadir = Path(config.datadir)
    datadir.mkdir(parents=True, exist_ok=True)
    events = Events()
    events.bind_loop()
    metrics = Metrics()
    async with AsyncExitStack() as stack:
        work = ThreadPoolExecutor(2, thread_name_prefix="pouw-work")
        stack.callback(work.shutdown, wait=True)
        blobs = BlobStore(datadir / "blobs", config.max_blob_bytes, quota_bytes=config.blob_quota_bytes)
        chain = await stack.enter_async_context(ChainHandle.open(str(datadir / "chain"), params, events))
        jobs_store = LevelDBStore(str(datadir / "jobs"), sync=True)
        stack.callback(jobs_store.close)
        jobs = JobService(jobs_store, blobs, max_queued=config.max_jobs, clock=clock,
                          on_change=lambda job: events.emit_threadsafe(JobChanged(job)))
        snapshot = chain.snapshot
        mempool = Mempool(params, snapshot.get_account, get_job_record=snapshot.get_job_record,
                          height=snapshot.height, clock=clock)
        offers = OfferBook(jobs_store, params, Addresses(params.hrp))
        offers.rebuild(await chain.read(lambda c: c.job_records(LIVE_RECORDS_LOADED)))
        events.subscribe(TipMoved, lambda e: offers.on_tip_change(e.connected, e.disconnected, e.snapshot))
        txs = TxIntake(mempool, events)
        templates = TemplateMaker(chain, mempool, clock=clock)
        _subscribe_mempool(events, mempool)
        _subscribe_metrics(events, metrics, mempool, jobs, chain)
        claims, claimer = await _start_claims(stack, config, params, chain, jobs_store, blobs, jobs, txs, mempool,
                                              events, work)

        backend = await asyncio.get_running_loop().run_in_executor(work, get_backend, config.miner_backend)
        m, n, k = params.mining_shape
        miner = await stack.enter_async_context(Miner(
            backend, chain=chain, templates=templates, jobs=jobs, metrics=metrics,
            address=miner_address(config, params), shape=config.miner_shape or (m, k, n), claimer=claimer))

        adapter = NetAdapter(chain, txs, blobs, jobs, work=work, is_mining=lambda: miner.running, claims=claims)
        network = None if config.no_p2p else await _start_network(stack, config, datadir, params, chain,
                                                                         adapter, events, metrics)
        if network is not None:
            claimer.announce = network.announce_job
        if network is None:
            _watch_lag(stack, metrics, None)

        stack.push_async_callback(events.drain)  # after RPC stops, before the network and databases close
        stopping = asyncio.Event()
        watch = TemplateWatch(lambda: chain.tip_id, lambda: (len(mempool), mempool.bytes), jobs.version)
        registry = _registry(chain, txs, mempool, templates, miner, jobs, blobs, adapter if network else None,
                             network, work=work, metrics=metrics, request_stop=stopping.set, clock=clock,
                             watch=watch, offers=offers, claimer=claimer)
        rpc = await _start_rpc(stack, config, datadir, config.rpc_port, registry, metrics, blobs, work, jobs,
                               claims)
        stack.push_async_callback(watch.close)  # waiting long-polls answer at once, before the server stops
        _subscribe_rpc(events, rpc, Addresses(params.hrp))
        stack.push_async_callback(miner.stop)  # the first thing to stop
        if config.mine:
            miner.start()
        node = Node(config, params, events, metrics, chain, mempool, jobs, blobs, miner, rpc, network, stopping,
                    offers=offers)
        yield node


def _registry(chain: ChainHandle, txs: TxIntake, mempool: Mempool, templates: TemplateMaker, miner: Miner,
              jobs: JobService, blobs: BlobStore, adapter: NetAdapter | None, network: PeerNetwork | None, *,
              work: ThreadPoolExecutor, metrics: Metrics, request_stop: Callable[[], None],
              clock: Callable[[], float], watch: TemplateWatch, offers: OfferBook, claimer: Claimer) -> Registry:
    """Every RPC method group, each with the collaborators it uses."""
    params = chain.params
    addresses = Addresses(params.hrp)

    async def announce(job: Job) -> None:
        if adapter is not None:
            await adapter.announce_job(job)

    registry = Registry(info={"title": "pouwd JSON-RPC", "version": __version__})
    registry.add_methods(ChainMethods(chain, mempool, addresses))
    registry.add_methods(MempoolMethods(chain, txs, mempool, addresses))
    registry.add_methods(MiningMethods(chain, miner, templates, mempool, jobs, addresses, work=work,
                                       metrics=metrics, watch=watch, claim_info=claimer.info))
    offer_methods = OfferMethods(chain, offers, mempool, claimer.products)
    registry.add_methods(JobMethods(jobs, blobs, work=work, announce=announce, offers=offer_methods.offers_for_job,
                                    claimer=claimer))
    registry.add_methods(offer_methods)
    registry.add_methods(ExplorerMethods(chain, mempool, jobs, addresses, work=work, offers=offers,
                                         products=claimer.products))
    registry.add_methods(NetworkMethods(network, network_name=params.name, chain_id=params.chain_id,
                                        started=clock()))
    registry.add_methods(ControlMethods(request_stop))
    return registry


async def _start_claims(stack: AsyncExitStack, config: NodeConfig, params: NetworkParams, chain: ChainHandle,
                        jobs_store: LevelDBStore, blobs: BlobStore, jobs: JobService, txs: TxIntake, mempool: Mempool,
                        events: Events, work: ThreadPoolExecutor) -> tuple[ClaimProducts, Claimer]:
    """Claim products and the claimer (node/claims.py, node/claimer.py): the claim key (``--claim-key``, unlocked
    in the work pool: scrypt takes a moment), the queue's paid-first order, and the tip handler."""
    key = None
    if config.claim_key is not None:
        if config.claim_confirmations > params.job_window:
            raise StartupError(f"--claim-confirmations {config.claim_confirmations} exceeds the challenge window "
                               f"({params.job_window} blocks): a product served that late cannot be checked in time")
        key = await asyncio.get_running_loop().run_in_executor(
            work, load_claim_key, config.claim_key, config.claim_passphrase_file, config.claim_index, params.name)
    index = OfferIndex()
    claims = ClaimProducts(blobs, jobs_store, index, jobs=jobs, confirmations=config.claim_confirmations,
                           get_record=lambda offer_id: chain.snapshot.get_job_record(offer_id))

    async def live_records(limit: int) -> list:
        """Up to ``limit`` live records at the tip, read on the chain thread (``ChainService.job_records``)."""
        return await chain.read(lambda c: c.job_records(limit))

    claimer = Claimer(key=key, params=params, snapshot=lambda: chain.snapshot, read_records=live_records, txs=txs,
                      mempool=mempool, products=claims, index=index, jobs=jobs, work=work)
    await claimer.refresh()
    jobs.set_priority(index.reward_per_mac)
    events.subscribe(TipMoved, lambda e: claimer.tip_moved(e.connected, e.disconnected, e.snapshot))
    stack.push_async_callback(claimer.close)
    return claims, claimer


async def _start_network(stack: AsyncExitStack, config: NodeConfig, datadir: Path, params: NetworkParams,
                         chain: ChainHandle, adapter: NetAdapter, events: Events, metrics: Metrics) -> PeerNetwork:
    from p2p.host import P2PHost  # loads libp2p (about a second): only when networking is on

    seed = p2p_seed_from_text(config.p2p_key_seed) if config.p2p_key_seed else None
    limits = ConnectionLimits(config.max_connections, config.outbound_slots, config.max_inbound_per_ip,
                              config.limit_loopback)
    host = P2PHost(key_dir=datadir, seed=seed, listen=[f"/ip4/{config.p2p_bind}/tcp/{config.p2p_port}"],
                   limits=limits)
    network = PeerNetwork(host, adapter, chain_id=params.chain_id, genesis_id=chain.genesis_id,
                          # Honest peers under load time out and resend now and then; a point a
                          # second of recovery keeps that from adding up to a ban, while invalid
                          # blocks (immediate ban) and floods (hundreds of points) still get one.
                          scoring=ScoreBook(datadir, recovery_per_second=1.0),
                          bootstrap=[*config.bootstrap, *config.connect], max_blob_bytes=config.max_blob_bytes)
    _watch_network(metrics, network)  # before it starts: its first connections and charges count
    try:
        await stack.enter_async_context(network)
    except (OSError, P2PError) as e:
        raise StartupError(f"cannot start networking on {config.p2p_bind}:{config.p2p_port}: {e}") from e
    adapter.attach(network, events)
    relay = asyncio.ensure_future(adapter.run_relay())
    stack.push_async_callback(_cancel, relay)
    _watch_lag(stack, metrics, host.round_trip)
    return network


async def _start_rpc(stack: AsyncExitStack, config: NodeConfig, datadir: Path, port: int, registry: Registry,
                     metrics: Metrics, blobs: BlobStore, work: ThreadPoolExecutor, jobs: JobService,
                     claims: ClaimProducts) -> RpcServer:
    routes = blob_routes(blobs, work, product_shape=jobs.product_shape, claims=claims)
    rpc = RpcServer(registry, config.rpc_bind, port, cookie_path=datadir / ".cookie",
                    rpc_user=config.rpc_user, rpc_password=config.rpc_password,
                    metrics=metrics if config.metrics else None, extra_routes=routes,
                    allowed_hosts=config.rpc_allow_host, cors_origins=config.rpc_cors)
    try:
        await rpc.start()
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise StartupError(f"cannot serve JSON-RPC on {config.rpc_bind}:{port}: {reason}") from e
    stack.push_async_callback(rpc.stop)
    return rpc


def _watch_lag(stack: AsyncExitStack, metrics: Metrics, round_trip: Callable[[], Awaitable[None]] | None) -> None:
    """Loop lag into the metrics (node/lagwatch.py) until the node stops."""
    task = asyncio.ensure_future(watch_lag(metrics.record_loop_lag, round_trip))
    stack.push_async_callback(_cancel, task)


async def _cancel(task: asyncio.Future) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def _subscribe_mempool(events: Events, mempool: Mempool) -> None:
    # The mempool re-admits incrementally and yields to the loop between slices (node/mempool.py), so
    # this handler is a coroutine; ChainHandle.submit_block awaits it before answering.
    newest = [-1]  # chain work of the newest snapshot handed over: never go back to an older one

    async def on_tip(e: TipMoved) -> None:
        mined = [t for b in e.connected for t in b.signed]
        returned = [t for b in e.disconnected for t in b.signed]
        lowered = [b.coinbase.to for b in e.disconnected]  # a disconnect takes back the miner's coinbase
        work = e.snapshot.tip.chain_work
        newer = work > newest[0]
        newest[0] = max(newest[0], work)
        await mempool.on_tip_change(mined, returned, touched=lowered,
                                    get_account=e.snapshot.get_account if newer else None,
                                    get_job_record=e.snapshot.get_job_record if newer else None,
                                    height=e.snapshot.height if newer else None)

    events.subscribe(TipMoved, on_tip)


def _subscribe_metrics(events: Events, metrics: Metrics, mempool: Mempool, jobs: JobService,
                       chain: ChainHandle) -> None:
    def chain_gauges(tip_target: int, height: int, work: int) -> None:
        metrics.chain_height.set(height)
        metrics.chain_difficulty.set(difficulty(tip_target))
        metrics.chain_work.set(float(work))

    def mempool_gauges(_: object = None) -> None:
        metrics.mempool_txs.set(len(mempool))
        metrics.mempool_bytes.set(mempool.bytes)

    def on_tip(e: TipMoved) -> None:
        tip = e.snapshot.tip
        if e.disconnected:
            metrics.record_reorg(len(e.disconnected))
        chain_gauges(tip.target, tip.height, tip.chain_work)
        mempool_gauges()

    tip = chain.snapshot.tip
    chain_gauges(tip.target, tip.height, tip.chain_work)
    mempool_gauges()
    metrics.set_jobs(jobs.counts())
    metrics.set_tip_time_source(lambda: chain.snapshot.tip.time)
    events.subscribe(TipMoved, on_tip)
    events.subscribe(TxAdmitted, mempool_gauges)
    events.subscribe(BlockAccepted, lambda e: metrics.block_validation_seconds.observe(e.seconds))
    events.subscribe(JobChanged, lambda _: metrics.set_jobs(jobs.counts()))
    chain.on_certificate_checked(metrics.record_certificate_check)  # every block's, on the chain thread


def _watch_network(metrics: Metrics, network: PeerNetwork) -> None:
    """Network metrics: the network's counters at every scrape, and every score charge as it happens."""
    metrics.watch_network(network.stats)
    network.scoring.on_penalty(lambda _peer, offence: metrics.record_score_charge(offence.label))


def _subscribe_rpc(events: Events, rpc: RpcServer, addresses: Addresses) -> None:
    def on_tip(e: TipMoved) -> None:
        for b in e.connected:
            rpc.publish("newblock", {"hash": b.header.block_id.hex(), "height": b.height,
                                     "time": b.header.pre.time, "txs": len(b.transactions)})

    def on_tx(e: TxAdmitted) -> None:
        if not rpc.subscriber_count("newtx"):
            return  # the payload's bech32m addresses cost more than admitting the transaction
        body = e.entry.tx.body
        msg: dict = {"txid": e.entry.tx_id.hex(), "kind": tx_kind_name(body.kind),
                     "from": addresses.encode(e.entry.sender), "fee": body.fee}
        if isinstance(body, TxBody):
            msg.update(to=addresses.encode(body.to), amount=body.amount)
        elif e.entry.job is not None:
            msg["offer_id"] = e.entry.job.offer_id.hex()
        rpc.publish("newtx", msg)

    events.subscribe(TipMoved, on_tip)
    events.subscribe(TxAdmitted, on_tx)
    def on_job(e: JobChanged) -> None:
        rpc.publish("job", e.job.to_json())

    events.subscribe(JobChanged, on_job)


def tx_kind_name(kind: int) -> str:
    """``transfer``, or the job kind's name of section 11 (``offer`` ... ``fraud``)."""
    return "transfer" if kind == TX_KIND_TRANSFER else JOB_KIND_NAMES[kind]


def difficulty(target: int) -> float:
    """Expected multiply-accumulates per block at ``target``, as a float for display."""
    return float((1 << 256) // (target + 1))
