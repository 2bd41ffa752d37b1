"""Transfer admission of one node: how many signed transfers a regtest ``pouwd`` takes per second over RPC.

    .venv/bin/python bench/txadmit.py [--txs 5000] [--batch 500] [--json]

Starts a regtest ``pouwd`` (no mining, no peers) on 127.0.0.1, signs ``--txs``
transfers from five prefunded devnet keys before the clock starts, sends them as
JSON-RPC batches of ``sendrawtransaction`` and reports transfers per second: the
cost every node pays for every transfer it admits (JSON-RPC, decoding, strict
Ed25519, mempool), so the ceiling of what a network of such nodes can gossip on
this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consensus.codec import encode_tx  # noqa: E402
from consensus.keys import devnet_keypairs  # noqa: E402
from consensus.networks import REGTEST  # noqa: E402
from consensus.tx import make_transfer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--txs", type=int, default=5000, help="transfers to send (at most 5000: 1000 per sender)")
    ap.add_argument("--batch", type=int, default=500, help="transfers per JSON-RPC batch (at most 1000)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not 1 <= args.txs <= 5000 or not 1 <= args.batch <= 1000:
        ap.error("--txs must be in [1, 5000] and --batch in [1, 1000]")
    keys = devnet_keypairs(9)[4:9]
    raw = [encode_tx(make_transfer(keys[i % 5], REGTEST.chain_id, i // 5, b"\x44" * 20, 1, 1000)).hex()
           for i in range(args.txs)]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-m", "node.daemon", "--network", "regtest", "--datadir", tmp,
                                 "--rpc-port", "0", "--no-p2p", "--log-level", "warning"],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            url = next(json.loads(line)["rpc"] for line in proc.stdout if '"ready"' in line)

            def post(body: object) -> Any:
                req = urllib.request.Request(url, json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=300) as r:
                    return json.load(r)

            start = time.perf_counter()
            for i in range(0, len(raw), args.batch):
                answers = post([{"jsonrpc": "2.0", "id": j, "method": "sendrawtransaction", "params": [r]}
                                for j, r in enumerate(raw[i:i + args.batch])])
                errors = [a for a in answers if "error" in a]
                if errors:
                    raise SystemExit(f"a transfer was refused: {errors[0]}")
            seconds = time.perf_counter() - start
            pending = post({"jsonrpc": "2.0", "id": 0, "method": "getmempoolinfo", "params": []})["result"]["size"]
        finally:
            proc.terminate()
            proc.wait(30)
    out = {"kind": "txadmit", "txs": len(raw), "batch": args.batch, "seconds": round(seconds, 2),
           "tx_per_s": round(len(raw) / seconds), "us_per_tx": round(1e6 * seconds / len(raw)), "pending": pending}
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0 if pending == len(raw) else 1


if __name__ == "__main__":
    sys.exit(main())
