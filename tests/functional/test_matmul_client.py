"""``wallet.matmul.Client`` against two real mining pouwd processes peered on 127.0.0.1.

The product is cut into many sub-jobs (digits and tiles); they are all
submitted to node 0, whose peer (node 1) fetches and mines some of them while
node 0 mines the others. Every sub-product is checked by the client.
"""

import numpy as np

from tests.functional.harness import wait_until
from tests.support.matmul_nodes import Corrupting
from wallet.matmul import Client, RpcNode
from wallet.rpc import read_cookie

TILE = (112, 1280, 80)
"""Small tiles, so the issue's 300x5000 @ 5000x200 becomes 144 sub-jobs (ragged in m, k and n) in about 10 s."""


def two_miners(node_factory):
    n0 = node_factory("n0", "--mine", p2p=True).start()
    n1 = node_factory("n1", "--mine", "--bootstrap", n0.p2p[0], p2p=True).start()
    wait_until(lambda: len(n0.rpc("getpeerinfo")) >= 1 and len(n1.rpc("getpeerinfo")) >= 1, timeout=60,
               what="the two nodes to peer")
    return n0, n1


def test_full_range_int8_product_is_exact_and_shared_by_both_miners(node_factory):
    n0, _ = two_miners(node_factory)
    rng = np.random.default_rng(17)
    a = rng.integers(-128, 128, (300, 5000), dtype=np.int8)
    b = rng.integers(-128, 128, (5000, 200), dtype=np.int8)
    a[0], b[:, 0] = -128, -128  # the extreme corner
    client = Client(n0.url, cookie=n0.datadir / ".cookie", tile=TILE, timeout=120, progress=False)
    c = client.matmul(a, b)
    assert c.dtype == np.int64 and np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    s = client.last_stats
    # 3 row blocks x 4 k slices x 3 column blocks x 4 digit pairs (full range: both digits of both sides).
    assert s["sub_jobs"] == 144 and s["retries"] == 0
    assert sum(s["computed_by"].values()) == 144
    assert s["computed_by"].get("this node", 0) > 0 and s["computed_by"].get("peer", 0) > 0, s["computed_by"]
    assert s["bytes_up"] > a.nbytes and s["bytes_down"] > 0


def test_a_corrupted_sub_product_is_caught_and_retried(node_factory):
    n0, _ = two_miners(node_factory)
    rng = np.random.default_rng(18)
    a = rng.integers(-128, 128, (40, 300), dtype=np.int8)
    b = rng.integers(-128, 128, (300, 30), dtype=np.int8)
    node = Corrupting(RpcNode(n0.url, read_cookie(n0.datadir / ".cookie"), timeout=60), times=1)
    client = Client(n0.url, node=node, tile=TILE, timeout=120, progress=False)
    c = client.matmul(a, b)
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    assert len(node.corrupted) == 1 and client.last_stats["retries"] == 1
