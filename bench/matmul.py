"""``Client.matmul`` through a 3-node devnet: a full-range int8 product, exact, against local NumPy.

    .venv/bin/python bench/matmul.py [--size 2048] [--m M --k K --n N] [--tile 2048,4096,2048] [--timeout 900]
                                     [--json]

Three peered ``pouwd --network devnet --mine`` processes on 127.0.0.1 (all
three mine); the client talks to node 0, which takes some sub-jobs itself and
announces the others to its peers. Reported: wall time of ``matmul`` (digits,
tiling, uploads, the network's mining, downloads, the local Freivalds checks,
recombination), sub-jobs, bytes moved, against a local exact int64 matmul and
a float32 one (which is not exact at this size: the error is printed); and the
useful fraction of the miners' work: the multiply-adds of the job products
(as submitted, and padded) over all multiply-adds the three miners counted in
``pouw_miner_macs`` (``/metrics``) during the run: the rest is mining between
jobs (the nonces of random matrices) and jobs mined twice (a job two miners
took at once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wallet.matmul import DEFAULT_TILE, Client  # noqa: E402


class Node:
    def __init__(self, root: Path, index: int, bootstrap: list[str]) -> None:
        self.datadir = root / f"n{index}"
        args = [sys.executable, "-m", "node.daemon", "--network", "devnet", "--datadir", str(self.datadir),
                "--rpc-port", "0", "--p2p-port", "0", "--log-level", "warning", "--mine"]
        for b in bootstrap:
            args += ["--bootstrap", b]
        self.log = open(root / f"n{index}.log", "wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("event") == "ready":
                self.url, self.p2p = msg["rpc"], msg["p2p"]
                break
        else:
            raise SystemExit(f"node {index} did not start; see {self.log.name}")

    def rpc(self, method: str, *params):
        req = urllib.request.Request(self.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                                           "params": list(params)}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.load(r)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']['message']}")
        return answer["result"]

    def metric(self, name: str) -> float:
        """The sum of a metric's samples in ``/metrics``."""
        with urllib.request.urlopen(self.url + "metrics", timeout=30) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def macs_mined(nodes: list[Node]) -> float:
    return sum(n.metric("pouw_miner_macs_total") or n.metric("pouw_miner_macs") for n in nodes)


def run(m: int, k: int, n: int, tile: tuple[int, int, int], timeout: float, nodes_count: int = 3) -> dict:
    rng = np.random.default_rng(2048)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    t0 = time.perf_counter()
    want = a.astype(np.int64) @ b.astype(np.int64)
    t_int64 = time.perf_counter() - t0
    t0 = time.perf_counter()
    f32 = a.astype(np.float32) @ b.astype(np.float32)
    t_f32 = time.perf_counter() - t0
    f32_wrong = int(np.count_nonzero(f32.astype(np.int64) != want))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(os.environ.get("BENCH_DIR") or tmp)
        root.mkdir(parents=True, exist_ok=True)
        nodes: list[Node] = []
        try:
            for i in range(nodes_count):
                nodes.append(Node(root, i, [x.p2p[0] for x in nodes]))
            deadline = time.monotonic() + 60
            while any(len(x.rpc("getpeerinfo")) < nodes_count - 1 for x in nodes):
                if time.monotonic() > deadline:
                    raise SystemExit("the nodes did not peer within 60 s")
                time.sleep(0.2)
            before = macs_mined(nodes)
            client = Client(nodes[0].url, cookie=nodes[0].datadir / ".cookie", tile=tile, timeout=timeout,
                            progress=None)
            t0 = time.perf_counter()
            c = client.matmul(a, b)
            t_net = time.perf_counter() - t0
            after = macs_mined(nodes)
            jobs = nodes[0].rpc("listmatmuljobs", "done")
            job_macs = sum(j["shape"]["m"] * j["shape"]["k"] * j["shape"]["n"] for j in jobs)
            padded_macs = sum(j["padded_shape"]["m"] * j["padded_shape"]["k"] * j["padded_shape"]["n"] for j in jobs)
        finally:
            for x in nodes:
                x.stop()
    s = client.last_stats
    mined = after - before
    return {"shape": [m, k, n], "tile": list(tile), "nodes": nodes_count, "exact": bool(np.array_equal(c, want)),
            "seconds_network": round(t_net, 2), "seconds_local_int64": round(t_int64, 2),
            "seconds_local_float32": round(t_f32, 3), "float32_wrong_entries": f32_wrong,
            "sub_jobs": s["sub_jobs"], "reused": s["reused"], "retries": s["retries"],
            "bytes_up": s["bytes_up"], "bytes_down": s["bytes_down"], "computed_by": s["computed_by"],
            "job_macs": job_macs, "job_macs_padded": padded_macs, "macs_mined": int(mined),
            "useful_fraction": round(job_macs / mined, 4) if mined else None,
            "useful_fraction_padded": round(padded_macs / mined, 4) if mined else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048, help="m = k = n (default 2048)")
    ap.add_argument("--m", type=int)
    ap.add_argument("--k", type=int)
    ap.add_argument("--n", type=int)
    ap.add_argument("--tile", default=",".join(map(str, DEFAULT_TILE)),
                    help="sub-job tile m,k,n (default: the client's, %(default)s)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds for the product (default 900)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    m, k, n = args.m or args.size, args.k or args.size, args.n or args.size
    tile = tuple(int(v) for v in args.tile.split(","))
    if len(tile) != 3 or min(m, k, n, *tile) < 1:
        ap.error("--tile is m,k,n and every size is positive")
    r = run(m, k, n, (tile[0], tile[1], tile[2]), args.timeout)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0 if r["exact"] else 1
    mb = 1e6
    print(f"Client.matmul {m}x{k} @ {k}x{n}, full-range int8, 3-node devnet (all mining), tile {args.tile}")
    print(f"  network:       {r['seconds_network']:8.2f} s   exact: {r['exact']}")
    print(f"  local int64:   {r['seconds_local_int64']:8.2f} s   (NumPy, exact)")
    print(f"  local float32: {r['seconds_local_float32']:8.3f} s   ({r['float32_wrong_entries']} of {m * n} entries "
          "differ from the exact product: float32 holds integers exactly only up to 2^24)")
    print(f"  sub-jobs {r['sub_jobs']} (reused {r['reused']}, retries {r['retries']}), computed by {r['computed_by']}")
    print(f"  bytes up {r['bytes_up'] / mb:.1f} MB, down {r['bytes_down'] / mb:.1f} MB")
    print(f"  useful fraction of the miners' multiply-adds: {r['useful_fraction']} "
          f"(padded job shapes: {r['useful_fraction_padded']}; job {r['job_macs']:.3e} of {r['macs_mined']:.3e})")
    return 0 if r["exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
