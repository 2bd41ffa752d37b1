"""JSON-RPC throughput and latency over keep-alive HTTP.

Without ``--url`` it starts an ``RpcServer`` on 127.0.0.1 (port 0) in this
process with a trivial ``getblockcount`` handler, so the figure includes the
client's own cost on the same event loop (a lower bound for the server).
With ``--url`` it measures a running node instead (``--user``/``--password``
or ``--cookie`` for auth).

    .venv/bin/python bench/rpc.py                      # in-process server
    .venv/bin/python bench/rpc.py -n 20000 -c 64 --json
    .venv/bin/python bench/rpc.py --url http://127.0.0.1:18445/ --cookie ~/.pouw/devnet/.cookie
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.metrics import Metrics
from node.rpc.registry import Registry
from node.rpc.server import RpcServer

TARGET_RPS = 2000


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def _fire(url: str, method: str, total: int, concurrency: int, auth: tuple[str, str] | None) -> dict:
    latencies: list[float] = []
    errors = 0
    next_id = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(request_id: int) -> bool:
            body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": []})
            async with session.post(url, data=body) as resp:
                answer = await resp.json(content_type=None)
            return resp.status == 200 and "result" in answer and answer.get("id") == request_id

        async def worker(count: int) -> None:
            nonlocal errors, next_id
            for _ in range(count):
                next_id += 1
                started = time.perf_counter()
                ok = await one(next_id)
                latencies.append(time.perf_counter() - started)
                errors += not ok

        # Warm up: open the keep-alive connections before timing.
        await asyncio.gather(*(worker(2) for _ in range(concurrency)))
        latencies.clear()
        errors = 0
        share, extra = divmod(total, concurrency)
        started = time.perf_counter()
        await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": total,
        "concurrency": concurrency,
        "errors": errors,
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(total / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.50) * 1e3, 3),
        "p99_ms": round(_percentile(latencies, 0.99) * 1e3, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1e3, 3),
    }


async def _run(args: argparse.Namespace) -> dict:
    auth = None
    if args.cookie:
        user, _, password = Path(args.cookie).expanduser().read_text().strip().partition(":")
        auth = (user, password)
    elif args.user:
        auth = (args.user, args.password or "")
    if args.url:
        result = await _fire(args.url, args.method, args.requests, args.concurrency, auth)
        result["server"] = args.url
        return result

    registry = Registry()

    @registry.method(result={"type": "integer", "minimum": 0})
    async def getblockcount() -> int:
        """Return the height of the best chain (constant here)."""
        return 42

    async with RpcServer(registry, "127.0.0.1", 0, metrics=Metrics()) as server:
        result = await _fire(server.url, "getblockcount", args.requests, args.concurrency, auth)
    result["server"] = "in-process"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="benchmark a running node instead of an in-process server")
    parser.add_argument("--method", default="getblockcount", help="method to call with no params (with --url)")
    parser.add_argument("-n", "--requests", type=int, default=5000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--cookie", help="path of a .cookie file for auth")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be positive")
    args.concurrency = min(args.concurrency, args.requests)

    result = asyncio.run(_run(args))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"server:       {result['server']}")
        print(f"requests:     {result['requests']} (concurrency {result['concurrency']}, "
              f"errors {result['errors']})")
        print(f"elapsed:      {result['elapsed_s']:.3f} s")
        print(f"throughput:   {result['requests_per_s']:.0f} requests/s (target >= {TARGET_RPS})")
        print(f"latency:      p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, "
              f"mean {result['mean_ms']:.3f} ms")
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
