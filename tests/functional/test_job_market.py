"""Paid MatMul jobs end to end (PROTOCOL.md section 11): real regtest ``pouwd`` processes, the wallet as a user runs it.

The client, a claimant and a claim-key miner are addresses of the devnet mnemonic (prefunded on
regtest too): address 0 is the client, 1 the claimant that uploads with ``job claim``, 2 the node's
claim key; blocks pay a sink address, so the wallets' balances move only by the job market. Every
balance is checked exactly: the fees come from the blocks the transactions landed in. Heights move
with ``generatetoaddress``; waiting is on conditions, never sleeps. ``verifychain`` (which checks
section 11's conservation of value) ends every test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from consensus.address import encode_address
from consensus.jobmarket import padded_dims
from consensus.keys import DEVNET_MNEMONIC
from consensus.networks import REGTEST
from consensus.types import KIND_CLAIM, KIND_FRAUD, KIND_OFFER, ClaimPayload, FraudPayload, OfferPayload
from pouw.commit import commit_pair
from pouw.jobs import compute_job_id
from pouw.tiles import commit_product, pad_product, tile_of
from tests.functional.harness import ROOT, NodeProcess, wait_until
from wallet.hd import HDWallet
from wallet.market import MarketError, market_params, send_job_tx
from wallet.rpc import RpcClient

COIN = 10**8
REWARD = 2 * COIN  # bond = deposit = reward on regtest (bond_bp = deposit_bp = 10000)
M, K, N = 40, 300, 24  # padded 48 x 384 x 32: ragged last tiles
W = REGTEST.job_window
HD = HDWallet(DEVNET_MNEMONIC)
CLIENT, CLAIMANT, MINER = (HD.address(i, REGTEST) for i in range(3))
SINK = encode_address(b"\x5a" * 20, REGTEST.hrp)
PASS = "functional test passphrase"


@dataclass
class Setup:
    node: NodeProcess
    tmp: Path
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray

    def wallet(self, *args, check: int | None = 0, json_out: bool = True, node: NodeProcess | None = None):
        r = subprocess.run(self.wallet_cmd(*args, json_out=json_out, node=node), cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        if check is not None:
            assert r.returncode == check, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
        return json.loads(r.stdout) if json_out and r.returncode == 0 else r

    def wallet_cmd(self, *args, json_out: bool = True, node: NodeProcess | None = None) -> list[str]:
        return [sys.executable, "-m", "wallet", "--wallet-dir", str(self.tmp / "wallets"), "--wallet", "dev",
                "--passphrase-file", str(self.tmp / "pass"), "--rpc-url", (node or self.node).url,
                *(["--json"] if json_out else []), *args]

    def popen(self, *args, node: NodeProcess | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.wallet_cmd(*args, node=node), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def mine(self, blocks: int = 1, node: NodeProcess | None = None) -> int:
        n = node or self.node
        n.rpc("generatetoaddress", blocks, SINK)
        return n.rpc("getblockcount")

    def balance(self, address: str) -> int:
        return self.node.rpc("getaccount", address)["balance"]

    def submit(self, *extra, node: NodeProcess | None = None) -> dict:
        """``job submit --reward``: it waits for the offer's block (mined here once the offer is pending)."""
        n = node or self.node
        proc = self.popen("job", "submit", str(self.tmp / "A.npy"), str(self.tmp / "B.npy"), "--reward", "2",
                          "--timeout", "60", *extra, node=n)
        wait_until(lambda: n.rpc("getrawmempool") or proc.poll() is not None, timeout=30, what="the offer")
        assert proc.poll() is None, proc.communicate()
        self.mine(node=n)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return json.loads(out)

    def offer(self, offer_id: str, node: NodeProcess | None = None) -> dict:
        return (node or self.node).rpc("getjoboffer", offer_id)

    def fees(self, address: str, since: int) -> int:
        """Fees paid by ``address`` in the blocks above height ``since``."""
        total = 0
        for h in range(since + 1, self.node.rpc("getblockcount") + 1):
            block = self.node.rpc("getblock", self.node.rpc("getblockhash", h), 2)
            total += sum(t["fee"] for t in block["tx"][1:] if t.get("from") == address)
        return total

    def verify(self, node: NodeProcess | None = None) -> None:
        report = (node or self.node).rpc("verifychain")
        assert report["ok"], report["problems"]
        assert report["records_checked"] >= 0


def make_setup(tmp: Path, node: NodeProcess) -> Setup:
    rng = np.random.default_rng(16)
    a = rng.integers(-64, 64, (M, K), dtype=np.int8)
    b = rng.integers(-64, 64, (K, N), dtype=np.int8)
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    for name, x in (("A", a), ("B", b), ("C", c)):
        np.save(tmp / f"{name}.npy", x)
    bad = c.copy()
    bad[37, 21] += 1  # in the last, ragged tile (2, 1)
    np.save(tmp / "bad.npy", bad)
    s = Setup(node, tmp, a, b, c)
    return s


def restore_wallets(tmp: Path, url: str) -> None:
    (tmp / "pass").write_text(PASS + "\n")
    (tmp / "mnemonic").write_text(DEVNET_MNEMONIC + "\n")
    for name in ("dev", "miner"):
        subprocess.run([sys.executable, "-m", "wallet", "--wallet-dir", str(tmp / "wallets"), "--wallet", name,
                        "--passphrase-file", str(tmp / "pass"), "--network", "regtest", "--rpc-url", url, "restore",
                        "--mnemonic-file", str(tmp / "mnemonic"), "--addresses", "3"], cwd=ROOT, check=True,
                       capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """One regtest node without a claim key: claims come from the wallet (``job claim``) or the test."""
    tmp = tmp_path_factory.mktemp("market")
    restore_wallets(tmp, "http://127.0.0.1:1/")
    node = NodeProcess(tmp / "node").start()
    yield make_setup(tmp, node)
    node.stop()


@pytest.fixture(scope="module")
def claiming(tmp_path_factory):
    """A regtest node whose miner claims paid jobs with address 2 of the devnet mnemonic."""
    tmp = tmp_path_factory.mktemp("claiming")
    restore_wallets(tmp, "http://127.0.0.1:1/")
    node = NodeProcess(tmp / "node", "--claim-key", str(tmp / "wallets" / "miner.json"), "--claim-passphrase-file",
                       str(tmp / "pass"), "--claim-index", "2").start()
    yield make_setup(tmp, node)
    node.stop()


def client_api(s: Setup, node: NodeProcess | None = None):
    client = RpcClient((node or s.node).url)
    params, _ = market_params(client, REGTEST)
    return client, params


def test_honest_path_a_claim_key_miner_is_paid_on_accept(claiming):
    s = claiming
    h0 = s.node.rpc("getblockcount")
    start = {a: s.balance(a) for a in (CLIENT, MINER)}
    out = s.submit()
    offer_id = out["offer_id"]
    assert out["client"] == CLIENT and out["bond"] == out["deposit"] == REWARD
    assert s.offer(offer_id)["status"] == "open"
    # The next block takes the queued paid job; the miner claims it with its product's root_C.
    s.mine()
    wait_until(lambda: s.offer(offer_id)["pending"] or s.offer(offer_id)["status"] == "claimed", timeout=30,
               what="the miner's claim")
    s.mine(2)  # the claim has 2 confirmations: the product is served
    offer = s.offer(offer_id)
    assert offer["status"] == "claimed" and offer["claimant"] == MINER
    wait_until(lambda: (s.offer(offer_id).get("product") or {}).get("served"), timeout=30, what="the product")
    got = s.wallet("job", "result", offer_id, "--out", str(s.tmp / "got.npy"), "--auto")
    assert got["freivalds"] == "passed" and got["sent"]["kind"] == "accept"
    assert np.array_equal(np.load(s.tmp / "got.npy"), s.c)
    s.mine()
    final = s.offer(offer_id)
    assert final["status"] == "accepted" and final["live"] is False and final["final_txid"] == got["sent"]["txid"]
    # Section 11: the claimant gets reward + bond (it bonded the bond), the client its deposit back.
    assert s.balance(CLIENT) == start[CLIENT] - REWARD - s.fees(CLIENT, h0)
    assert s.balance(MINER) == start[MINER] + REWARD - s.fees(MINER, h0)
    listed = s.wallet("job", "list")
    assert any(row["kind"] == "offer" and row["offer_id"] == offer_id and row["status"] == "accepted" for row in listed)
    s.verify()


def claim_with_wallet(s: Setup, offer_id: str, product: str, index: int = 1) -> dict:
    claim = s.wallet("job", "claim", offer_id, "--product", str(s.tmp / product), "--from-index", str(index))
    assert claim["kind"] == "claim" and claim["from"] == HD.address(index, REGTEST)
    return claim


def test_a_wrong_product_is_proved_and_the_client_gets_half_the_bond(plain):
    s = plain
    h0 = s.node.rpc("getblockcount")
    start = {a: s.balance(a) for a in (CLIENT, CLAIMANT)}
    out = s.submit("--no-queue")  # no miner computes it: the claimant below "computed C elsewhere"
    offer_id = out["offer_id"]
    assert out["job_status"] is None
    claim_with_wallet(s, offer_id, "bad.npy")
    s.mine(2)
    wait_until(lambda: (s.offer(offer_id).get("product") or {}).get("served"), timeout=30, what="the claimed product")
    got = s.wallet("job", "result", offer_id, "--out", str(s.tmp / "wrong.npy"), "--auto", "--a",
                   str(s.tmp / "A.npy"), "--b", str(s.tmp / "B.npy"))
    assert got["freivalds"] == "failed" and got["wrong_tile"] == [2, 1] and got["sent"]["kind"] == "fraud"
    assert not (s.tmp / "wrong.npy").exists()
    s.mine()
    assert s.offer(offer_id)["status"] == "fraud"
    assert s.balance(CLIENT) == start[CLIENT] + REWARD // 2 - s.fees(CLIENT, h0)  # + bond // 2
    assert s.balance(CLAIMANT) == start[CLAIMANT] - REWARD - s.fees(CLAIMANT, h0)  # the whole bond is gone
    s.verify()


def test_a_withheld_product_is_rejected_within_the_window(plain):
    s = plain
    h0 = s.node.rpc("getblockcount")
    start = {a: s.balance(a) for a in (CLIENT, CLAIMANT)}
    offer_id = s.submit()["offer_id"]
    client, params = client_api(s)
    send_job_tx(client, HD.keypair(1), params, KIND_CLAIM, bytes.fromhex(offer_id), ClaimPayload(b"\x77" * 32))
    claim_height = s.mine()
    proc = s.popen("job", "result", offer_id, "--out", str(s.tmp / "never.npy"), "--auto", "--wait", "--margin", "2",
                   "--timeout", "60")
    first = proc.stderr.readline()  # a progress line: it waits (stderr is a pipe, so plain lines)
    assert f"waiting for C (height {claim_height}, reject at {claim_height + W - 2}" in first, first
    s.mine(W - 3)  # one block before the wallet gives up on the product
    for _ in range(W):  # a line per height the wallet saw, up to this one
        line = proc.stderr.readline()
        if f"(height {claim_height + W - 3}," in line or not line:
            break
    assert f"(height {claim_height + W - 3}," in line and proc.poll() is None, line
    s.mine()  # claim height + W - 2: the wallet rejects, and the reject still fits in the window
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    got = json.loads(out)
    assert got["sent"]["kind"] == "reject"
    assert s.node.rpc("getblockcount") == claim_height + W - 2
    s.mine()
    assert s.offer(offer_id)["status"] == "rejected"
    assert s.balance(CLIENT) == start[CLIENT] - 2 * REWARD - s.fees(CLIENT, h0)  # reward and deposit burn
    assert s.balance(CLAIMANT) == start[CLAIMANT] - REWARD - s.fees(CLAIMANT, h0)  # and the bond
    s.verify()


def test_non_zero_padding_the_client_committed_cannot_prove_an_honest_product_wrong(plain):
    """The client commits A and B padded with non-zero entries outside m x n (rows of A below m, columns of
    B right of n); an honest claimant's product (zero there) cannot be proved wrong with them."""
    s = plain
    rng = np.random.default_rng(3)
    m_p, k_p, n_p = padded_dims(M, K, N)
    pa = np.zeros((m_p, k_p), np.int8)
    pa[:M, :K] = s.a
    pa[M:, :] = rng.integers(1, 64, (m_p - M, k_p), dtype=np.int8)
    pa[:M, K:] = rng.integers(1, 64, (M, k_p - K), dtype=np.int8)  # B's rows below k are zero: no effect on m x n
    pb = np.zeros((k_p, n_p), np.int8)
    pb[:K, :N] = s.b
    pb[:K, N:] = rng.integers(1, 64, (K, n_p - N), dtype=np.int8)
    pair = commit_pair(pa, pb)
    job_id = compute_job_id(M, K, N, pair.root_a, pair.root_b)
    client, params = client_api(s)
    tip = s.node.rpc("getblockcount")
    offer = OfferPayload(M, K, N, pair.root_a, pair.root_b, REWARD, REWARD, REWARD, tip + 50)
    offer_id = send_job_tx(client, HD.keypair(0), params, KIND_OFFER, job_id, offer).offer_id
    s.mine()
    c_padded = pad_product(s.c, m_p, n_p)
    product = commit_product(c_padded)
    send_job_tx(client, HD.keypair(1), params, KIND_CLAIM, bytes.fromhex(offer_id), ClaimPayload(product.root_c))
    s.mine()
    for i, j in ((2, 0), (0, 1), (2, 1)):  # tiles that reach into the padding
        a_blk = pa[16 * i : 16 * i + 16].tobytes()
        bt_blk = np.ascontiguousarray(pb[:, 16 * j : 16 * j + 16].T).tobytes()
        raw = pa[16 * i : 16 * i + 16].astype(np.int64) @ pb[:, 16 * j : 16 * j + 16].astype(np.int64)
        assert np.any(raw != c_padded[16 * i : 16 * i + 16, 16 * j : 16 * j + 16])  # without the rule: "wrong"
        fraud = FraudPayload(i, j, tile_of(c_padded, i, j), tuple(product.path(i, j)), a_blk,
                             tuple(pair.path_a(i)), bt_blk, tuple(pair.path_b(j)))
        with pytest.raises(MarketError, match="right"):
            send_job_tx(client, HD.keypair(0), params, KIND_FRAUD, bytes.fromhex(offer_id), fraud)
    assert s.offer(offer_id)["status"] == "claimed" and s.offer(offer_id)["pending"] == []
    r = s.wallet("job", "reject", offer_id)  # leave nothing live for the next tests
    assert r["kind"] == "reject"
    s.mine()
    s.verify()


def test_reject_burns_everything_at_stake(plain):
    s = plain
    h0 = s.node.rpc("getblockcount")
    start = {a: s.balance(a) for a in (CLIENT, CLAIMANT)}
    offer_id = s.submit()["offer_id"]
    claim_with_wallet(s, offer_id, "C.npy")
    s.mine()
    assert s.wallet("job", "reject", offer_id)["kind"] == "reject"
    s.mine()
    assert s.offer(offer_id)["status"] == "rejected"
    assert s.balance(CLIENT) == start[CLIENT] - 2 * REWARD - s.fees(CLIENT, h0)
    assert s.balance(CLAIMANT) == start[CLAIMANT] - REWARD - s.fees(CLAIMANT, h0)
    s.verify()


def test_settle_after_the_window_pays_the_claimant(plain):
    s = plain
    h0 = s.node.rpc("getblockcount")
    start = {a: s.balance(a) for a in (CLIENT, CLAIMANT)}
    offer_id = s.submit()["offer_id"]
    claim_with_wallet(s, offer_id, "C.npy")
    claim_height = s.mine()
    s.mine(W - 1)  # the next block is claim height + W: still in the window
    r = s.wallet("job", "settle", offer_id, check=1, json_out=False)
    assert f"a settle becomes possible in the block at height {claim_height + W + 1}" in r.stderr
    s.mine()
    listed = {row["offer_id"]: row for row in s.wallet("job", "list") if row["kind"] == "offer"}
    assert listed[offer_id]["settle_height"] == claim_height + W + 1
    sent = s.wallet("job", "settle", offer_id, "--from-index", "1")
    assert sent["kind"] == "settle" and sent["from"] == CLAIMANT
    s.mine()
    assert s.offer(offer_id)["status"] == "settled"
    assert s.balance(CLIENT) == start[CLIENT] - REWARD - s.fees(CLIENT, h0)
    assert s.balance(CLAIMANT) == start[CLAIMANT] + REWARD - s.fees(CLAIMANT, h0)
    s.verify()


def test_refund_after_the_deadline(plain):
    s = plain
    h0 = s.node.rpc("getblockcount")
    start = s.balance(CLIENT)
    out = s.submit("--deadline", "3")
    deadline = out["deadline"]
    r = s.wallet("job", "refund", out["offer_id"], check=1, json_out=False)
    assert f"a refund becomes possible in the block at height {deadline + 1}" in r.stderr
    s.mine(deadline - s.node.rpc("getblockcount"))
    sent = s.wallet("job", "refund", out["job_id"])  # the job id names its one live offer
    assert sent["kind"] == "refund" and sent["offer_id"] == out["offer_id"]
    s.mine()
    assert s.offer(out["offer_id"])["status"] == "refunded"
    assert s.balance(CLIENT) == start - s.fees(CLIENT, h0)
    s.verify()


def test_two_claims_race_and_exactly_one_wins_on_every_node(tmp_path):
    restore_wallets(tmp_path, "http://127.0.0.1:1/")
    first = NodeProcess(tmp_path / "first", p2p=True).start()
    second = NodeProcess(tmp_path / "second", "--bootstrap", first.p2p[0], p2p=True).start()
    try:
        wait_until(lambda: first.rpc("getpeerinfo") and second.rpc("getpeerinfo"), timeout=60, what="the peers")
        s = make_setup(tmp_path, first)
        offer_id = s.submit()["offer_id"]
        wait_until(lambda: second.rpc("getblockcount") == first.rpc("getblockcount"), timeout=30, what="the block")
        assert s.offer(offer_id, node=second)["status"] == "open"
        h0 = first.rpc("getblockcount")
        start = {a: s.balance(a) for a in (CLAIMANT, MINER)}
        procs = [s.popen("job", "claim", offer_id, "--product", str(tmp_path / "C.npy"), "--from-index", str(i),
                         node=n) for i, n in ((1, first), (2, second))]
        results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
        assert any(rc == 0 for _, _, rc in results), results
        s.mine(node=first)
        wait_until(lambda: second.rpc("getbestblockhash") == first.rpc("getbestblockhash"), timeout=30,
                   what="both nodes on one tip")
        s.mine(node=second)  # the loser's claim, if the second node still held it, must not make it in
        wait_until(lambda: second.rpc("getbestblockhash") == first.rpc("getbestblockhash"), timeout=30,
                   what="both nodes on one tip again")
        offers = [s.offer(offer_id, node=n) for n in (first, second)]
        assert offers[0]["status"] == offers[1]["status"] == "claimed"
        assert offers[0]["claimant"] == offers[1]["claimant"] in (CLAIMANT, MINER)
        assert offers[0]["claim_txid"] == offers[1]["claim_txid"]
        # The winner paid its bond; the loser paid nothing (its claim, if a node took it, was never mined).
        winner = offers[0]["claimant"]
        loser = MINER if winner == CLAIMANT else CLAIMANT
        assert s.balance(winner) == start[winner] - REWARD - s.fees(winner, h0)
        assert s.balance(loser) == start[loser] and s.fees(loser, h0) == 0
        for n in (first, second):
            assert offers[0]["claim_txid"] not in n.rpc("getrawmempool")
        refused = [err for _, err, rc in results if rc != 0]
        assert all("claim" in err for err in refused), refused
        for n in (first, second):
            s.verify(node=n)
    finally:
        second.stop()
        first.stop()
