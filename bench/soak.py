"""Soak: three peered pouwd nodes, one miner, a steady stream of transfers and jobs, for a bounded time.

    .venv/bin/python bench/soak.py [--seconds 300] [--tx-rate 50] [--job-every 5] [--burst 5000]
                                   [--network devnet] [--json]

Node 0 mines; transfers go to every node round-robin (one funded devnet key per
node, so each sender's nonces stay in order on its node); a small job goes to a
non-mining node every ``--job-every`` seconds (the miner fetches it, mines it,
and the result comes back). At the end it waits for the mempools to drain and
reports: transactions sent / confirmed on every node, jobs done and each job's
time from submission to done, RPC latency (p50/p99 of every call the driver
made), block propagation under the load (from the miner showing a new tip to
the last node showing it, polled every 50 ms), the requests between the nodes
that timed out and the score charges the nodes made against each other (all
honest: both should be 0; from ``/metrics``), the largest loop lag any node saw
(its event loop, and a round trip through its libp2p thread), and each node's
memory (RSS) at the start and the end. With ``--burst N``, N transfers go to
node 1 at once halfway through the load and the soak reports how fast they
reached the other two nodes (``Burst``). Everything runs on 127.0.0.1 and stops
by itself.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consensus.codec import encode_tx  # noqa: E402
from consensus.keys import devnet_keypairs  # noqa: E402
from consensus.networks import get_network  # noqa: E402
from consensus.tx import make_transfer  # noqa: E402


class Node:
    def __init__(self, root: Path, index: int, network: str, bootstrap: list[str], mine: bool) -> None:
        args = [sys.executable, "-m", "node.daemon", "--network", network, "--datadir", str(root / f"n{index}"),
                "--rpc-port", "0", "--p2p-port", "0", "--log-level", os.environ.get("SOAK_LOG_LEVEL", "warning")]
        for b in bootstrap:
            args += ["--bootstrap", b]
        if mine:
            args.append("--mine")
        self.log = open(root / f"n{index}.log", "wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        for line in self.proc.stdout:
            msg = json.loads(line)
            if msg.get("event") == "ready":
                self.url, self.p2p = msg["rpc"], msg["p2p"]
                break
        self.latencies: list[float] = []

    def rpc(self, method, *params):
        start = time.perf_counter()
        req = urllib.request.Request(self.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                                           "params": list(params)}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.load(r)
        self.latencies.append(time.perf_counter() - start)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']['message']}")
        return answer["result"]

    def rpc_batch(self, method: str, params: list[list]) -> list:
        """One JSON-RPC batch of ``method`` calls; the results in order (raises on the first error)."""
        body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": method, "params": p}
                           for i, p in enumerate(params)]).encode()
        req = urllib.request.Request(self.url, body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            answers = sorted(json.load(r), key=lambda a: a["id"])
        for a in answers:
            if "error" in a:
                raise RuntimeError(f"{method}: {a['error']['message']}")
        return [a["result"] for a in answers]

    def put_blob(self, data: bytes) -> str:
        req = urllib.request.Request(self.url + "blobs", data=data, method="PUT")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)["hash"]

    def counters(self, name: str) -> dict[str, float]:
        """Samples of one Prometheus metric (a counter's ``_total``, a gauge) from ``/metrics``, by label text."""
        with urllib.request.urlopen(self.url + "metrics", timeout=30) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(name + "{"):
                labels, _, value = line[len(name):].rpartition(" ")
                out[labels] = float(value)
        return out

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


class TipWatcher(threading.Thread):
    """Asks every node for its best block every ``interval`` seconds; notes when each first showed each tip."""

    def __init__(self, nodes: list[Node], interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes
        self.interval = interval
        self.seen: dict[str, dict[int, float]] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getbestblockhash", "params": []}).encode()
        while not self.halt.is_set():
            for i, n in enumerate(self.nodes):
                req = urllib.request.Request(n.url, body, headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        tip = json.load(r)["result"]
                except (OSError, ValueError, KeyError):
                    continue
                self.seen.setdefault(tip, {}).setdefault(i, time.monotonic())
            self.halt.wait(self.interval)

    def propagation(self) -> list[float]:
        """Seconds from the miner (node 0) showing a tip to the last node showing it, per tip all showed."""
        everywhere = (s for s in self.seen.values() if len(s) == len(self.nodes))
        return sorted(max(s.values()) - s[0] for s in everywhere)


def npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


class Burst(threading.Thread):
    """``count`` transfers sent at once to node 1 (in JSON-RPC batches) while the load runs.

    The transfers are signed before the clock starts, from senders the load
    does not use (devnet keys 4..8, at most 1000 each: the mempool's limit per
    sender). ``gossip_seconds`` is the time from the first send until nodes 0
    and 2 both count every one of them (their pending nonce of each sender),
    so ``count / gossip_seconds`` is the rate at which transfers crossed the
    network under load, admission at node 1 included.
    """

    def __init__(self, nodes: list[Node], params, count: int, delay: float, batch: int = 500) -> None:
        super().__init__(daemon=True)
        self.nodes, self.params, self.delay, self.batch = nodes, params, delay, batch
        keys = devnet_keypairs(9)[4:9]
        per = -(-count // len(keys))
        if per > 1000:
            raise SystemExit("--burst is at most 5000 (five senders, 1000 pending each)")
        self.targets: dict[str, int] = {}
        self.raw: list[str] = []
        for key in keys:
            start = nodes[1].rpc("getaccount", _addr(key, params))["next_nonce"]
            n = min(per, count - len(self.raw))
            self.raw += [encode_tx(make_transfer(key, params.chain_id, start + i, b"\x44" * 20, 1, 1000)).hex()
                         for i in range(n)]
            self.targets[_addr(key, params)] = start + n
        self.result: dict = {}

    def run(self) -> None:
        time.sleep(self.delay)
        start = time.monotonic()
        for i in range(0, len(self.raw), self.batch):
            self.nodes[1].rpc_batch("sendrawtransaction", [[r] for r in self.raw[i:i + self.batch]])
        admitted = time.monotonic() - start
        deadline = start + 120
        while time.monotonic() < deadline:
            if all(n.rpc("getaccount", a)["next_nonce"] >= t for n in (self.nodes[0], self.nodes[2])
                   for a, t in self.targets.items()):
                break
            time.sleep(0.02)
        else:
            self.result = {"burst_txs": len(self.raw), "burst_gossip_seconds": None}
            return
        took = time.monotonic() - start
        self.result = {"burst_txs": len(self.raw), "burst_admit_seconds": round(admitted, 2),
                       "burst_gossip_seconds": round(took, 2), "burst_tx_per_s": round(len(self.raw) / took)}


def run_soak(seconds: float, tx_rate: float, job_every: float, network: str = "devnet", *,
             watch_tips: bool = True, burst: int = 0) -> dict:
    """The soak; ``watch_tips=False`` leaves out the propagation poller (its 60 requests/s); ``burst``
    transfers go to node 1 at once halfway through the load (``Burst``)."""
    params = get_network(network)
    keys = devnet_keypairs(4)[1:4]  # one sender per node; key 0 is the miner's, key 9 the faucet's
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(os.environ.get("SOAK_DIR") or tmp)
        root.mkdir(parents=True, exist_ok=True)
        nodes: list[Node] = []
        try:
            for i in range(3):
                nodes.append(Node(root, i, network, [n.p2p[0] for n in nodes], mine=(i == 0)))
            _wait_peered(nodes)
            rss_start = [n.rss_mb() for n in nodes]
            nonces = [nodes[i].rpc("getaccount", _addr(keys[i], params))["next_nonce"] for i in range(3)]
            watcher = TipWatcher(nodes)
            if watch_tips:
                watcher.start()
            bursting = Burst(nodes, params, burst, seconds / 2) if burst else None
            if bursting is not None:
                bursting.start()
            sent, jobs, elapsed = _load(nodes, keys, params, nonces, seconds, tx_rate, job_every)
            load_end = time.time()
            if watch_tips:
                watcher.halt.set()
                watcher.join(30)
            spread = watcher.propagation()
            if bursting is not None:
                bursting.join(150)
            _drain(nodes, jobs)
            lost_txs = _lost_txs(nodes, keys, params, nonces, sent)
            lost_jobs = _lost_jobs(nodes[1], jobs)
            tips = _tips_when_agreed(nodes)
            lat = sorted(x for n in nodes for x in n.latencies)
            records = [nodes[1].rpc("getmatmuljob", j) for j, _ in jobs]
            finished = [r["finished"] for r in records if r["status"] == "done" and r["finished"]]
            job_seconds = sorted(r["finished"] - r["created"] for r in records
                                 if r["status"] == "done" and r["finished"])
            timeouts = sum(sum(n.counters("pouw_peer_request_timeouts_total").values()) for n in nodes)
            charges: dict[str, float] = {}
            for n in nodes:
                for labels, v in n.counters("pouw_peer_score_charges_total").items():
                    charges[labels] = charges.get(labels, 0) + v
            lag = {loop: round(1000 * max(n.counters("pouw_loop_lag_max_seconds").get(f'{{loop="{loop}"}}', 0)
                                          for n in nodes), 1) for loop in ("asyncio", "libp2p")}
            return {
                **(bursting.result if bursting is not None else {}),
                "loop_lag_max_ms": lag,
                "blocks_timed": len(spread),
                "block_propagation_p50_ms": round(1000 * spread[len(spread) // 2]) if spread else None,
                "block_propagation_p99_ms": round(1000 * spread[int(len(spread) * 0.99)]) if spread else None,
                "request_timeouts": int(timeouts), "request_timeouts_per_minute": round(timeouts / elapsed * 60, 2),
                "score_charges": {k: int(v) for k, v in charges.items() if v},
                "job_seconds_p50": round(job_seconds[len(job_seconds) // 2], 1) if job_seconds else None,
                "job_seconds_max": round(job_seconds[-1], 1) if job_seconds else None,
                "jobs_done_30s_after_load": sum(1 for t in finished if t <= load_end + 30),
                "kind": "soak", "seconds": round(elapsed, 1), "tx_rate_target": tx_rate,
                "txs_sent": len(sent), "tx_rate": round(len(sent) / elapsed, 1), "txs_lost": len(lost_txs),
                "jobs_sent": len(jobs), "jobs_lost": len(lost_jobs),
                "height": nodes[0].rpc("getblockcount"), "nodes_agree": len(tips) == 1,
                "rpc_p50_ms": round(1000 * lat[len(lat) // 2], 2),
                "rpc_p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 2),
                "rss_start_mb": [round(x, 1) for x in rss_start], "rss_end_mb": [round(n.rss_mb(), 1) for n in nodes],
                "verifychain_ok": all(n.rpc("verifychain")["ok"] for n in nodes),
            }
        finally:
            for n in nodes:
                n.stop()


def _wait_peered(nodes: list[Node]) -> None:
    deadline = time.monotonic() + 60
    while any(len(n.rpc("getpeerinfo")) < 2 for n in nodes):
        if time.monotonic() > deadline:
            raise SystemExit("nodes did not peer")
        time.sleep(0.2)


def _load(nodes: list[Node], keys: list, params, nonces: list[int], seconds: float, tx_rate: float,
          job_every: float) -> tuple[list[str], list[tuple[str, np.ndarray]], float]:
    """Transfers at ``tx_rate`` round-robin over the nodes and a job every ``job_every`` s, for ``seconds``."""
    sent: list[str] = []
    jobs: list[tuple[str, np.ndarray]] = []
    rng = np.random.default_rng(1)
    start = time.monotonic()
    next_job = start
    count = 0
    while time.monotonic() - start < seconds:
        i = count % 3
        tx = make_transfer(keys[i], params.chain_id, nonces[i], b"\x33" * 20, 1, 1000)
        nonces[i] += 1
        sent.append(nodes[i].rpc("sendrawtransaction", encode_tx(tx).hex()))
        count += 1
        if time.monotonic() >= next_job:
            a = rng.integers(-64, 64, (32, 256), dtype=np.int8)
            b = rng.integers(-64, 64, (256, 32), dtype=np.int8)
            job = nodes[1].rpc("submitmatmuljob", nodes[1].put_blob(npy(a)), nodes[1].put_blob(npy(b)))
            jobs.append((job["job_id"], a.astype(np.int64) @ b.astype(np.int64)))
            next_job += job_every
        pause = start + count / tx_rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    return sent, jobs, time.monotonic() - start


def _drain(nodes: list[Node], jobs: list[tuple[str, np.ndarray]], timeout: float = 120) -> None:
    """Wait (bounded) until the mempools are empty and every job is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = sum(n.rpc("getmempoolinfo")["size"] for n in nodes)
        jobs_left = [j for j, _ in jobs if nodes[1].rpc("getmatmuljob", j)["status"] != "done"]
        if pending == 0 and not jobs_left:
            return
        time.sleep(0.5)


def _lost_txs(nodes: list[Node], keys: list, params, nonces: list[int], sent: list[str]) -> list:
    # Every sender's nonce on every node must account for every transfer it sent (a transfer
    # cannot confirm without all earlier ones), and a sample is looked up by id as well.
    lost: list = [(i, j) for i in range(3) for j, n in enumerate(nodes)
                  if n.rpc("getaccount", _addr(keys[i], params))["nonce"] != nonces[i]]
    for t in sent[:: max(1, len(sent) // 100)]:
        for n in nodes:
            try:
                if n.rpc("gettransaction", t)["confirmations"] < 1:
                    lost.append(t)
            except RuntimeError:  # unknown to that node
                lost.append(t)
    return lost


def _lost_jobs(node: Node, jobs: list[tuple[str, np.ndarray]]) -> list[str]:
    """Jobs without a result, or whose product is not ``A @ B``."""
    lost = []
    for job_id, want in jobs:
        res = node.rpc("getmatmulresult", job_id) if _done(node, job_id) else None
        if res is None:
            lost.append(job_id)
            continue
        with urllib.request.urlopen(node.url + res["download"].lstrip("/"), timeout=30) as r:
            c = np.load(io.BytesIO(r.read()))
        if not np.array_equal(c, want):
            lost.append(job_id)
    return lost


def _tips_when_agreed(nodes: list[Node], timeout: float = 30) -> set[str]:
    """The nodes' tips, at a moment they agree if one comes within ``timeout`` (the miner keeps going)."""
    deadline = time.monotonic() + timeout
    tips = {n.rpc("getbestblockhash") for n in nodes}
    while len(tips) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
        tips = {n.rpc("getbestblockhash") for n in nodes}
    return tips


def _done(node: Node, job_id: str) -> bool:
    return node.rpc("getmatmuljob", job_id)["status"] == "done"


def _addr(key, params) -> str:
    from consensus.address import encode_address

    return encode_address(key.address, params.hrp)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--tx-rate", type=float, default=50)
    ap.add_argument("--job-every", type=float, default=5)
    ap.add_argument("--network", default="devnet", choices=("devnet", "regtest"))
    ap.add_argument("--burst", type=int, default=0, help="transfers sent to node 1 at once halfway through "
                    "(at most 5000); reports how fast they reach the other two nodes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = run_soak(args.seconds, args.tx_rate, args.job_every, args.network, burst=args.burst)
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0 if out["txs_lost"] == 0 and out["jobs_lost"] == 0 and out["nodes_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
