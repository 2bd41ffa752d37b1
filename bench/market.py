"""A paid MatMul job end to end on a devnet: offer to accepted, with its parts (PROTOCOL.md section 11).

    .venv/bin/python bench/market.py [--size 1024] [--reward 1] [--timeout 600] [--json]

Two peered ``pouwd --network devnet`` processes on 127.0.0.1: node 0 mines with a
claim key (devnet key 1, ``--claim-key``; its blocks pay key 2), node 1 does not
mine and is the client's node. The client (devnet key 0) runs the wallet's own commands against
node 1, as a user would: ``pouw-wallet job submit A.npy B.npy --reward R`` (the
offer, its block, then the job queued and announced), and, once the claimed
product has reached node 1, ``pouw-wallet job result OFFER --auto`` (download,
root_C and Freivalds checks, accept). Reported, from one clock:

- ``submit``: the submit command (offer tx, waiting for its block, job upload);
- ``to_claim``: until the claim is in a block (the miner fetches the matrices,
  mines them, computes root_C, claims; the claim is mined);
- ``to_product``: until the product is at node 1 (the claim's confirmations, then
  the product announced and fetched over the network);
- ``result``: the result command (download, checks, the accept sent);
- ``to_accepted``: until the accept is in a block;
- ``total``: offer to accepted; and the balances' changes against section 11.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consensus.address import encode_address  # noqa: E402
from consensus.keys import DEVNET_MNEMONIC, devnet_keypairs  # noqa: E402
from consensus.networks import DEVNET  # noqa: E402
from tests.functional.harness import NodeProcess, wait_until  # noqa: E402

PASSPHRASE = "bench"


def run(size: int, reward_coins: str, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="pouw-market-") as tmp:
        root = Path(tmp)
        wallets, pass_file = root / "wallets", root / "pass"
        pass_file.write_text(PASSPHRASE + "\n")
        (root / "mnemonic").write_text(DEVNET_MNEMONIC + "\n")
        wallet = [sys.executable, "-m", "wallet", "--wallet-dir", str(wallets), "--wallet", "devkey",
                  "--passphrase-file", str(pass_file), "--network", "devnet"]
        subprocess.run([*wallet, "restore", "--mnemonic-file", str(root / "mnemonic")], cwd=ROOT, check=True,
                       capture_output=True)
        keys = devnet_keypairs(3)
        addr = [encode_address(k.address, DEVNET.hrp) for k in keys]
        # Blocks pay key 2, so the client's (key 0) and claimant's (key 1) balances move by the job alone.
        miner = NodeProcess(root / "n0", "--mine", "--miner-address", addr[2], "--claim-key",
                            str(wallets / "devkey.json"), "--claim-passphrase-file", str(pass_file), "--claim-index",
                            "1", network="devnet", p2p=True).start()
        client = NodeProcess(root / "n1", "--bootstrap", miner.p2p[0], network="devnet", p2p=True).start()
        nodes = [miner, client]
        try:
            wait_until(lambda: client.rpc("getpeerinfo"), 60, what="the nodes to peer")
            rng = np.random.default_rng(11)
            a = rng.integers(-64, 64, (size, size), dtype=np.int8)
            b = rng.integers(-64, 64, (size, size), dtype=np.int8)
            np.save(root / "A.npy", a)
            np.save(root / "B.npy", b)
            before = [client.rpc("getaccount", x)["balance"] for x in addr[:2]]
            cli = [*wallet, "--rpc-url", client.url, "job"]

            t0 = time.monotonic()
            out = subprocess.run([*cli, "submit", str(root / "A.npy"), str(root / "B.npy"), "--reward", reward_coins,
                                  "--json"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
            t_submit = time.monotonic()
            sent = json.loads(out)
            offer_id = sent["offer_id"]
            offer = wait_until(lambda: (o := client.rpc("getjoboffer", offer_id))["claim_height"] is not None and o,
                               timeout, what="the claim's block")
            t_claim = time.monotonic()
            wait_until(lambda: (p := client.rpc("getjoboffer", offer_id)["product"]) and p.get("served", True)
                       and p["root_c_ok"], timeout, what="the product at the client's node")
            t_product = time.monotonic()
            subprocess.run([*cli, "result", offer_id, "--out", str(root / "C.npy"), "--auto", "--json"], cwd=ROOT,
                           check=True, capture_output=True, text=True)
            t_result = time.monotonic()
            final = wait_until(lambda: (o := client.rpc("getjoboffer", offer_id))["status"] == "accepted" and o,
                               timeout, what="the accept's block")
            t_done = time.monotonic()
            c = np.load(root / "C.npy")
            exact = bool(np.array_equal(c.astype(np.int64), a.astype(np.int64) @ b.astype(np.int64)))
            wait_until(lambda: client.rpc("getblockcount") >= final["final_height"], 30, what="the balances")
            after = [client.rpc("getaccount", x)["balance"] for x in addr[:2]]
            chain_ok = all(n.rpc("verifychain")["ok"] for n in nodes)
        finally:
            for n in nodes:
                n.stop()
    return {
        "size": size, "reward": offer["reward"], "bond": offer["bond"], "deposit": offer["deposit"],
        "product_exact": exact, "verifychain_ok": chain_ok,
        "seconds": {"submit": round(t_submit - t0, 2), "to_claim": round(t_claim - t_submit, 2),
                    "to_product": round(t_product - t_claim, 2), "result": round(t_result - t_product, 2),
                    "to_accepted": round(t_done - t_result, 2), "total": round(t_done - t0, 2)},
        "heights": {"offer": offer["offer_height"], "claim": offer["claim_height"], "accept": final["final_height"]},
        "client_paid": before[0] - after[0], "claimant_gained": after[1] - before[1],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="m = k = n of the job (default 1024)")
    ap.add_argument("--reward", default="1", help="reward in coins (default 1)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each step")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    r = run(args.size, args.reward, args.timeout)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    s = r["seconds"]
    print(f"paid {args.size}^3 job, reward {r['reward']} base units (bond {r['bond']}, deposit {r['deposit']}):")
    for name in ("submit", "to_claim", "to_product", "result", "to_accepted", "total"):
        print(f"  {name:12} {s[name]:8.2f} s")
    print(f"  heights: offer {r['heights']['offer']}, claim {r['heights']['claim']}, accept {r['heights']['accept']}")
    print(f"  client paid {r['client_paid']} (reward + offer and accept fees), claimant gained "
          f"{r['claimant_gained']} (reward - claim fee); product exact: {r['product_exact']}, "
          f"verifychain: {r['verifychain_ok']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
