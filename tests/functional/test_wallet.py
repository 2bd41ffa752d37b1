"""``pouw-wallet`` against a real regtest ``pouwd``: restore, pay, confirm, refuse, jobs, node down.

The wallet runs as a subprocess (``python -m wallet``), as a user would run it,
with ``--passphrase-file`` instead of the hidden prompt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from consensus.keys import DEVNET_MNEMONIC
from tests.functional.harness import ROOT, wait_until


def make_wallet_runner(tmp_path, node):
    (tmp_path / "pass").write_text("functional test passphrase\n")

    def wallet(*args, json_out=False, check=None):
        cmd = [sys.executable, "-m", "wallet", "--wallet-dir", str(tmp_path / "wallets"),
               "--passphrase-file", str(tmp_path / "pass"), "--rpc-url", node.url]
        if json_out:
            cmd.append("--json")
        r = subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        if check is not None:
            assert r.returncode == check, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
        if json_out and r.returncode == 0:
            return json.loads(r.stdout)
        return r

    return wallet


def test_wallet_payments_jobs_and_errors(node_factory, tmp_path):
    node = node_factory("node").start()
    wallet = make_wallet_runner(tmp_path, node)
    (tmp_path / "mnemonic").write_text(DEVNET_MNEMONIC + "\n")

    # Restore the prefunded devnet key on regtest; a second wallet with a new mnemonic receives.
    dev = wallet("--wallet", "dev", "--network", "regtest", "restore", "--mnemonic-file", str(tmp_path / "mnemonic"),
                 json_out=True, check=0)
    assert dev["addresses"][0].startswith("preg1")
    bob_new = wallet("--wallet", "bob", "--network", "regtest", "new", json_out=True, check=0)
    assert len(bob_new["mnemonic"].split()) == 24
    bob_addr = wallet("--wallet", "bob", "address", "--new", "--label", "incoming", json_out=True, check=0)["address"]
    start = wallet("--wallet", "dev", "balance", json_out=True, check=0)["total"]

    # send --wait: runs until the block with the transfer is mined (progress on stderr).
    sender = subprocess.Popen(
        [sys.executable, "-m", "wallet", "--wallet-dir", str(tmp_path / "wallets"), "--passphrase-file",
         str(tmp_path / "pass"), "--rpc-url", node.url, "--wallet", "dev", "--json",
         "send", bob_addr, "1.5", "--fee", "0.0001", "--memo", "thanks", "--wait", "--timeout", "60"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: node.rpc("getrawmempool") or sender.poll() is not None, timeout=30, what="the transfer")
    assert sender.poll() is None, sender.communicate()
    node.rpc("generatetoaddress", 1, dev["addresses"][0])
    out, err = sender.communicate(timeout=60)
    assert sender.returncode == 0, err
    sent = json.loads(out)
    assert sent["confirmations"] >= 1 and sent["amount"] == 150_000_000 and sent["fee"] == 10_000
    assert "confirmed" in err
    assert node.rpc("gettransaction", sent["txid"])["confirmations"] == 1

    bob = wallet("--wallet", "bob", "balance", json_out=True, check=0)
    assert bob["total"] == 150_000_000 and bob["total_coins"] == "1.50000000"
    assert [a["balance"] for a in bob["addresses"]] == [0, 150_000_000]
    dev_after = wallet("--wallet", "dev", "balance", json_out=True, check=0)["total"]
    coinbase = node.rpc("getblock", node.rpc("getblockhash", 1), 2)["tx"][0]
    assert coinbase["to"] == dev["addresses"][0]
    assert dev_after == start - 150_000_000 - 10_000 + coinbase["amount"]
    history = wallet("--wallet", "bob", "history", json_out=True, check=0)["transactions"]
    assert [(h["direction"], h["amount"], h["memo_text"]) for h in history] == [("receive", 150_000_000, "thanks")]

    # Insufficient funds: exit 1, nothing sent.
    r = wallet("--wallet", "bob", "send", dev["addresses"][0], "2", check=1)
    assert "insufficient funds" in r.stderr
    assert node.rpc("getrawmempool") == []
    assert node.rpc("getaccount", bob_addr)["next_nonce"] == 0

    # A MatMul job: submit, mine a block (the miner takes the job), fetch, check locally, save.
    rng = np.random.default_rng(11)
    a = rng.integers(-64, 64, (24, 50), dtype=np.int8)
    b = rng.integers(-64, 64, (50, 7), dtype=np.int8)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    job_id = wallet("job", "submit", str(tmp_path / "A.npy"), str(tmp_path / "B.npy"), check=0).stdout.strip()
    assert len(job_id) == 64
    r = wallet("job", "result", job_id, "--out", str(tmp_path / "early.npy"), check=1)
    assert "not ready" in r.stderr and not (tmp_path / "early.npy").exists()
    node.rpc("generatetoaddress", 1, dev["addresses"][0])
    wait_until(lambda: node.rpc("getmatmuljob", job_id)["status"] == "done", timeout=30, what="the job")
    assert wallet("job", "status", job_id, json_out=True, check=0)["status"] == "done"
    wallet("job", "result", job_id, "--out", str(tmp_path / "C.npy"), check=0)
    c = np.load(tmp_path / "C.npy")
    assert c.dtype == np.int32 and np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    wallet("job", "result", job_id, "--out", str(tmp_path / "C2.npy"), "--a", str(tmp_path / "A.npy"),
           "--b", str(tmp_path / "B.npy"), check=0)
    # Matrices that are not the job's: refused, nothing saved.
    a2 = a.copy()
    a2[0, 0] = 1 - a2[0, 0] if a2[0, 0] != 0 else 5
    np.save(tmp_path / "A2.npy", a2)
    r = wallet("job", "result", job_id, "--out", str(tmp_path / "bad.npy"), "--a", str(tmp_path / "A2.npy"),
               "--b", str(tmp_path / "B.npy"), check=1)
    assert "refusing to save" in r.stderr and not (tmp_path / "bad.npy").exists()
    assert [j["job_id"] for j in wallet("job", "list", json_out=True, check=0)] == [job_id]

    # Node down: exit 2 and a hint how to start it.
    node.stop()
    r = wallet("--wallet", "dev", "balance", check=2)
    assert "is pouwd running? start it with: pouwd --network regtest" in r.stderr


def test_newcomer_flow_says_where_what_and_how(node_factory, tmp_path):
    """The README's walk-through as a newcomer reads it: faucet names the address and amount, balance and
    history have headers, labels and memos, ``job submit --wait`` ends with the command that fetches C, and
    ``--out`` saves C; stderr is a pipe here (no terminal), as in a script or CI log."""
    node = node_factory("node").start()
    wallet = make_wallet_runner(tmp_path, node)
    cookie = ["--rpc-cookie-file", str(node.datadir / ".cookie")]  # the faucet is a control method
    (tmp_path / "mnemonic").write_text(DEVNET_MNEMONIC + "\n")
    wallet("--wallet", "dev", "--network", "regtest", "restore", "--mnemonic-file", str(tmp_path / "mnemonic"),
           check=0)
    me = wallet("--wallet", "me", "--network", "regtest", "new", json_out=True, check=0)["address"]
    savings = wallet("--wallet", "me", "address", "--new", "--label", "savings", json_out=True, check=0)["address"]

    # faucet: the primary address (0), not the newest one, and the output says so.
    r = wallet("--wallet", "me", *cookie, "faucet", "25", check=0)
    assert f"faucet: 25.00000000 coins to {me} (address 0 of wallet 'me')" in r.stdout, r.stdout
    txid = r.stdout.split("txid ")[1].split()[0]
    r = wallet("--wallet", "me", *cookie, "faucet", "2", "--to", savings, check=0)
    assert f"2.00000000 coins to {savings} (address 1 of wallet 'me', label savings)" in r.stdout
    assert wait_until(lambda: len(node.rpc("getrawmempool")) == 2, timeout=10, what="both faucet payments")
    dev_addr = wallet("--wallet", "dev", "address", check=0).stdout.strip()
    wallet("--wallet", "dev", "send", savings, "1.5", "--memo", "for lunch", check=0)
    wait_until(lambda: len(node.rpc("getrawmempool")) == 3, timeout=10, what="the transfer in the mempool")
    node.rpc("generatetoaddress", 1, dev_addr)
    assert node.rpc("gettransaction", txid)["confirmations"] == 1

    lines = wallet("--wallet", "me", "balance", check=0).stdout.splitlines()
    assert lines[0].split() == ["index", "address", "label", "coins", "base", "units"]
    assert lines[1].split() == ["0", me, "-", "25.00000000", "2500000000"]
    assert lines[2].split() == ["1", savings, "savings", "3.50000000", "350000000"]
    assert lines[3].startswith("total 28.50000000 coins")
    history = wallet("--wallet", "me", "history", check=0).stdout.splitlines()
    assert history[0].split() == ["height", "kind", "amount", "counterparty", "txid", "memo"]
    lunch = [line for line in history if dev_addr in line]
    assert len(lunch) == 1 and lunch[0].split()[:3] == ["1", "receive", "1.50000000"]
    assert lunch[0].endswith("for lunch")

    # job submit --wait: stdout is the job id; stderr ends with the command that fetches C.
    rng = np.random.default_rng(12)
    a = rng.integers(-64, 64, (100, 300), dtype=np.int8)  # the README's shape: padded to 112x384 by the node
    b = rng.integers(-64, 64, (300, 70), dtype=np.int8)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    base = [sys.executable, "-m", "wallet", "--wallet-dir", str(tmp_path / "wallets"), "--passphrase-file",
            str(tmp_path / "pass"), "--rpc-url", node.url]
    submit = subprocess.Popen([*base, "job", "submit", str(tmp_path / "A.npy"), str(tmp_path / "B.npy"), "--wait",
                               "--timeout", "60"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: node.rpc("listmatmuljobs", "queued") or submit.poll() is not None, timeout=30,
               what="the job to be queued")
    node.rpc("generatetoaddress", 1, dev_addr)
    out, err = submit.communicate(timeout=60)
    assert submit.returncode == 0, err
    job_id = out.strip()
    assert len(job_id) == 64
    assert "queued (waiting for a miner) (0 s)" in err  # a plain line with the time, not a frozen \r counter
    assert "\r" not in err
    fetch = f"pouw-wallet job result {job_id} --out C.npy --rpc-url {node.url}"
    assert err.rstrip().endswith(fetch), err
    # The hinted command works as printed (run where C.npy should land).
    r = subprocess.run([*base, *fetch.split()[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "C.npy"), a.astype(np.int64) @ b.astype(np.int64))

    # --out alone waits (it implies --wait) and saves the checked product.
    b2 = b.copy()
    b2[0, 0] = 63 if b2[0, 0] != 63 else -64
    np.save(tmp_path / "B2.npy", b2)
    submit = subprocess.Popen([*base, "job", "submit", str(tmp_path / "A.npy"), str(tmp_path / "B2.npy"), "--out",
                               str(tmp_path / "C2.npy"), "--timeout", "60"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    wait_until(lambda: node.rpc("listmatmuljobs", "queued") or submit.poll() is not None, timeout=30,
               what="the second job to be queued")
    node.rpc("generatetoaddress", 1, dev_addr)
    out, err = submit.communicate(timeout=60)
    assert submit.returncode == 0, err
    assert "saved " + str(tmp_path / "C2.npy") in out and "Freivalds check passed" in out
    assert np.array_equal(np.load(tmp_path / "C2.npy"), a.astype(np.int64) @ b2.astype(np.int64))
