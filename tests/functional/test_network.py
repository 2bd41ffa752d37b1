"""pouwd processes peered over libp2p on 127.0.0.1: blocks, transactions and jobs travel between them."""

import json

import numpy as np

from consensus.codec import encode_tx
from consensus.keys import devnet_keypairs
from consensus.networks import REGTEST
from consensus.tx import make_transfer
from tests.functional.harness import wait_until
from tests.functional.test_jobs import download_product, npy

ADDR = "preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkm"


def start_three(node_factory, mining=(0,)):
    nodes = []
    for i in range(3):
        extra = [a for n in nodes for a in ("--bootstrap", n.p2p[0])]
        if i in mining:
            extra.append("--mine")
        nodes.append(node_factory(f"n{i}", *extra, p2p=True).start())
    wait_until(lambda: all(len(n.rpc("getpeerinfo")) >= 2 for n in nodes), timeout=60, what="a full mesh")
    return nodes


def test_three_nodes_agree_while_one_mines(node_factory):
    nodes = start_three(node_factory)
    wait_until(lambda: nodes[0].rpc("getblockcount") >= 30, timeout=60, what="30 blocks")

    def agree():
        tips = {n.rpc("getbestblockhash") for n in nodes}
        return len(tips) == 1 and nodes[1].rpc("getblockcount") >= 30

    # The miner keeps going; wait for a moment when every node has the same tip.
    wait_until(agree, timeout=60, interval=0.02, what="the three nodes to agree on one tip")
    for n in nodes:
        assert n.rpc("verifychain")["ok"]
    info = nodes[1].rpc("getnetworkinfo")
    assert info["peer_id"] and info["connections"] == 2


def test_transaction_and_job_cross_the_network(node_factory):
    nodes = start_three(node_factory, mining=(2,))
    key = devnet_keypairs(1)[0]
    tx = make_transfer(key, REGTEST.chain_id, nodes[0].rpc("getaccount", ADDR)["next_nonce"], b"\x22" * 20, 777, 1000)
    txid = nodes[0].rpc("sendrawtransaction", encode_tx(tx).hex())
    # Relayed to the miner, mined, and the block comes back to the sender's node.
    wait_until(lambda: nodes[0].rpc("gettransaction", txid)["confirmations"] >= 1, timeout=60,
               what="the transfer to be mined by another node")

    rng = np.random.default_rng(3)
    a = rng.integers(-64, 64, (48, 256), dtype=np.int8)
    b = rng.integers(-64, 64, (256, 32), dtype=np.int8)
    job_id = submit_job(nodes[0], a, b)
    # Node 0 does not mine: node 2 fetches the matrices from it, mines the job and announces the result;
    # node 0 fetches the product, checks it itself, and answers its client.
    wait_until(lambda: _status(nodes[2], job_id) == "done", timeout=60, what="the miner to take the job")
    want = a.astype(np.int64) @ b.astype(np.int64)
    assert np.array_equal(download_product(nodes[2], job_id), want)
    wait_until(lambda: _status(nodes[0], job_id) == "done", timeout=60, what="the result to reach node 0")
    assert np.array_equal(download_product(nodes[0], job_id), want)
    assert nodes[0].rpc("getmatmulresult", job_id)["freivalds"]["passed"] is True


def submit_job(node, a, b) -> str:
    """Upload both matrices to ``node`` and submit the job; its id."""
    hashes = [json.loads(node.http("PUT", "/blobs", npy(x))[1])["hash"] for x in (a, b)]
    return node.rpc("submitmatmuljob", *hashes)["job_id"]


def _status(node, job_id):
    jobs = {j["job_id"]: j["status"] for j in node.rpc("listmatmuljobs")}
    return jobs.get(job_id)


def test_a_job_announced_to_nobody_is_announced_again_when_a_miner_joins(node_factory):
    """The first announcement reaches no peer (there is none); the re-announcement gets the job done."""
    submitter = node_factory("lonely", p2p=True).start()
    rng = np.random.default_rng(4)
    a = rng.integers(-64, 64, (32, 256), dtype=np.int8)
    b = rng.integers(-64, 64, (256, 16), dtype=np.int8)
    job_id = submit_job(submitter, a, b)
    assert submitter.rpc("getnetworkinfo")["connections"] == 0
    miner = node_factory("late-miner", "--bootstrap", submitter.p2p[0], "--mine", p2p=True).start()
    wait_until(lambda: _status(submitter, job_id) == "done", timeout=90, what="the job to be announced again and done")
    assert _status(miner, job_id) == "done"
    assert np.array_equal(download_product(submitter, job_id), a.astype(np.int64) @ b.astype(np.int64))


def test_a_node_holding_a_product_answers_a_later_announcement_with_the_result(node_factory):
    """A job already done elsewhere: the holder of the product announces the result again, no second mining."""
    nodes = start_three(node_factory, mining=(2,))
    rng = np.random.default_rng(5)
    a = rng.integers(-64, 64, (16, 256), dtype=np.int8)
    b = rng.integers(-64, 64, (256, 16), dtype=np.int8)
    job_id = submit_job(nodes[0], a, b)
    wait_until(lambda: _status(nodes[0], job_id) == "done", timeout=60, what="the job to be done")
    mined_before = nodes[2].rpc("getmatmuljob", job_id)["started"]
    # Node 1 heard the result announcement but held no such job then; now its client submits the same matrices.
    assert _status(nodes[1], job_id) is None
    assert submit_job(nodes[1], a, b) == job_id
    wait_until(lambda: _status(nodes[1], job_id) == "done", timeout=60, what="the result to be announced again")
    assert nodes[1].rpc("getmatmulresult", job_id)["computed_by"] == "peer"
    assert nodes[2].rpc("getmatmuljob", job_id)["started"] == mined_before
    assert np.array_equal(download_product(nodes[1], job_id), a.astype(np.int64) @ b.astype(np.int64))
