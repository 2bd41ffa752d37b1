"""Prometheus metrics of one node, in a registry of its own.

``Metrics`` owns a ``prometheus_client.CollectorRegistry`` rather than using
the process-global one, so several nodes (functional tests, the in-process
devnet) can live in one process. Services update the attributes directly
(``metrics.chain_height.set(h)``) or through the helpers below; the RPC
server records every call with ``record_rpc`` and serves ``generate()`` at
``GET /metrics``.

The network's figures are read at scrape time from the ``p2p.peers.NetworkStats``
given to ``watch_network`` (peers by direction, gossip in and out by topic,
request timeouts by protocol): p2p keeps plain counters and never imports this
module. Score charges arrive through ``p2p.scoring.ScoreBook.on_penalty``
(``record_score_charge``) and certificate checks through
``ChainHandle.on_certificate_checked`` (``certificate_verify_seconds``), both
wired in ``node/app.py``.

Naming follows https://prometheus.io/docs/practices/naming/: one ``pouw_``
prefix, base units (seconds, bytes), ``_total`` on counters, low-cardinality
labels only (never hashes, addresses or job ids).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from p2p.peers import NetworkStats
from p2p.scoring import Offence

#: Label value of ``pouw_rpc_requests_total{method}`` for names that are not registered methods
#: (kept to one value so a client cannot blow up the series count).
UNKNOWN_METHOD = "unknown"

_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                 1.0, 2.5, 5.0, 10.0)
_SLOW_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DEPTH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128, 512)

#: Label values every node exports from the start (0 until something happens), so graphs and
#: ``rate()`` see each series before its first event. Others appear when they first occur.
DIRECTIONS = ("inbound", "outbound")
GOSSIP_TOPICS = ("blocks", "txs", "jobs")
REQUEST_PROTOCOLS = ("status", "headers", "blocks_by_id", "blob")


def _package_version() -> str:
    try:
        return metadata.version("pouw-node")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class Metrics:
    """Every metric the node exports.

    ``tip_time`` returns the current tip's timestamp (Unix seconds) or
    ``None`` before there is one; ``pouw_chain_tip_age_seconds`` is computed
    from it at scrape time with ``clock`` (NaN while it is ``None``). It can
    also be set later with ``set_tip_time_source``.
    """

    def __init__(
        self,
        *,
        version: str | None = None,
        tip_time: Callable[[], float | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._clock = clock
        self._tip_time = tip_time

        self.chain_height = Gauge("pouw_chain_height", "Height of the best chain's tip.", registry=r)
        self.chain_tip_age = Gauge("pouw_chain_tip_age_seconds",
                                   "Seconds since the tip block's timestamp (NaN before there is a tip).",
                                   registry=r)
        self.chain_tip_age.set_function(self._tip_age)
        self.chain_difficulty = Gauge("pouw_chain_difficulty", "Difficulty of the next block.", registry=r)
        self.chain_work = Gauge("pouw_chain_work", "Cumulative work of the best chain.", registry=r)
        self.reorgs = Counter("pouw_reorgs", "Chain reorganisations.", registry=r)
        self.reorg_depth = Histogram("pouw_reorg_depth", "Blocks disconnected per reorganisation.",
                                     buckets=_DEPTH_BUCKETS, registry=r)
        self._network = _NetworkCollector()
        r.register(self._network)  # pouw_peers, pouw_gossip_*, pouw_peer_request_timeouts_total
        self.score_charges = Counter("pouw_peer_score_charges",
                                     "Score charges to peers by reason (the offence), bans at once included.",
                                     ["reason"], registry=r)
        for offence in Offence:
            self.score_charges.labels(reason=offence.label)
        self.mempool_txs = Gauge("pouw_mempool_txs", "Transactions in the mempool.", registry=r)
        self.mempool_bytes = Gauge("pouw_mempool_bytes", "Serialized size of the mempool.", registry=r)
        self.block_validation_seconds = Histogram(
            "pouw_block_validation_seconds", "Time to validate and connect one block.",
            buckets=_SLOW_BUCKETS, registry=r)
        self.certificate_verify_seconds = Histogram(
            "pouw_certificate_verify_seconds",
            "Time to verify one proof-of-useful-work certificate: every submitted block's (peer, sync, "
            "miner, submitblock; valid or not) and every successful verifycertificate call.",
            buckets=_SLOW_BUCKETS, registry=r)
        self.rpc_requests = Counter("pouw_rpc_requests", "JSON-RPC calls by method and error code (0: success).",
                                    ["method", "code"], registry=r)
        self.rpc_request_duration = Histogram("pouw_rpc_request_duration_seconds",
                                              "Time to answer one JSON-RPC call.", ["method"],
                                              buckets=_FAST_BUCKETS, registry=r)
        self.miner_matmuls = Counter("pouw_miner_matmuls", "Matrix multiplications mined.", registry=r)
        self.miner_macs = Counter("pouw_miner_macs", "Multiply-accumulate operations mined.", registry=r)
        self.miner_blocks_found = Counter("pouw_miner_blocks_found", "Blocks this node's miner found.",
                                          registry=r)
        self.loop_lag = Histogram(
            "pouw_loop_lag_seconds",
            "How late a loop ran a task it was handed: loop=asyncio (the event loop: RPC, mempool, gossip "
            "handlers) and loop=libp2p (a round trip through the libp2p thread, asyncio included).",
            ["loop"], buckets=_FAST_BUCKETS, registry=r)
        self.loop_lag_max = Gauge("pouw_loop_lag_max_seconds", "The largest lag seen since start, by loop.",
                                  ["loop"], registry=r)
        self._lag_max: dict[str, float] = {}
        self._job_statuses: set[str] = set()
        self.jobs = Gauge("pouw_jobs", "Matrix-multiplication jobs by status.", ["status"], registry=r)
        self.build_info = Gauge("pouw_build_info", "Build information (value is always 1).", ["version"],
                                registry=r)
        self.build_info.labels(version=version or _package_version()).set(1)

    # -- helpers ---------------------------------------------------------------------------------

    def set_tip_time_source(self, tip_time: Callable[[], float | None] | None) -> None:
        """Set the callback giving the tip's timestamp (read at every scrape)."""
        self._tip_time = tip_time

    def _tip_age(self) -> float:
        if self._tip_time is None:
            return math.nan
        tip = self._tip_time()
        return math.nan if tip is None else self._clock() - tip

    def record_rpc(self, method: str | None, code: int, seconds: float | None = None) -> None:
        """Count one RPC call: ``method`` is a registered name or ``None`` (unknown), ``code`` 0 on success."""
        label = method if method is not None else UNKNOWN_METHOD
        self.rpc_requests.labels(method=label, code=str(code)).inc()
        if seconds is not None:
            self.rpc_request_duration.labels(method=label).observe(seconds)

    def record_reorg(self, depth: int) -> None:
        """Count a reorganisation that disconnected ``depth`` blocks."""
        self.reorgs.inc()
        self.reorg_depth.observe(depth)

    def watch_network(self, stats: NetworkStats | None) -> None:
        """Export ``stats`` (a ``PeerNetwork.stats``) at every scrape; ``None``: no network (all 0)."""
        self._network.stats = stats

    def record_score_charge(self, reason: str) -> None:
        """A peer was charged for ``reason`` (an ``Offence.label``); a ``ScoreBook.on_penalty`` listener."""
        self.score_charges.labels(reason=reason).inc()

    def record_certificate_check(self, seconds: float) -> None:
        """One certificate verified in ``seconds`` (a ``ChainHandle.on_certificate_checked`` listener)."""
        self.certificate_verify_seconds.observe(seconds)

    def record_loop_lag(self, loop: str, seconds: float) -> None:
        """One lag sample of ``loop`` (``asyncio`` or ``libp2p``)."""
        self.loop_lag.labels(loop=loop).observe(seconds)
        if seconds > self._lag_max.get(loop, -1.0):
            self._lag_max[loop] = seconds
            self.loop_lag_max.labels(loop=loop).set(seconds)

    def set_jobs(self, counts: Mapping[str, int]) -> None:
        """Set ``pouw_jobs{status}`` from a full status -> count map; statuses not in it drop to 0."""
        for status in self._job_statuses - set(counts):
            self.jobs.labels(status=status).set(0)
        for status, count in counts.items():
            self.jobs.labels(status=status).set(count)
        self._job_statuses |= set(counts)

    def record_block_found(self) -> None:
        """This node's miner found a block."""
        self.miner_blocks_found.inc()

    def record_mined(self, *, matmuls: int = 1, macs: int = 0) -> None:
        self.miner_matmuls.inc(matmuls)
        if macs:
            self.miner_macs.inc(macs)

    # -- exposition ------------------------------------------------------------------------------

    content_type = CONTENT_TYPE_LATEST
    """The ``Content-Type`` of ``generate()``'s bytes."""

    def generate(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _NetworkCollector(Collector):
    """The network's figures, read from a ``NetworkStats`` at each scrape (zeros without one)."""

    def __init__(self) -> None:
        self.stats: NetworkStats | None = None

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        peers = GaugeMetricFamily("pouw_peers", "Connected peers by direction (as getpeerinfo shows them).",
                                  labels=["direction"])
        for direction, value in _with_defaults(stats.peers if stats else {}, DIRECTIONS):
            peers.add_metric([direction], value)
        yield peers
        yield _counter("pouw_gossip_received", "Gossip messages received by topic, whatever their verdict.",
                       "topic", stats.gossip_received if stats else {}, GOSSIP_TOPICS)
        yield _counter("pouw_gossip_published",
                       "Gossip messages this node published by topic (its own announcements; gossipsub's "
                       "forwarding of accepted messages is not counted).",
                       "topic", stats.gossip_published if stats else {}, GOSSIP_TOPICS)
        yield _counter("pouw_peer_request_timeouts", "Requests to peers that got no answer in time, by protocol.",
                       "protocol", stats.request_timeouts if stats else {}, REQUEST_PROTOCOLS)
        dropped = CounterMetricFamily("pouw_gossip_tx_batches_dropped",
                                      "Gossiped transfer batches dropped because the admission queue was full.")
        dropped.add_metric([], stats.tx_batches_dropped if stats else 0)
        yield dropped


def _with_defaults(values: Mapping[str, int], defaults: Iterable[str]) -> list[tuple[str, int]]:
    values = dict(values)  # read once: the loop keeps adding keys
    return [(key, values.get(key, 0)) for key in dict.fromkeys([*defaults, *sorted(values)])]


def _counter(name: str, documentation: str, label: str, values: Mapping[str, int],
             defaults: Iterable[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in _with_defaults(values, defaults):
        family.add_metric([key], value)
    return family
