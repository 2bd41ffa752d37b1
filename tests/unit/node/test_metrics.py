"""Metrics: own registry, names and labels, tip age at scrape, RPC recording."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from node.metrics import UNKNOWN_METHOD, Metrics


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
    m.set_peers(inbound=3, outbound=8)
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
