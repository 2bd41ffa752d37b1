"""``pouw-miner`` and ``UsefulMiner`` against a real ``pouwd`` (regtest, no ``--mine``) over RPC on 127.0.0.1.

Two CPU miners mine for one node: both find blocks, the chain verifies, and
after every tip move each miner's workers are on the new tip within one
long-poll round (from the miners' event logs: the template they switch to at
their next matmul). A queued job is mined by one of them and its product is
exact. ``UsefulMiner.matmul`` returns exact products, and at regtest's easy
target its winning tiles become blocks on the node's chain.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from kernels.select import get_backend
from miner.useful import UsefulMiner
from tests.functional.harness import ROOT, NodeProcess, RpcFailure, wait_until
from wallet.rpc import read_cookie

ROUND = 2.0
"""One long-poll round, generously for 2 loaded cores: the node's poll (50 ms, or at once after submitblock), the
template's way back, and the matmul in flight (a few ms at regtest's shape)."""


class MinerProcess:
    def __init__(self, node: NodeProcess, name: str, tmp: Path, *extra: str) -> None:
        self.events_path = tmp / f"{name}.events"
        self.stderr = open(tmp / f"{name}.stderr", "wb")  # closed in stop
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "miner", "--rpc-url", node.url, "--datadir", str(node.datadir),
             "--devices", "cpu", "--worker", name, "--events", str(self.events_path), "--report-interval", "1",
             "--metrics-port", "0", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.stderr, env=env, text=True)
        line = self.proc.stdout.readline()
        assert line, f"pouw-miner {name} did not start; see {self.stderr.name}"
        self.ready = json.loads(line)

    def events(self, kind: str | None = None) -> list[dict]:
        if not self.events_path.exists():
            return []
        out = [json.loads(x) for x in self.events_path.read_text().splitlines() if x.strip()]
        return [e for e in out if kind is None or e["event"] == kind]

    def accepted_blocks(self) -> list[dict]:
        return [e for e in self.events("block") if e["accepted"]]

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.stderr.close()
        assert self.proc.returncode == 0, out
        return json.loads(out.strip().splitlines()[-1])


def npy_b64(x: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode()


def late_switches(miner: MinerProcess, blocks: list[dict]) -> list[tuple[float, str]]:
    """For every block (height h, accepted at t): each worker of ``miner`` must be on a height above h by
    t + ROUND. Returns the violations ``(t, device)``."""
    switches = sorted(miner.events("switch"), key=lambda e: e["t"])
    devices = {e["device"] for e in switches}
    late = []
    for b in blocks:
        for d in devices:
            on = [e for e in switches if e["device"] == d and e["t"] <= b["t"] + ROUND]
            if on and on[-1]["height"] <= b["height"]:
                late.append((b["t"], d))
    return late


@pytest.mark.timeout(120)
def test_two_miners_mine_for_one_node_and_take_its_job(node_factory, tmp_path):
    node = node_factory("node").start()
    miners = [MinerProcess(node, name, tmp_path) for name in ("rig-a", "rig-b")]
    try:
        wait_until(lambda: all(len(m.accepted_blocks()) >= 3 for m in miners), 30.0, interval=0.2,
                   what="both miners to find blocks")
        rng = np.random.default_rng(5)
        a = rng.integers(-64, 64, (40, 300), dtype=np.int8)
        b = rng.integers(-64, 64, (300, 24), dtype=np.int8)
        job_id = node.rpc("submitmatmuljob", npy_b64(a), npy_b64(b))["job_id"]
        wait_until(lambda: node.rpc("getmatmuljob", job_id)["status"] == "done", 30.0, interval=0.1,
                   what="the job done by a miner")
        result = node.rpc("getmatmulresult", job_id, True)
        c = np.load(io.BytesIO(base64.b64decode(result["c_npy_base64"])))
        assert np.array_equal(c.astype(np.int64), a.astype(np.int64) @ b.astype(np.int64))
        assert result["computed_by"] in ("pouw-miner rig-a", "pouw-miner rig-b")
        assert result["freivalds"]["passed"]
        port = miners[0].ready["metrics_port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert "pouw_miner_macs_total" in metrics and "pouw_miner_blocks_found_total" in metrics
        first = min(b["t"] for m in miners for b in m.accepted_blocks())
        wait_until(lambda: time.time() > first + 2 * ROUND, 3 * ROUND + 10, interval=0.1,
                   what="blocks followed for more than a long-poll round")  # so some tip moves can be judged
        end = time.time()
    finally:
        stats = [m.stop() for m in miners]
    jobs_done = [s["jobs_done"] for s in stats]
    assert sorted(jobs_done) == [0, 1]  # one miner took it (the lease), and only once
    check = node.rpc("verifychain")
    assert check["ok"], check["problems"]
    blocks = [b for m in miners for b in m.accepted_blocks()]
    assert len(blocks) >= 6 and check["height"] >= max(b["height"] for b in blocks)  # (some on side branches)
    on_chain = {node.rpc("getblockhash", h) for h in range(1, check["height"] + 1)}
    assert sum(b["id"] in on_chain for b in blocks) >= len(blocks) // 2  # a few may be beaten on a side branch
    judged = [b for b in blocks if b["t"] + ROUND < end]  # the miners still ran a round after these
    assert judged
    for m in miners:
        assert late_switches(m, judged) == [], f"{m.ready['worker']} mined a stale template past one round"
        assert m.events("switch") and max(e["delay"] for e in m.events("switch")) < ROUND
    tip_moves = len({b["height"] for b in blocks})
    for s in stats:
        assert s["stale_matmuls"] <= tip_moves + 2  # at most the matmul in flight per tip move


@pytest.mark.timeout(120)
def test_useful_miner_returns_exact_products_and_its_wins_become_blocks(node_factory):
    node = node_factory("node").start()
    miner = UsefulMiner(node.url, get_backend("numpy"), auth=read_cookie(node.datadir / ".cookie"))
    rng = np.random.default_rng(8)
    a = rng.integers(-64, 64, (200, 500), dtype=np.int8)
    b = rng.integers(-64, 64, (500, 160), dtype=np.int8)
    c = miner.matmul(a, b)
    assert c.dtype == np.int64 and np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    assert miner.last.matmuls == 1 and miner.last.tickets == 13 * 10 and miner.last.macs == 208 * 512 * 160
    wide_a = rng.integers(-30000, 30000, (48, 300), dtype=np.int16)
    wide_b = rng.integers(-30000, 30000, (300, 40), dtype=np.int16)
    assert np.array_equal(miner.matmul(wide_a, wide_b), wide_a.astype(np.int64) @ wide_b.astype(np.int64))
    assert miner.last.matmuls == 9  # three digits each
    deadline = time.monotonic() + 20
    while len(miner.totals.blocks) < 3 and time.monotonic() < deadline:
        x = rng.integers(-64, 64, (256, 512), dtype=np.int8)
        y = rng.integers(-64, 64, (512, 256), dtype=np.int8)
        assert np.array_equal(miner.matmul(x, y), x.astype(np.int64) @ y.astype(np.int64))
    assert len(miner.totals.blocks) >= 3, miner.totals
    height = node.rpc("getblockcount")
    on_chain = {node.rpc("getblockhash", h) for h in range(1, height + 1)}
    assert set(miner.totals.blocks) <= on_chain
    assert node.rpc("verifychain")["ok"]


@pytest.mark.timeout(120)
def test_getblocktemplate_long_polls_and_leases_job_work_over_rpc(node_factory):
    node = node_factory("node").start()
    first = node.rpc("getblocktemplate")
    assert first["job"] is None and first["longpollid"].startswith(first["previousblockhash"])
    started = time.monotonic()
    same = node.rpc("getblocktemplate", longpollid=first["longpollid"], longpoll_timeout=0.5)
    assert 0.45 <= time.monotonic() - started < 10 and same["longpollid"] == first["longpollid"]
    with pytest.raises(RpcFailure) as e:
        node.rpc("getblocktemplate", longpollid="not-an-id")
    assert e.value.code == -32602
    with pytest.raises(RpcFailure) as e:
        node.rpc("getblocktemplate", longpollid=first["longpollid"], longpoll_timeout=61)
    assert e.value.code == -32602

    with ThreadPoolExecutor(1) as pool:  # a long-poll wakes when the node's own miner moves the tip
        waiting = pool.submit(node.rpc, "getblocktemplate", longpollid=first["longpollid"], longpoll_timeout=30)
        address = node.rpc("getmininginfo")["address"]
        mined = node.rpc("generatetoaddress", 1, address)[0]
        started = time.monotonic()
        moved = waiting.result(timeout=15)
        assert moved["previousblockhash"] == mined and time.monotonic() - started < ROUND

    rng = np.random.default_rng(11)
    a = rng.integers(-64, 64, (20, 300), dtype=np.int8)
    b = rng.integers(-64, 64, (300, 30), dtype=np.int8)
    job_id = node.rpc("submitmatmuljob", npy_b64(a), npy_b64(b))["job_id"]
    leased = node.rpc("getblocktemplate", worker="w1")
    assert leased["job"]["job_id"] == job_id and leased["job"]["worker"] == "w1"
    assert leased["shape"] == {"m": 32, "n": 32, "k": 384}  # the job's padded shape
    assert node.rpc("getblocktemplate", worker="w1")["job"]["job_id"] == job_id  # the holder keeps it
    assert node.rpc("getblocktemplate", worker="w2")["job"] is None  # nobody else gets it
    assert node.rpc("getmatmuljob", job_id)["status"] == "mining"
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    wrong = c.copy()
    wrong[0, 0] ^= 1
    with pytest.raises(RpcFailure) as e:
        node.rpc("submitmatmulresult", job_id, npy_b64(wrong), "w1")
    assert e.value.code == -47 and "Freivalds" in e.value.message
    assert node.rpc("getmatmuljob", job_id)["status"] == "mining"
    # A product too large to travel inline goes through PUT /blobs?product_of=JOB: the header decides.
    def put(x: np.ndarray, job: str = job_id) -> tuple[int, dict]:
        status, body = node.http("PUT", f"/blobs?product_of={job}", base64.b64decode(npy_b64(x)))
        return status, json.loads(body)

    assert put(c.astype(np.int8))[0] == 400  # not int32
    assert put(c[:, :-1])[0] == 400  # not m x n
    assert put(c, "ab" * 32) == (404, put(c, "ab" * 32)[1]) and put(c, "ab" * 32)[1]["error"]["code"] == -43
    status, stored = put(c)
    assert status == 200 and stored["shape"] == [20, 30] and stored["dtype"] == "int32"
    done = node.rpc("submitmatmulresult", job_id, stored["hash"], "w1")
    assert done["status"] == "done" and done["computed_by"] == "pouw-miner w1"
    assert put(c)[0] == 404  # done: it waits for no product any more
    result = node.rpc("getmatmulresult", job_id, True)
    assert np.array_equal(np.load(io.BytesIO(base64.b64decode(result["c_npy_base64"]))), c)
    with pytest.raises(RpcFailure) as e:
        node.rpc("submitmatmulresult", job_id, npy_b64(c), "w1")
    assert e.value.code == -8
    with pytest.raises(RpcFailure) as e:
        node.rpc("submitmatmulresult", "ab" * 32, npy_b64(c))
    assert e.value.code == -43
