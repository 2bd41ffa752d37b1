"""Metrics: own registry, names and labels, tip age at scrape, RPC recording, and the wiring of the
network and certificate metrics to what really happens (fakes for the host, real chain and p2p code)."""

from __future__ import annotations

import asyncio
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from consensus import errors
from consensus.codec import encode_block
from consensus.keys import devnet_keypairs
from consensus.tx import make_transfer
from consensus.validation import validate_block
from node.app import _subscribe_metrics, _watch_network
from node.chain import ChainService
from node.chainhandle import ChainHandle
from node.events import Events
from node.metrics import UNKNOWN_METHOD, Metrics
from p2p.errors import RequestTimeout
from p2p.network import PeerNetwork
from p2p.peers import NetworkStats
from p2p.protocol import Status
from p2p.scoring import Offence, ScoreBook
from p2p.types import INBOUND, OUTBOUND, PeerInfo, Verdict
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.memstore import MemoryStore
from tests.support.stubhost import StubHost


def samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.generate().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


EXPECTED_NAMES = {
    "pouw_chain_height", "pouw_chain_tip_age_seconds", "pouw_chain_difficulty", "pouw_chain_work",
    "pouw_reorgs_total", "pouw_reorg_depth_bucket", "pouw_peers", "pouw_mempool_txs", "pouw_mempool_bytes",
    "pouw_block_validation_seconds_count", "pouw_certificate_verify_seconds_count",
    "pouw_miner_matmuls_total", "pouw_miner_macs_total", "pouw_miner_blocks_found_total", "pouw_build_info",
    "pouw_gossip_received_total", "pouw_gossip_published_total", "pouw_peer_request_timeouts_total",
    "pouw_peer_score_charges_total",
}


def test_every_metric_is_exported_with_its_name():
    names = {name for name, _ in samples(Metrics(version="1.2.3"))}
    assert EXPECTED_NAMES <= names, EXPECTED_NAMES - names


def test_each_instance_has_its_own_registry():
    a, b = Metrics(), Metrics()  # would raise "Duplicated timeseries" on a shared registry
    a.chain_height.set(5)
    assert samples(a)[("pouw_chain_height", ())] == 5
    assert samples(b)[("pouw_chain_height", ())] == 0


def test_tip_age_is_computed_at_scrape():
    now = [1000.0]
    tip = [None]
    m = Metrics(clock=lambda: now[0])
    assert math.isnan(samples(m)[("pouw_chain_tip_age_seconds", ())])
    m.set_tip_time_source(lambda: tip[0])
    assert math.isnan(samples(m)[("pouw_chain_tip_age_seconds", ())])
    tip[0] = 990.0
    assert samples(m)[("pouw_chain_tip_age_seconds", ())] == 10.0
    now[0] = 1030.5
    assert samples(m)[("pouw_chain_tip_age_seconds", ())] == 40.5


def test_rpc_calls_counted_per_method_and_code():
    m = Metrics()
    m.record_rpc("getblock", 0, 0.002)
    m.record_rpc("getblock", 0, 0.004)
    m.record_rpc("getblock", -5, 0.001)
    m.record_rpc(None, -32601, 0.0001)
    m.record_rpc(None, -32700)
    s = samples(m)
    assert s[("pouw_rpc_requests_total", (("code", "0"), ("method", "getblock")))] == 2
    assert s[("pouw_rpc_requests_total", (("code", "-5"), ("method", "getblock")))] == 1
    assert s[("pouw_rpc_requests_total", (("code", "-32601"), ("method", UNKNOWN_METHOD)))] == 1
    assert s[("pouw_rpc_requests_total", (("code", "-32700"), ("method", UNKNOWN_METHOD)))] == 1
    assert s[("pouw_rpc_request_duration_seconds_count", (("method", "getblock"),))] == 3
    assert s[("pouw_rpc_request_duration_seconds_count", (("method", UNKNOWN_METHOD),))] == 1
    assert math.isclose(s[("pouw_rpc_request_duration_seconds_sum", (("method", "getblock"),))], 0.007)


def test_helpers_and_labels():
    m = Metrics(version="9.9.9")
    stats = NetworkStats()
    m.watch_network(stats)
    stats.peers.update(inbound=3, outbound=8)
    m.record_reorg(2)
    m.record_reorg(5)
    m.set_jobs({"queued": 4, "running": 1})
    m.set_jobs({"running": 2, "done": 7})
    m.record_mined(matmuls=2, macs=2 * 512**3)
    m.miner_blocks_found.inc()
    m.chain_work.set(1.5e30)
    m.block_validation_seconds.observe(0.2)
    s = samples(m)
    assert s[("pouw_peers", (("direction", "inbound"),))] == 3
    assert s[("pouw_peers", (("direction", "outbound"),))] == 8
    assert s[("pouw_reorgs_total", ())] == 2
    assert s[("pouw_reorg_depth_count", ())] == 2 and s[("pouw_reorg_depth_sum", ())] == 7
    assert s[("pouw_jobs", (("status", "queued"),))] == 0
    assert s[("pouw_jobs", (("status", "running"),))] == 2
    assert s[("pouw_jobs", (("status", "done"),))] == 7
    assert s[("pouw_miner_matmuls_total", ())] == 2 and s[("pouw_miner_macs_total", ())] == 2 * 512**3
    assert s[("pouw_miner_blocks_found_total", ())] == 1
    assert s[("pouw_chain_work", ())] == 1.5e30
    assert s[("pouw_block_validation_seconds_count", ())] == 1
    assert s[("pouw_build_info", (("version", "9.9.9"),))] == 1


def test_content_type_is_prometheus_text():
    assert Metrics().content_type.startswith("text/plain; version=")


DASHBOARDS = Path(__file__).resolve().parents[3] / "testnet" / "grafana" / "dashboards"


def test_every_series_a_dashboard_graphs_is_exported():
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    exported = {family.name + suffix  # labelled families without a child yet have no samples: go by family
                for family in text_string_to_metric_families(Metrics().generate().decode())
                for suffix in suffixes.get(family.type, ("",))}
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                for name in re.findall(r"\bpouw_[a-z_]+", target["expr"]):
                    assert name in exported, f"{path.name}: panel {panel['title']!r} graphs {name}, not exported"


# --- network metrics ----------------------------------------------------------------------------


def test_without_a_network_every_network_series_is_there_at_zero():
    s = samples(Metrics())
    for direction in (INBOUND, OUTBOUND):
        assert s[("pouw_peers", (("direction", direction),))] == 0
    for topic in ("blocks", "txs", "jobs"):
        assert s[("pouw_gossip_received_total", (("topic", topic),))] == 0
        assert s[("pouw_gossip_published_total", (("topic", topic),))] == 0
    for protocol in ("status", "headers", "blocks_by_id", "blob"):
        assert s[("pouw_peer_request_timeouts_total", (("protocol", protocol),))] == 0
    for offence in Offence:
        assert s[("pouw_peer_score_charges_total", (("reason", offence.label),))] == 0


class Host(StubHost):
    """What ``PeerNetwork`` uses of ``P2PHost``: connected peers, publishing, requests (that time out)."""

    def __init__(self) -> None:
        self.connected: dict[str, PeerInfo] = {}
        self.sent: list[str] = []
        self.running = True

    def peers(self) -> list[PeerInfo]:
        return list(self.connected.values())

    def is_connected(self, peer: str) -> bool:
        return peer in self.connected

    async def publish(self, topic: str, data: bytes) -> None:
        self.sent.append(topic)

    async def request(self, peer, protocol, data, timeout):
        raise RequestTimeout(f"{protocol} to {peer} timed out")


class Chain:
    """A ``ChainAccess`` that knows no block and takes nothing (only the gossip paths under test run)."""

    def status(self):
        return bytes(32), 0, 0

    async def missing_blocks(self, ids):
        return list(ids)


P = easy_params()


@pytest.fixture
def wired():
    """A ``PeerNetwork`` on a fake host, wired to ``Metrics`` the way ``node.app`` wires a node's."""
    host = Host()
    net = PeerNetwork(host, Chain(), chain_id=P.chain_id, genesis_id=bytes(32), scoring=ScoreBook())
    metrics = Metrics()
    _watch_network(metrics, net)
    return host, net, metrics


def connect(host: Host, net: PeerNetwork, peer: str, direction: str) -> None:
    info = PeerInfo(peer, (), direction, 0.0)
    host.connected[peer] = info  # the host knows the connection before it tells its listeners
    net._on_peer_connected(info)


def disconnect(host: Host, net: PeerNetwork, peer: str) -> None:
    info = host.connected.pop(peer)
    net._on_peer_disconnected(info)


def peers(metrics: Metrics) -> tuple[float, float]:
    s = samples(metrics)
    return s[("pouw_peers", (("direction", INBOUND),))], s[("pouw_peers", (("direction", OUTBOUND),))]


def test_peers_by_direction_follow_connects_and_disconnects(wired):
    host, net, metrics = wired
    assert peers(metrics) == (0, 0)
    connect(host, net, "in-1", INBOUND)
    connect(host, net, "out-1", OUTBOUND)
    connect(host, net, "out-2", OUTBOUND)
    assert peers(metrics) == (1, 2)
    disconnect(host, net, "out-1")
    assert peers(metrics) == (1, 1)
    disconnect(host, net, "in-1")
    disconnect(host, net, "out-2")
    assert peers(metrics) == (0, 0)


def test_peers_are_recounted_from_the_host_not_from_the_events(wired):
    host, net, metrics = wired
    connect(host, net, "a", INBOUND)
    host.connected["b"] = PeerInfo("b", (), OUTBOUND, 0.0)  # its connected event has not arrived yet
    disconnect(host, net, "a")
    assert peers(metrics) == (0, 1)  # what getpeerinfo shows at this moment


async def test_gossip_in_is_counted_by_topic_whatever_the_verdict(wired):
    _, net, metrics = wired
    assert await net._on_block_gossip("p", b"\x07junk") == Verdict.REJECT
    assert await net._on_block_gossip("p", b"\x07junk") == Verdict.REJECT
    assert await net._on_tx_gossip("p", b"\x07junk") == Verdict.REJECT
    assert await net._on_job_gossip("q", b"\x07junk") == Verdict.REJECT
    s = samples(metrics)
    assert s[("pouw_gossip_received_total", (("topic", "blocks"),))] == 2
    assert s[("pouw_gossip_received_total", (("topic", "txs"),))] == 1
    assert s[("pouw_gossip_received_total", (("topic", "jobs"),))] == 1
    assert s[("pouw_peer_score_charges_total", (("reason", "malformed"),))] == 4  # and each cost a charge


async def test_gossip_out_is_counted_by_topic_when_published(wired):
    host, net, metrics = wired
    builder = ChainBuilder(P, synthetic=True)
    assert await net.announce_block(encode_block(builder.child(builder.genesis_id)))
    batcher = asyncio.ensure_future(net._tx_flusher())  # PeerNetwork.start runs it
    await net.announce_txs([b"tx"])
    await net.flush_txs(5.0)
    batcher.cancel()
    s = samples(metrics)
    assert s[("pouw_gossip_published_total", (("topic", "blocks"),))] == 1
    assert s[("pouw_gossip_published_total", (("topic", "txs"),))] == 1
    assert s[("pouw_gossip_published_total", (("topic", "jobs"),))] == 0
    assert host.sent == [net.ids.blocks, net.ids.txs]


async def test_request_timeouts_are_counted_by_protocol_and_charged(wired):
    _, net, metrics = wired
    ours = Status(P.chain_id, bytes(32), bytes(32), 0, 0)
    assert await net.requests.status("slow", ours) is None
    assert await net.requests.headers("slow", [bytes(32)], 10) is None
    assert await net.requests.blocks([bytes(32)], ["slow"]) == {}
    s = samples(metrics)
    assert s[("pouw_peer_request_timeouts_total", (("protocol", "status"),))] == 1
    assert s[("pouw_peer_request_timeouts_total", (("protocol", "headers"),))] == 1
    assert s[("pouw_peer_request_timeouts_total", (("protocol", "blocks_by_id"),))] == 1
    assert s[("pouw_peer_request_timeouts_total", (("protocol", "blob"),))] == 0
    assert s[("pouw_peer_score_charges_total", (("reason", "timeout"),))] == 3


def test_every_charge_is_counted_by_reason_bans_included(wired):
    _, net, metrics = wired
    net.scoring.penalise("a", Offence.USELESS)
    net.scoring.penalise("a", Offence.INVALID_TX, "bad signature")
    net.scoring.penalise("b", Offence.INVALID_BLOCK, "bad certificate")  # an immediate ban
    net.scoring.ban("c", 60, "manual")  # setban: no charge
    s = samples(metrics)
    assert s[("pouw_peer_score_charges_total", (("reason", "useless"),))] == 1
    assert s[("pouw_peer_score_charges_total", (("reason", "invalid-tx"),))] == 1
    assert s[("pouw_peer_score_charges_total", (("reason", "invalid-block"),))] == 1
    assert sum(v for (name, _), v in s.items() if name == "pouw_peer_score_charges_total") == 3


def test_a_failing_penalty_listener_changes_nothing():
    book = ScoreBook(recovery_per_second=0.0)
    heard = []
    book.on_penalty(lambda peer, offence: 1 / 0)
    book.on_penalty(lambda peer, offence: heard.append((peer, offence)))
    assert book.penalise("p", Offence.INVALID_BLOCK) is True and book.is_banned("p")
    assert book.penalise("q", Offence.MALFORMED) is False and book.score("q") == -20
    assert heard == [("p", Offence.INVALID_BLOCK), ("q", Offence.MALFORMED)]


# --- certificate checks -------------------------------------------------------------------------

KEYS = devnet_keypairs(2)
NOW = P.genesis_time + 10**6


def certificate_checks(metrics: Metrics) -> tuple[float, float]:
    s = samples(metrics)
    return s[("pouw_certificate_verify_seconds_count", ())], s[("pouw_certificate_verify_seconds_sum", ())]


@pytest.fixture
async def chain_metrics():
    """A real chain handle (certificates checked) with the node's metric subscriptions."""
    executor = ThreadPoolExecutor(1, thread_name_prefix="pouw-chain")
    events = Events()
    service = ChainService(MemoryStore(), P, clock=lambda: NOW)
    handle = await asyncio.get_running_loop().run_in_executor(executor, ChainHandle, service, executor, events)
    metrics = Metrics()

    class Jobs:
        def counts(self):
            return {}

    class Mempool:
        bytes = 0

        def __len__(self):
            return 0

    _subscribe_metrics(events, metrics, Mempool(), Jobs(), handle)
    yield handle, metrics
    executor.shutdown(wait=True)


def forged_transfer():
    """A transfer whose signature does not verify (a stateless fault, found after the certificate)."""
    tx = make_transfer(KEYS[0], P.chain_id, 0, KEYS[1].address, 1, 1000)
    return replace(tx, signature=bytes(64))


async def test_every_submitted_blocks_certificate_is_timed_whatever_the_source(chain_metrics):
    handle, metrics = chain_metrics
    builder = ChainBuilder(P)
    blocks = builder.extend(builder.genesis_id, 3)
    for block, source in zip(blocks, ("miner", "rpc", "12D3KooWpeer"), strict=True):
        await handle.submit_block(block, source)
    count, total = certificate_checks(metrics)
    assert count == 3 and total > 0
    await handle.submit_block(blocks[0], "12D3KooWpeer")  # a duplicate is not checked again
    assert certificate_checks(metrics)[0] == 3


async def test_a_bad_certificate_is_timed_too_and_the_block_still_refused(chain_metrics):
    handle, metrics = chain_metrics
    bad = ChainBuilder(P, synthetic=True).child(handle.genesis_id)  # zero certificate
    with pytest.raises(errors.BadCertificate):
        await handle.submit_block(bad, "12D3KooWpeer")
    assert certificate_checks(metrics)[0] == 1


def expected_error(block, params=P):
    parent = ChainBuilder(params).infos[block.prev_id]  # every block here sits on the genesis block
    try:
        validate_block(block, parent, params, NOW)  # the certificate checked where consensus checks it
    except errors.ConsensusError as e:
        return type(e), str(e)
    return None


@pytest.mark.parametrize("case", ["bad-certificate-and-transfer", "good-certificate-bad-transfer",
                                  "bad-certificate-too-new", "bad-certificate-wrong-target", "all-good"])
async def test_a_block_raises_what_validate_block_raises(chain_metrics, case):
    """Timing the certificate changes no verdict: the same error, cheap checks first, then the
    certificate, then the transfers; a block that fails a cheap check never costs a certificate check."""
    handle, metrics = chain_metrics
    synthetic = ChainBuilder(P, synthetic=True)
    mined = ChainBuilder(P)
    block = {
        "bad-certificate-and-transfer": lambda: synthetic.child(handle.genesis_id, [forged_transfer()]),
        "good-certificate-bad-transfer": lambda: mined.child(handle.genesis_id, [forged_transfer()]),
        "bad-certificate-too-new": lambda: synthetic.child(handle.genesis_id, time=NOW + 3 * 3600),
        "bad-certificate-wrong-target": lambda: wrong_target(synthetic.child(handle.genesis_id)),
        "all-good": lambda: mined.child(handle.genesis_id),
    }[case]()
    want = expected_error(block)
    try:
        await handle.submit_block(block, "12D3KooWpeer")
        got = None
    except errors.ConsensusError as e:
        got = type(e), str(e)
    assert got == want
    cheap_failure = case in ("bad-certificate-too-new", "bad-certificate-wrong-target")
    assert certificate_checks(metrics)[0] == (0 if cheap_failure else 1)


def wrong_target(block):
    pre = replace(block.header.pre, target=block.header.pre.target - 1)
    return replace(block, header=replace(block.header, pre=pre))


async def test_a_failing_certificate_listener_changes_nothing(chain_metrics):
    handle, metrics = chain_metrics
    handle.on_certificate_checked(lambda seconds: 1 / 0)
    builder = ChainBuilder(P)
    await handle.submit_block(builder.child(builder.genesis_id), "miner")
    assert handle.snapshot.height == 1 and certificate_checks(metrics)[0] == 1
