"""``pouw-devnet``: a local devnet of several ``pouwd`` processes on 127.0.0.1.

    pouw-devnet up [--nodes 3] [--miners 1] [--datadir .devnet] [--base-port 18444]
                   [--backend numpy] [--detach]
    pouw-devnet status [--datadir .devnet]
    pouw-devnet down [--datadir .devnet]

``up`` starts node 0, then the others, each dialing every earlier node (all peered), the
first ``--miners`` of them mining on the CPU; waits until every node has the
same height above zero; prints a table (node, RPC URL, P2P address, height),
the funded devnet key and mnemonic, and commands to copy and paste. The mining
nodes claim the paid jobs they compute (PROTOCOL.md section 11) with devnet key 1
(``--claim-key`` on the wallet keystore the launcher restores, index 1), so a
paid job offered from key 0 gets claimed, served and paid. In
the foreground, Ctrl-C stops every node cleanly (SIGTERM, then wait); with
``--detach`` it leaves them running and ``down`` stops them. Node ``i`` listens
for P2P on ``base + 2i`` and JSON-RPC on ``base + 2i + 1`` (18444/18445 for the
first node, as a lone ``pouwd --network devnet``), and derives its libp2p key
from ``devnet-node-<i>`` so peer ids are the same on every run (as in
``testnet/docker-compose.yml``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from consensus.address import encode_address
from consensus.keys import DEVNET_MNEMONIC, devnet_keypairs
from consensus.networks import get_network

STATE_FILE = "devnet.json"
WALLET_PASSPHRASE = "devnet"
DEFAULT_BASE_PORT = 18444
CLAIM_INDEX = 1
"""Devnet key (address index of the restored keystore) with which the mining nodes claim paid jobs."""


@dataclass
class NodeInfo:
    name: str
    index: int
    pid: int
    rpc: str
    p2p: list
    peer_id: str | None
    datadir: str
    mining: bool


def node_ports(base: int, index: int) -> tuple[int, int]:
    """``(p2p, rpc)`` ports of node ``index``."""
    return base + 2 * index, base + 2 * index + 1


def node_args(index: int, datadir: Path, base: int, mine: bool, backend: str, network: str,
              bootstrap: list[str]) -> list[str]:
    """The ``pouwd`` command line of node ``index`` (shared with the compose file's test)."""
    p2p, rpc = node_ports(base, index)
    args = ["--network", network, "--datadir", str(datadir), "--rpc-port", str(rpc), "--p2p-port", str(p2p),
            "--p2p-key-seed", f"devnet-node-{index}", "--miner-backend", backend, "--log-level", "info"]
    for addr in bootstrap:
        args += ["--bootstrap", addr]
    if mine:
        args.append("--mine")
    return args


def rpc(url: str, method: str, *params, timeout: float = 5.0):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        answer = json.load(r)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']['message']}")
    return answer["result"]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a node could listen on ``host:port`` now.

    Binds with ``SO_REUSEADDR``, as the nodes' own listeners do (asyncio/aiohttp and
    trio set it), so connections left in TIME_WAIT by a devnet just stopped do not
    count as in use, while a live listener on the port still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def start_node(index: int, root: Path, args: argparse.Namespace, bootstrap: list[str]) -> NodeInfo:
    datadir = root / f"node{index}"
    datadir.mkdir(parents=True, exist_ok=True)
    mine = index < args.miners
    cmd = [sys.executable, "-m", "node.daemon",
           *node_args(index, datadir, args.base_port, mine, args.backend, args.network, bootstrap)]
    if mine:
        wallets, pass_file = prepare_wallet(root, args.network)
        cmd += ["--claim-key", str(wallets / "devkey.json"), "--claim-passphrase-file", str(pass_file),
                "--claim-index", str(CLAIM_INDEX)]
    log = open(datadir / "pouwd.log", "ab")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        try:
            ready = json.loads(line)
        except ValueError:
            continue
        if ready.get("event") == "ready":
            proc.stdout.close()
            return NodeInfo(f"node{index}", index, proc.pid, ready["rpc"], ready.get("p2p") or [],
                            ready.get("peer_id"), str(datadir), mine)
    proc.kill()
    tail = (datadir / "pouwd.log").read_text(errors="replace")[-2000:]
    raise SystemExit(f"node{index} did not start; the end of {datadir / 'pouwd.log'}:\n{tail}")


def heights(nodes: list[NodeInfo]) -> list[int | None]:
    out = []
    for n in nodes:
        try:
            out.append(rpc(n.rpc, "getblockcount", timeout=2))
        except (OSError, RuntimeError, ValueError):
            out.append(None)
    return out


def peers_of(n: NodeInfo) -> int | None:
    try:
        return len(rpc(n.rpc, "getpeerinfo", timeout=2))
    except (OSError, RuntimeError, ValueError):
        return None


def stop_nodes(nodes: list[NodeInfo], timeout: float = 30.0) -> None:
    for n in nodes:
        try:
            os.kill(n.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for n in nodes:
        while time.monotonic() < deadline and _alive(n.pid):
            time.sleep(0.05)
        if _alive(n.pid):
            os.kill(n.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def prepare_wallet(root: Path, network: str) -> tuple[Path, Path]:
    """Restore the devnet key into ``<root>/wallets`` (passphrase in a file) so the printed commands run as is."""
    wallets = root / "wallets"
    pass_file = root / "wallet-passphrase"
    if not (wallets / "devkey.json").exists():
        wallets.mkdir(parents=True, exist_ok=True)
        pass_file.write_text(WALLET_PASSPHRASE + "\n")
        mnemonic_file = root / "devnet-mnemonic.txt"
        mnemonic_file.write_text(DEVNET_MNEMONIC + "\n")
        subprocess.run([sys.executable, "-m", "wallet", "--wallet-dir", str(wallets), "--wallet", "devkey",
                        "--passphrase-file", str(pass_file), "--network", network, "restore",
                        "--mnemonic-file", str(mnemonic_file)], check=True, capture_output=True)
    return wallets, pass_file


def example_matrices(root: Path) -> tuple[Path, Path]:
    import numpy as np

    rng = np.random.default_rng(2026)
    a_path, b_path = root / "A.npy", root / "B.npy"
    np.save(a_path, rng.integers(-64, 64, (100, 300), dtype=np.int8))
    np.save(b_path, rng.integers(-64, 64, (300, 70), dtype=np.int8))
    return a_path, b_path


def print_summary(nodes: list[NodeInfo], root: Path, network: str) -> None:
    params = get_network(network)
    key = devnet_keypairs(1)[0]
    address = encode_address(key.address, params.hrp)
    hs = heights(nodes)
    print(f"\npouw devnet ({network}) with {len(nodes)} nodes, data in {root}\n")
    print(f"{'node':6} {'mining':6} {'RPC URL':26} {'height':>6}  P2P address")
    for n, h in zip(nodes, hs, strict=True):
        print(f"{n.name:6} {'yes' if n.mining else 'no':6} {n.rpc:26} {h if h is not None else '?':>6}  "
              f"{n.p2p[0] if n.p2p else '-'}")
    wallets, pass_file = prepare_wallet(root, network)
    a_path, b_path = example_matrices(root)
    bin_dir = Path(sys.executable).parent
    wallet = (f"{bin_dir}/pouw-wallet --wallet-dir {wallets} --wallet devkey --passphrase-file {pass_file} "
              f"--rpc-url {nodes[0].rpc}")
    other = encode_address(devnet_keypairs(2)[1].address, params.hrp)
    print("\nFunded devnet key (account 0 of the public test mnemonic; devnet coins are worthless):")
    print(f"  address   {address}")
    print(f"  mnemonic  {DEVNET_MNEMONIC}")
    print(f"  private   {key.private_key.hex()}")
    print("\nTry (copy and paste):")
    print(f"  {bin_dir}/pouw-cli --rpc-url {nodes[0].rpc} getaccount {address}")
    print(f"  {wallet} send {other} 1.5 --wait")
    print(f"  {wallet} job submit {a_path} {b_path} --wait")
    if any(n.mining for n in nodes):
        claimant = encode_address(devnet_keypairs(CLAIM_INDEX + 1)[CLAIM_INDEX].address, params.hrp)
        print(f"\nPaid jobs (the mining node claims them as {claimant}, address {CLAIM_INDEX} of the wallet):")
        print(f"  {wallet} job submit {a_path} {b_path} --reward 2")
        print(f"  {wallet} job result <offer id> --out C.npy --auto --wait")
    print(f"\nExplorer: {nodes[0].rpc.rstrip('/')}/explorer   Metrics: {nodes[0].rpc.rstrip('/')}/metrics")


def cmd_up(args: argparse.Namespace) -> int:
    root = Path(args.datadir).resolve()
    state = root / STATE_FILE
    if state.exists():
        running = [n for n in load_state(root) if _alive(n.pid)]
        if running:
            print(f"a devnet is already running from {root} (pids {', '.join(str(n.pid) for n in running)}); "
                  f"stop it with: pouw-devnet down --datadir {args.datadir}", file=sys.stderr)
            return 1
    if args.miners > args.nodes or args.nodes < 1:
        print("need 1 <= --miners <= --nodes", file=sys.stderr)
        return 2
    busy = [p for i in range(args.nodes) for p in node_ports(args.base_port, i) if not port_free(p)]
    if busy:
        print(f"ports {busy} are in use; choose another --base-port", file=sys.stderr)
        return 1
    root.mkdir(parents=True, exist_ok=True)
    nodes: list[NodeInfo] = []
    try:
        for i in range(args.nodes):  # each node dials every earlier one: a full mesh
            nodes.append(start_node(i, root, args, [n.p2p[0] for n in nodes if n.p2p]))
        state.write_text(json.dumps([asdict(n) for n in nodes], indent=2))
        print(f"started {len(nodes)} nodes; waiting for blocks to flow ...", flush=True)
        deadline = time.monotonic() + args.wait
        while True:
            hs = heights(nodes)
            if all(h is not None and h >= 1 for h in hs) and len(set(hs)) == 1:
                break
            if time.monotonic() > deadline:
                print(f"warning: nodes not in agreement after {args.wait:.0f} s (heights {hs}); see */pouwd.log",
                      file=sys.stderr)
                break
            time.sleep(0.5)
        print_summary(nodes, root, args.network)
    except BaseException:
        stop_nodes(nodes)
        state.unlink(missing_ok=True)
        raise
    if args.detach:
        print(f"\ndetached; stop with: pouw-devnet down --datadir {args.datadir}")
        return 0
    print("\nCtrl-C stops every node.", flush=True)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    last = 0.0
    while not stop:
        if any(not _alive(n.pid) for n in nodes):
            print("a node exited; stopping the devnet", file=sys.stderr)
            break
        if time.monotonic() - last > 15:
            status = "  ".join(f"{n.name}={h}" for n, h in zip(nodes, heights(nodes), strict=True))
            print("heights: " + status, flush=True)
            last = time.monotonic()
        time.sleep(0.2)
    print("stopping ...", flush=True)
    stop_nodes(nodes)
    state.unlink(missing_ok=True)
    return 0


def load_state(root: Path) -> list[NodeInfo]:
    try:
        return [NodeInfo(**n) for n in json.loads((root / STATE_FILE).read_text())]
    except FileNotFoundError:
        return []


def cmd_down(args: argparse.Namespace) -> int:
    root = Path(args.datadir).resolve()
    nodes = load_state(root)
    if not nodes:
        print(f"no devnet running from {root}")
        return 0
    stop_nodes(nodes)
    (root / STATE_FILE).unlink(missing_ok=True)
    print(f"stopped {len(nodes)} nodes")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    nodes = load_state(Path(args.datadir).resolve())
    if not nodes:
        print("no devnet running (start one with: make devnet)")
        return 1
    print(f"{'node':6} {'pid':>7} {'alive':5} {'height':>6} {'peers':>5}  RPC URL")
    for n, h in zip(nodes, heights(nodes), strict=True):
        print(f"{n.name:6} {n.pid:>7} {'yes' if _alive(n.pid) else 'no':5} {h if h is not None else '?':>6} "
              f"{peers_of(n) if h is not None else '?':>5}  {n.rpc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pouw-devnet", description="A local pouw devnet of pouwd processes on 127.0.0.1.")
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status"):
        p = sub.add_parser(name)
        p.add_argument("--datadir", default=".devnet", help="where the nodes keep their data (default .devnet)")
        if name == "up":
            p.add_argument("--nodes", type=int, default=3)
            p.add_argument("--miners", type=int, default=1)
            p.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
            p.add_argument("--backend", choices=("auto", "numpy", "cupy"), default="numpy")
            p.add_argument("--network", choices=("devnet", "regtest"), default="devnet")
            p.add_argument("--detach", action="store_true", help="leave the nodes running and return")
            p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for blocks to flow")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
