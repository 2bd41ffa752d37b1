"""End-to-end MatMul job through a real pouwd: upload A and B, submit, mine, download C.

Starts ``pouwd --network regtest --mine`` on 127.0.0.1 (or uses ``--url``),
then for a square shape (default 1024): PUT /blobs both matrices, submitmatmuljob,
wait for the ``job`` notification over WebSocket, GET /blobs/<c>, check C == A @ B.
Compares with the plain products a user could compute instead: ``numpy.matmul``
in float32 (BLAS; exact here since |C| < 2^24) and in int64 (exact for any size).

    .venv/bin/python bench/job.py [--size 1024] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


async def one_job(url: str, a: np.ndarray, b: np.ndarray) -> dict:
    t = {}
    async with aiohttp.ClientSession() as s, s.ws_connect(url + "/ws") as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": ["job"]})
        await ws.receive_json()
        start = time.perf_counter()
        hashes = []
        for x in (a, b):
            async with s.put(url + "/blobs", data=npy(x)) as r:
                hashes.append((await r.json())["hash"])
        t["upload_s"] = time.perf_counter() - start
        async with s.post(url + "/", json={"jsonrpc": "2.0", "id": 2, "method": "submitmatmuljob",
                                            "params": hashes}) as r:
            job = (await r.json())["result"]
        t["submitted_s"] = time.perf_counter() - start
        status = job["status"]
        while status not in ("done", "failed"):
            note = await ws.receive_json(timeout=300)
            result = note["params"]["result"]
            if result["job_id"] == job["job_id"]:
                status = result["status"]
        t["done_s"] = time.perf_counter() - start
        async with s.post(url + "/", json={"jsonrpc": "2.0", "id": 3, "method": "getmatmulresult",
                                            "params": [job["job_id"]]}) as r:
            res = (await r.json())["result"]
        async with s.get(url + res["download"]) as r:
            c = np.load(io.BytesIO(await r.read()), allow_pickle=False)
        t["total_s"] = time.perf_counter() - start
    if not np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64)):
        raise SystemExit("the downloaded product is wrong")
    return t


def start_node(datadir: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "node.daemon", "--network", "regtest", "--datadir", datadir,
                             "--rpc-port", "0", "--no-p2p", "--mine", "--log-level", "warning"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        msg = json.loads(line)
        if msg.get("event") == "ready":
            return proc, msg["rpc"].rstrip("/")
    raise SystemExit("pouwd did not start")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--url", help="an already running node (default: start a regtest pouwd)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    n = args.size
    rng = np.random.default_rng()
    proc = None
    tmp = tempfile.TemporaryDirectory()
    url = args.url
    if url is None:
        proc, url = start_node(tmp.name)
    try:
        runs = []
        for _ in range(args.repeat):
            a = rng.integers(-64, 64, (n, n), dtype=np.int8)  # fresh matrices: a new job each time
            b = rng.integers(-64, 64, (n, n), dtype=np.int8)
            runs.append(asyncio.run(one_job(url, a, b)))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        tmp.cleanup()
    af, bf = a.astype(np.float32), b.astype(np.float32)
    plain_f32 = statistics.median([_time(lambda: af @ bf) for _ in range(5)])
    ai, bi = a.astype(np.int64), b.astype(np.int64)
    plain_i64 = _time(lambda: ai @ bi)
    total = statistics.median(r["total_s"] for r in runs)
    out = {"kind": "job", "m": n, "k": n, "n": n, "end_to_end_s": total,
           "phases_s": {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0]},
           "plain_f32_s": plain_f32, "plain_i64_s": plain_i64,
           "ratio_vs_f32": total / plain_f32, "ratio_vs_i64": total / plain_i64}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"job {n}x{n}x{n} end to end (upload -> download): {total * 1000:.0f} ms "
              f"(phases {out['phases_s']})\n"
              f"plain numpy.matmul float32: {plain_f32 * 1000:.1f} ms -> {out['ratio_vs_f32']:.1f}x; "
              f"int64: {plain_i64 * 1000:.0f} ms -> {out['ratio_vs_i64']:.2f}x")
    return 0


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
