"""External mining (``pouw-miner``, ``UsefulMiner``) against real ``pouwd`` processes on 127.0.0.1.

Three figures:

1. Long-poll: two CPU ``pouw-miner`` processes mine for one regtest node
   (no ``--mine``) for ``--seconds``; from their event logs, templates received
   per tip change, and the delay from a block's acceptance to every worker of
   every miner mining on a later height (p50, p99).
2. Throughput: multiply-adds per second of ``pouwd --mine`` alone, then of one
   CPU ``pouw-miner`` against a node without ``--mine``, on devnet (blocks are
   rare there, so mining dominates), same shape, same machine.
3. ``UsefulMiner.matmul`` against a plain int64 matmul of the same shape
   (NumPy; and float32 BLAS, exact here), median of ``--repeat``.

    .venv/bin/python bench/miner.py [--seconds 15] [--size 512] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kernels.select import get_backend  # noqa: E402 - after the path is set, for running from anywhere
from miner.useful import UsefulMiner  # noqa: E402
from tests.functional.harness import NodeProcess  # noqa: E402
from wallet.rpc import RpcClient, read_cookie  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def start_miner(node: NodeProcess, name: str, events: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "miner", "--rpc-url", node.url, "--datadir", str(node.datadir),
                             "--devices", "cpu", "--worker", name, "--events", str(events),
                             "--report-interval", "5", "--log-level", "warning", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # ready
    return proc


def stop_miner(proc: subprocess.Popen) -> dict:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def read_events(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def longpoll_figures(tmp: Path, seconds: float) -> dict:
    node = NodeProcess(tmp / "lp-node", network="regtest").start()
    try:
        paths = [tmp / f"lp-{i}.events" for i in range(2)]
        procs = [start_miner(node, f"lp-{i}", p) for i, p in enumerate(paths)]
        time.sleep(seconds)  # a measurement window, not a wait for a condition
        for p in procs:
            stop_miner(p)
    finally:
        node.stop()
    logs = [read_events(p) for p in paths]
    blocks = sorted((e for log in logs for e in log if e["event"] == "block" and e["accepted"]),
                    key=lambda e: e["t"])
    tip_changes = len({b["height"] for b in blocks})
    delays = []
    for log in logs:
        switches = sorted((e for e in log if e["event"] == "switch"), key=lambda e: e["t"])
        devices = {e["device"] for e in switches}
        for b in blocks:
            for d in devices:
                later = [e["t"] for e in switches if e["device"] == d and e["height"] > b["height"]]
                if later:
                    delays.append(max(0.0, min(later) - b["t"]))
    templates = [sum(e["event"] == "template" for e in log) for log in logs]
    return {"seconds": seconds, "blocks": len(blocks), "tip_changes": tip_changes,
            "templates_per_tip_change": [round(t / max(1, tip_changes), 2) for t in templates],
            "new_tip_to_miner_ms_p50": round(1000 * pct(delays, 0.5), 2),
            "new_tip_to_miner_ms_p99": round(1000 * pct(delays, 0.99), 2), "samples": len(delays)}


def throughput_figures(tmp: Path, seconds: float, shape: tuple[int, int, int]) -> dict:
    m, k, n = shape
    shape_arg = f"{m},{k},{n}"
    node = NodeProcess(tmp / "tp-mine", "--mine", "--miner-shape", shape_arg, "--miner-backend", "numpy",
                       network="devnet").start()
    try:
        rpc = RpcClient(node.url, auth=read_cookie(node.datadir / ".cookie"))
        first, t0 = rpc.call("getmininginfo")["macs"], time.monotonic()
        time.sleep(seconds)  # a measurement window
        last, t1 = rpc.call("getmininginfo")["macs"], time.monotonic()
    finally:
        node.stop()
    pouwd_rate = (last - first) / (t1 - t0)
    node = NodeProcess(tmp / "tp-ext", network="devnet").start()
    try:
        proc = start_miner(node, "tp", tmp / "tp.events", "--shape", f"{m},{k},{n}")
        t0 = time.monotonic()
        time.sleep(seconds)
        stats = stop_miner(proc)
        t1 = time.monotonic()
    finally:
        node.stop()
    miner_rate = sum(stats["macs"].values()) / (t1 - t0)
    return {"shape_mkn": list(shape), "pouwd_mine_gmacs": round(pouwd_rate / 1e9, 3),
            "pouw_miner_cpu_gmacs": round(miner_rate / 1e9, 3), "ratio": round(miner_rate / max(pouwd_rate, 1), 3)}


def useful_figures(tmp: Path, size: int, repeat: int) -> dict:
    node = NodeProcess(tmp / "um-node", network="devnet").start()
    try:
        miner = UsefulMiner(node.url, get_backend("numpy"), auth=read_cookie(node.datadir / ".cookie"))
        rng = np.random.default_rng(1)
        a = rng.integers(-64, 64, (size, size), dtype=np.int8)
        b = rng.integers(-64, 64, (size, size), dtype=np.int8)
        want = a.astype(np.int64) @ b.astype(np.int64)
        times, i64, f32 = [], [], []
        for _ in range(repeat):
            t = time.perf_counter()
            c = miner.matmul(a, b)
            times.append(time.perf_counter() - t)
            assert np.array_equal(c, want)
            t = time.perf_counter()
            a.astype(np.int64) @ b.astype(np.int64)
            i64.append(time.perf_counter() - t)
            t = time.perf_counter()
            a.astype(np.float32) @ b.astype(np.float32)
            f32.append(time.perf_counter() - t)
    finally:
        node.stop()
    med = statistics.median
    return {"size": size, "useful_ms": round(1000 * med(times), 2), "int64_matmul_ms": round(1000 * med(i64), 2),
            "float32_matmul_ms": round(1000 * med(f32), 2),
            "overhead_vs_int64": round(med(times) / med(i64), 3),
            "overhead_vs_float32": round(med(times) / med(f32), 3),
            "blocks_found": len(miner.totals.blocks)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=15.0, help="measurement window of parts 1 and 2")
    p.add_argument("--shape", default="128,256,128", help="M,K,N of part 2 (default: devnet's)")
    p.add_argument("--size", type=int, default=512, help="square size of part 3")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--parts", default="1,2,3", help="which parts to run")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    m, k, n = (int(x) for x in args.shape.split(","))
    parts = set(args.parts.split(","))
    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "1" in parts:
            out["longpoll"] = longpoll_figures(tmp, args.seconds)
        if "2" in parts:
            out["throughput"] = throughput_figures(tmp, args.seconds, (m, k, n))
        if "3" in parts:
            out["useful"] = useful_figures(tmp, args.size, args.repeat)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for part, figures in out.items():
            print(f"{part}:")
            for key, value in figures.items():
                print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
