"""``pouw-miner``: mine for a node over JSON-RPC, on the CPU and any number of GPUs.

    pouw-miner --rpc-url http://127.0.0.1:18445/ --datadir ~/.pouw/devnet --devices cpu

It long-polls ``getblocktemplate``, mines on every selected device, submits
blocks with ``submitblock``, does the job work the node leases it and hands
the products back (``submitmatmulresult``). A report line goes to stderr every
``--report-interval`` seconds. Exit status: 0 when stopped (a signal,
``--max-seconds``), 1 on bad arguments, an unreachable node or an unusable
device.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from kernels.base import BackendError
from pouw.matrix import validate_shape
from wallet.rpc import NodeError, RpcClient, default_url, read_cookie

from .client import MinerClient
from .devices import open_devices, parse_devices
from .engine import Engine
from .report import EventLog, Stats, rate_line, serve_metrics

log = logging.getLogger("pouw-miner")


def _shape(text: str) -> tuple[int, int, int]:
    try:
        m, k, n = (int(x) for x in text.split(","))
        validate_shape(m, k, n)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected M,K,N meeting the shape rules, found {text!r}: {e}") from None
    return m, k, n


def _worker_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._:@-]{1,64}", text):
        raise argparse.ArgumentTypeError("a worker name is 1 to 64 of A-Z a-z 0-9 . _ : @ -")
    return text


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, found {text}")
    return value


def default_worker() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:48] or "miner"
    return f"{host}-{os.getpid()}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pouw-miner", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", default="devnet", help="network, for the default RPC port (default: devnet)")
    p.add_argument("--rpc-url", help="the node's JSON-RPC URL (default: 127.0.0.1 on the network's port)")
    p.add_argument("--datadir", type=Path, help="the node's data directory: use its .cookie for credentials")
    p.add_argument("--rpc-cookie", type=Path, help="a cookie file (user:password) for credentials")
    p.add_argument("--rpc-user", help="RPC user (with --rpc-password)")
    p.add_argument("--rpc-password", help="RPC password")
    p.add_argument("--address", help="coinbase address of the blocks mined (default: the node's miner address)")
    p.add_argument("--devices", default="cpu",
                   help="cpu, all (every GPU, else the CPU), or GPU numbers such as 0,1 (default: cpu)")
    p.add_argument("--shape", type=_shape, help="M,K,N of the random work matrices (default: the node's shape)")
    p.add_argument("--worker", type=_worker_name, default=None,
                   help="this miner's name: job work is leased to it (default: <host>-<pid>)")
    p.add_argument("--no-jobs", action="store_true", help="take no job work, mine random matrices only")
    p.add_argument("--longpoll-timeout", type=_positive, default=60.0,
                   help="longest wait of one long-poll, seconds (the node caps it at 60; default 60)")
    p.add_argument("--report-interval", type=_positive, default=5.0, help="seconds between stderr reports")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (0: any free one)")
    p.add_argument("--metrics-bind", default="127.0.0.1", help="address for --metrics-port (default 127.0.0.1)")
    p.add_argument("--events", type=Path, help="append one JSON line per event (template, switch, block, job)")
    p.add_argument("--max-seconds", type=_positive, help="stop after this many seconds")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _auth(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.rpc_user or args.rpc_password:
        if not (args.rpc_user and args.rpc_password):
            raise NodeError("--rpc-user and --rpc-password go together")
        return args.rpc_user, args.rpc_password
    if args.rpc_cookie:
        return read_cookie(args.rpc_cookie)
    if args.datadir:
        return read_cookie(args.datadir / ".cookie")
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        names = parse_devices(args.devices)
    except ValueError as e:
        print(f"pouw-miner: {e}", file=sys.stderr)
        return 1
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        print("pouw-miner: --metrics-port must be 0 to 65535", file=sys.stderr)
        return 1
    if args.longpoll_timeout > 60:
        print("pouw-miner: --longpoll-timeout is at most 60 (the node's bound)", file=sys.stderr)
        return 1
    worker = args.worker or default_worker()
    try:
        rpc = RpcClient(args.rpc_url or default_url(args.network), auth=_auth(args), timeout=30.0)
        client = MinerClient(rpc, address=args.address, worker=None if args.no_jobs else worker)
        info = client.mining_info()
        shape = args.shape or (info["shape"]["m"], info["shape"]["k"], info["shape"]["n"])
    except (NodeError, KeyError, TypeError) as e:
        print(f"pouw-miner: {e}", file=sys.stderr)
        return 1
    try:
        devices = open_devices(names)
    except BackendError as e:
        print(f"pouw-miner: {e}", file=sys.stderr)
        return 1
    registry, metrics_port = None, None
    if args.metrics_port is not None:
        try:
            registry, metrics_port = serve_metrics(args.metrics_port, args.metrics_bind)
        except OSError as e:
            print(f"pouw-miner: cannot serve metrics on {args.metrics_bind}:{args.metrics_port}: {e}",
                  file=sys.stderr)
            return 1
    events_file = open(args.events, "a", encoding="utf-8") if args.events else None  # closed below
    stats = Stats([d.name for d in devices], registry)
    engine = Engine(client, client, devices, shape, stats, EventLog(events_file),
                    longpoll_timeout=args.longpoll_timeout)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    engine.start()
    print(json.dumps({"event": "ready", "worker": worker, "devices": [d.name for d in devices],
                      "shape": list(shape), "url": rpc.url, "metrics_port": metrics_port}), flush=True)
    started = last_t = time.monotonic()
    last = stats.snapshot()
    try:
        while not done.is_set():
            left = None if args.max_seconds is None else args.max_seconds - (time.monotonic() - started)
            if left is not None and left <= 0:
                break
            done.wait(args.report_interval if left is None else min(left, args.report_interval))
            now_t, now = time.monotonic(), stats.snapshot()
            line, rates = rate_line(last, now, now_t - last_t)
            stats.set_rates(rates)
            print(line, file=sys.stderr, flush=True)
            last, last_t = now, now_t
    finally:
        engine.close()
        if events_file is not None:
            events_file.close()
    print(json.dumps({"event": "stopped", **stats.snapshot()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
