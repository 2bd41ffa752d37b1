"""Two pouwd processes peered over libp2p: ``/metrics`` on each shows the network as it is."""

from prometheus_client.parser import text_string_to_metric_families

from tests.functional.harness import wait_until

ADDR = "preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkm"


def scrape(node) -> dict[tuple[str, tuple], float]:
    status, body = node.http("GET", "/metrics", headers=node.auth_header())
    assert status == 200, body[:200]
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(str(s.name), tuple(sorted((str(k), str(v)) for k, v in s.labels.items())))] = s.value
    return out


def peers(metrics) -> tuple[float, float]:
    return (metrics[("pouw_peers", (("direction", "inbound"),))],
            metrics[("pouw_peers", (("direction", "outbound"),))])


def gossip(metrics, way: str, topic: str = "blocks") -> float:
    return metrics[(f"pouw_gossip_{way}_total", (("topic", topic),))]


def certificate_checks(metrics) -> float:
    return metrics[("pouw_certificate_verify_seconds_count", ())]


def test_peers_certificate_checks_and_gossip_match_what_happened(node_factory):
    miner = node_factory("miner", p2p=True).start()
    follower = node_factory("follower", "--bootstrap", miner.p2p[0], p2p=True).start()
    wait_until(lambda: len(miner.rpc("getpeerinfo")) == 1 and len(follower.rpc("getpeerinfo")) == 1,
               timeout=60, what="the two nodes to peer")
    # The follower dialed the miner: inbound there, outbound here, as getpeerinfo says.
    assert [p["direction"] for p in miner.rpc("getpeerinfo")] == ["inbound"]
    assert [p["direction"] for p in follower.rpc("getpeerinfo")] == ["outbound"]
    wait_until(lambda: peers(scrape(miner)) == (1, 0) and peers(scrape(follower)) == (0, 1),
               timeout=30, what="pouw_peers to show the connection")

    def mine_and_follow(count: int) -> int:
        miner.rpc("generatetoaddress", count, ADDR)
        height = miner.rpc("getblockcount")
        wait_until(lambda: follower.rpc("getblockcount") == height, timeout=60, what=f"the follower at {height}")
        return height

    mine_and_follow(3)

    def gossiped() -> bool:
        # The first blocks may reach the follower by sync while gossipsub still forms its mesh;
        # once the mesh is up every block is gossiped. Mine one more until one was.
        if gossip(scrape(follower), "received") >= 1:
            return True
        mine_and_follow(1)
        return False

    wait_until(gossiped, timeout=120, interval=0.5, what="a block to arrive by gossip")
    height = follower.rpc("getblockcount")

    m, f = scrape(miner), scrape(follower)
    assert gossip(m, "published") >= 1  # the miner announced its blocks
    assert gossip(f, "received") >= 1
    # Every block the follower holds came from the miner, by gossip or by sync, and was checked there;
    # the miner checked its own blocks before announcing them.
    assert certificate_checks(f) >= height
    assert certificate_checks(m) >= height
    assert peers(m) == (1, 0) and peers(f) == (0, 1)
    assert all(v == 0 for (name, labels), v in f.items()
               if name == "pouw_peer_score_charges_total" and labels in ((("reason", "invalid-block"),),
                                                                        (("reason", "wrong-chain"),)))
    # Both loops are sampled (every half second): the event loop and round trips through the libp2p thread.
    def lag(metrics, loop: str) -> float:
        return metrics.get(("pouw_loop_lag_seconds_count", (("loop", loop),)), 0)

    for node in (miner, follower):
        wait_until(lambda node=node: lag(scrape(node), "asyncio") >= 1 and lag(scrape(node), "libp2p") >= 1,
                   timeout=30, what="loop lag samples")
        assert 0 < scrape(node)[("pouw_loop_lag_max_seconds", (("loop", "libp2p"),))] < 10
