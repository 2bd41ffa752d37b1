"""``pouw-wallet job ...`` for paid jobs against an in-process fake node whose rules are the real ones.

``FakeMarket`` answers the calls of the job-market contract (``getjoboffer``, ``getblockchaininfo``'s
``job_market``, ``sendrawtransaction`` of every kind, ``PUT /blobs?claim_of=``) and applies job
transactions with ``consensus.jobmarket.apply_job_tx``, so a transaction the wallet builds wrong is
refused here as a node would refuse it. It is swapped in for the ``RpcClient`` (the ``JobNode`` seam).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest

from consensus.address import decode_address, encode_address
from consensus.codec import decode_tx, encode_tx
from consensus.errors import InvalidTx, JobStateFault
from consensus.jobmarket import apply_job_tx, check_job_tx
from consensus.keys import DEVNET_MNEMONIC
from consensus.networks import REGTEST
from consensus.tx import compute_tx_id, get_sender, validate_tx
from consensus.types import KIND_CLAIM, KIND_OFFER, RECORD_CLAIMED, ClaimPayload, JobTxBody
from pouw.hashing import H
from pouw.tiles import compute_root_c
from wallet import cli
from wallet.hd import HDWallet
from wallet.jobs import compute_local_job_id
from wallet.market import MarketError, check_sendable, plan_offer, send_job_tx
from wallet.rpc import RpcError

PARAMS = REGTEST
HD = HDWallet(DEVNET_MNEMONIC)
ADDR = [HD.address(i, PARAMS) for i in range(3)]
START = 1_000_000 * 10**8
STATUS = {1: "open", 2: "claimed"}
FINAL = {4: "accepted", 5: "rejected", 6: "settled", 7: "refunded", 8: "fraud"}


class FakeMarket:
    """A one-node chain in memory: balances, job records, a mempool mined on demand."""

    def __init__(self) -> None:
        self.height = 5
        self.balances = {decode_address(a, PARAMS.hrp): START for a in ADDR}
        self.nonces: dict[bytes, int] = {}
        self.records: dict = {}
        self.info: dict[bytes, dict] = {}
        self.pending: list = []
        self.mined: list = []
        self.blobs: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.products: dict[bytes, str] = {}
        self.burned = 0
        self.calls: list[str] = []

    # --- the ledger protocol of apply_job_tx ---
    def balance(self, address):
        return self.balances.get(address, 0)

    def debit(self, address, amount):
        assert self.balances.get(address, 0) >= amount
        self.balances[address] = self.balances.get(address, 0) - amount

    def credit(self, address, amount):
        self.balances[address] = self.balances.get(address, 0) + amount

    def burn(self, amount):
        self.burned += amount

    def get_record(self, offer_id):
        return self.records.get(offer_id)

    def set_record(self, offer_id, record):
        if record is None:
            self.records.pop(offer_id, None)
        else:
            self.records[offer_id] = record

    # --- the node ---
    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.height += 1
            for tx in self.pending:
                sender = get_sender(tx)
                self.debit(sender, tx.body.fee)
                self.nonces[sender] = self.nonces.get(sender, 0) + 1
                body = tx.body
                offer_id = apply_job_tx(self, body, sender, self.height, PARAMS)
                txid = compute_tx_id(tx).hex()
                info = self.info.setdefault(offer_id, {})
                if body.kind == KIND_OFFER:
                    info.update(offer_txid=txid, offer_height=self.height)
                elif body.kind == KIND_CLAIM:
                    info.update(claim_txid=txid, claim_height=self.height)
                else:
                    info.update(final=FINAL[body.kind], final_txid=txid, final_height=self.height,
                                record=info["record"])
                if offer_id in self.records:
                    info["record"] = self.records[offer_id]
            self.mined += self.pending
            self.pending = []

    def offer_json(self, offer_id: bytes) -> dict:
        info = self.info[offer_id]
        r = self.records.get(offer_id) or info["record"]
        live = offer_id in self.records
        claimed = r.status == RECORD_CLAIMED
        product = None
        if claimed and offer_id in self.products:
            product = {"blob": self.products[offer_id], "root_c_ok": True, "freivalds_ok": None, "source": "upload"}
        return {"offer_id": offer_id.hex(), "job_id": r.job_id.hex(), "client": encode_address(r.client, PARAMS.hrp),
                "status": STATUS[r.status] if live else info["final"], "live": live, "m": r.m, "k": r.k, "n": r.n,
                "root_a": r.root_a.hex(), "root_b": r.root_b.hex(), "reward": r.reward, "deposit": r.deposit,
                "bond": r.bond, "deadline": r.deadline, "offer_txid": info.get("offer_txid"),
                "offer_height": info.get("offer_height"),
                "claimant": encode_address(r.claimant, PARAMS.hrp) if claimed else None,
                "root_c": r.root_c.hex() if claimed else None, "claim_height": r.claim_height if claimed else None,
                "window_end": r.claim_height + PARAMS.job_window if claimed else None,
                "settle_height": r.claim_height + PARAMS.job_window + 1 if claimed else None,
                "final_txid": info.get("final_txid"), "final_height": info.get("final_height"), "pending": [],
                "product": product}

    def call(self, method, *params, timeout=None):
        self.calls.append(method)
        if method == "getblockchaininfo":
            return {"chain": PARAMS.name, "blocks": self.height, "job_market": {
                "window": PARAMS.job_window, "bond_bp": PARAMS.bond_bp, "deposit_bp": PARAMS.deposit_bp,
                "fraud_fee_mult": PARAMS.fraud_fee_mult, "min_fee_per_byte": PARAMS.min_fee_per_byte,
                "max_job_lifetime": PARAMS.max_job_lifetime, "max_job_mn": PARAMS.max_job_mn,
                "max_job_k": PARAMS.max_job_k}}
        if method == "getblockcount":
            return self.height
        if method == "getaccount":
            raw = decode_address(params[0], PARAMS.hrp)
            pending = sum(1 for t in self.pending if get_sender(t) == raw)
            return {"balance": self.balance(raw), "nonce": self.nonces.get(raw, 0),
                    "next_nonce": self.nonces.get(raw, 0) + pending}
        if method == "sendrawtransaction":
            return self.accept_tx(bytes.fromhex(params[0]))
        if method == "getjoboffer":
            oid = bytes.fromhex(params[0])
            if oid not in self.info:
                raise RpcError(-48, "Offer not found")
            return self.offer_json(oid)
        if method == "listjoboffers":
            return [self.offer_json(o) for o in reversed(list(self.info))]
        if method == "submitmatmuljob":
            a = np.load(io.BytesIO(self.blobs[params[0]]))
            b = np.load(io.BytesIO(self.blobs[params[1]]))
            job_id = compute_local_job_id(a, b).hex()
            self.jobs[job_id] = {"job_id": job_id, "status": "queued", "a": params[0], "b": params[1]}
            return self.jobs[job_id]
        if method == "getmatmuljob":
            if params[0] not in self.jobs:
                raise RpcError(-43, "Job not found")
            offers = [self.offer_json(o) for o in self.info if self.offer_json(o)["job_id"] == params[0]]
            return {**self.jobs[params[0]], "offers": offers}
        if method == "listmatmuljobs":
            return list(self.jobs.values())
        raise RpcError(-32601, f"Method not found: {method}")

    def batch(self, calls):
        return [self.call(m, *p) for m, p in calls]

    def accept_tx(self, raw: bytes) -> str:
        tx = decode_tx(raw)
        try:
            validate_tx(tx, PARAMS)
            assert isinstance(tx.body, JobTxBody)
            sender = get_sender(tx)
            want = self.nonces.get(sender, 0) + sum(1 for t in self.pending if get_sender(t) == sender)
            if tx.body.nonce != want:
                raise RpcError(-26, f"bad nonce: expected {want}")
            check_job_tx(tx.body, sender, self.height + 1, PARAMS, self.records.get)
        except (InvalidTx, JobStateFault) as e:
            raise RpcError(-26, f"{type(e).__name__}: {e}") from None
        self.pending.append(tx)
        return compute_tx_id(tx).hex()

    def put_blob(self, data, *, product_of=None, claim_of=None):
        digest = H(data).hex()
        self.blobs[digest] = data
        if claim_of is not None:
            oid = bytes.fromhex(claim_of)
            r = self.records[oid]
            c = np.load(io.BytesIO(data))
            self.products[oid] = digest
            m_p, n_p = -(-r.m // 16) * 16, -(-r.n // 16) * 16
            return {"blob": digest, "root_c": compute_root_c(c, m_p, n_p).hex(), "h_c": "00" * 32}
        return {"hash": digest}

    def get_blob(self, digest, *, max_bytes=None):
        data = self.blobs[digest]
        assert max_bytes is None or len(data) <= max_bytes
        return data


@pytest.fixture
def market(tmp_path, monkeypatch, fast_scrypt):
    for var in ("POUW_WALLET_DIR", "POUW_WALLET", "POUW_RPC_URL", "POUW_NETWORK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fake = FakeMarket()
    monkeypatch.setattr(cli.Context, "client", property(lambda self: fake))
    # Each poll of a waiting command is a block: the chain moves as the wallet waits.
    monkeypatch.setattr("wallet.job_commands.time.sleep", lambda _s: fake.mine())
    (tmp_path / "pass").write_text("pass phrase\n")
    (tmp_path / "mnemonic").write_text(DEVNET_MNEMONIC + "\n")
    rng = np.random.default_rng(5)
    a = rng.integers(-64, 64, (40, 300), dtype=np.int8)
    b = rng.integers(-64, 64, (300, 24), dtype=np.int8)
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    np.save(tmp_path / "C.npy", c)
    bad = c.copy()
    bad[39, 23] += 1  # the last, ragged tile
    np.save(tmp_path / "bad.npy", bad)
    fake.tmp = tmp_path
    assert wallet(fake, "--network", "regtest", "restore", "--mnemonic-file", str(tmp_path / "mnemonic"),
                  "--addresses", "3") == 0
    return fake


def wallet(fake, *argv):
    t = fake.tmp
    return cli.main(["--wallet-dir", str(t / "wallets"), "--passphrase-file", str(t / "pass"), *argv])


def run_json(fake, capsys, *argv, code=0):
    capsys.readouterr()
    assert wallet(fake, "--json", *argv) == code, capsys.readouterr().err
    out = capsys.readouterr().out
    return json.loads(out) if out.strip() else None


def submit(fake, capsys, *extra):
    t = fake.tmp
    return run_json(fake, capsys, "job", "submit", str(t / "A.npy"), str(t / "B.npy"), "--reward", "2", *extra)


def test_submit_sends_an_offer_with_the_smallest_bond_and_deposit(market, capsys):
    out = submit(market, capsys)
    assert set(out) >= {"job_id", "offer_id", "txid"}
    assert out["reward"] == 2 * 10**8 and out["bond"] == out["deposit"] == 2 * 10**8  # bond_bp = deposit_bp = 10000
    assert out["deadline"] == 5 + 100 and out["client"] == ADDR[0]
    assert out["job_id"] == compute_local_job_id(np.load(market.tmp / "A.npy"), np.load(market.tmp / "B.npy")).hex()
    (tx,) = market.mined  # submit waited for the offer's block, then queued the job
    assert out["fee"] == tx.body.fee == len(encode_tx(tx))  # the rules' minimum: one base unit per byte
    assert out["job_status"] == "queued" and market.calls.index("submitmatmuljob") > market.calls.index(
        "sendrawtransaction")
    offer = market.call("getjoboffer", out["offer_id"])
    assert offer["status"] == "open" and offer["offer_height"] == 6
    client = decode_address(ADDR[0], PARAMS.hrp)
    assert market.balance(client) == START - 4 * 10**8 - out["fee"]


def test_submit_refuses_a_bond_below_the_minimum_and_sends_nothing(market, capsys):
    capsys.readouterr()
    assert wallet(market, "job", "submit", str(market.tmp / "A.npy"), str(market.tmp / "B.npy"), "--reward", "2",
                  "--bond", "1") == 1
    assert "the bond is at least 200000000 base units" in capsys.readouterr().err
    assert market.pending == [] and "sendrawtransaction" not in market.calls


def test_honest_claim_then_result_auto_accepts(market, capsys):
    offer_id = submit(market, capsys)["offer_id"]
    claim = run_json(market, capsys, "job", "claim", offer_id, "--product", str(market.tmp / "C.npy"),
                     "--from-index", "1")
    assert claim["kind"] == "claim" and claim["from"] == ADDR[1]
    market.mine()
    out = run_json(market, capsys, "job", "result", offer_id, "--out", str(market.tmp / "got.npy"), "--auto")
    assert out["freivalds"] == "passed" and out["sent"]["kind"] == "accept" and out["sent"]["from"] == ADDR[0]
    assert np.array_equal(np.load(market.tmp / "got.npy"), np.load(market.tmp / "C.npy"))
    before = {a: market.balance(decode_address(a, PARAMS.hrp)) for a in ADDR[:2]}
    market.mine()
    assert market.call("getjoboffer", offer_id)["status"] == "accepted"
    assert market.balance(decode_address(ADDR[1], PARAMS.hrp)) == before[ADDR[1]] + 4 * 10**8  # reward + bond
    assert market.balance(decode_address(ADDR[0], PARAMS.hrp)) == before[ADDR[0]] + 2 * 10**8 - out["sent"]["fee"]


def test_a_wrong_product_is_proved_wrong_by_result_auto(market, capsys):
    offer_id = submit(market, capsys)["offer_id"]
    run_json(market, capsys, "job", "claim", offer_id, "--product", str(market.tmp / "bad.npy"), "--from-index", "1")
    market.mine()
    out = run_json(market, capsys, "job", "result", offer_id, "--out", str(market.tmp / "got.npy"), "--auto")
    assert out["freivalds"] == "failed" and out["wrong_tile"] == [2, 1] and out["sent"]["kind"] == "fraud"
    assert not (market.tmp / "got.npy").exists()
    client = decode_address(ADDR[0], PARAMS.hrp)
    before = market.balance(client)
    market.mine()
    assert market.call("getjoboffer", offer_id)["status"] == "fraud"
    assert market.balance(client) == before - out["sent"]["fee"] + 2 * 10**8 + 2 * 10**8 + 10**8
    assert market.burned == 10**8


def test_job_fraud_command_and_a_right_product_has_no_fraud(market, capsys):
    offer_id = submit(market, capsys)["offer_id"]
    run_json(market, capsys, "job", "claim", offer_id, "--product", str(market.tmp / "C.npy"), "--from-index", "1")
    market.mine()
    t = market.tmp
    capsys.readouterr()
    assert wallet(market, "job", "fraud", offer_id, "--product", str(t / "C.npy"), "--a", str(t / "A.npy"),
                  "--b", str(t / "B.npy")) == 1
    assert "is right" in capsys.readouterr().err
    assert wallet(market, "job", "fraud", offer_id, "--product", str(t / "bad.npy"), "--a", str(t / "A.npy"),
                  "--b", str(t / "B.npy")) == 1
    assert "not the claimed product" in capsys.readouterr().err
    assert market.pending == []


def test_withheld_product_result_wait_rejects_near_the_window_end(market, capsys, monkeypatch):
    offer_id = submit(market, capsys)["offer_id"]
    key = HD.keypair(1)
    send_job_tx(market, key, PARAMS, KIND_CLAIM, bytes.fromhex(offer_id), ClaimPayload(bytes(range(32))))
    market.mine()
    claim_height = market.height
    ticks = []

    def sleep(_s):  # each poll, a block: the wallet must reject at claim height + W - margin
        ticks.append(market.height)
        market.mine()

    monkeypatch.setattr("wallet.job_commands.time.sleep", sleep)  # as the fixture's, and it counts the polls
    out = run_json(market, capsys, "job", "result", offer_id, "--out", str(market.tmp / "got.npy"), "--auto",
                   "--wait", "--margin", "3")
    assert out["sent"]["kind"] == "reject" and market.height == claim_height + PARAMS.job_window - 3
    market.mine()
    assert market.call("getjoboffer", offer_id)["status"] == "rejected" and market.burned == 6 * 10**8


def test_steps_too_early_say_from_which_height(market, capsys):
    offer_id = submit(market, capsys, "--deadline", "20")["offer_id"]
    capsys.readouterr()
    assert wallet(market, "job", "refund", offer_id) == 1
    assert "a refund becomes possible in the block at height 26 (after the deadline 25); the chain is at height 6" \
        in capsys.readouterr().err
    assert wallet(market, "job", "settle", offer_id) == 1
    assert "needs a claimed offer" in capsys.readouterr().err
    run_json(market, capsys, "job", "claim", offer_id, "--product", str(market.tmp / "C.npy"), "--from-index", "2")
    market.mine()
    assert wallet(market, "job", "settle", offer_id) == 1
    assert f"a settle becomes possible in the block at height {7 + PARAMS.job_window + 1}" in capsys.readouterr().err
    market.mine(PARAMS.job_window)
    assert wallet(market, "job", "reject", offer_id) == 1
    assert "challenge window" in capsys.readouterr().err
    sent = run_json(market, capsys, "job", "settle", offer_id)
    assert sent["kind"] == "settle"
    market.mine()
    assert market.call("getjoboffer", offer_id)["status"] == "settled"


def test_refund_after_the_deadline_and_job_list(market, capsys):
    out = submit(market, capsys, "--deadline", "3")
    market.mine(2)
    listed = run_json(market, capsys, "job", "list")
    assert listed[0]["kind"] == "offer" and listed[0]["status"] == "open" and listed[-1]["kind"] == "job"
    capsys.readouterr()
    assert wallet(market, "job", "list") == 0
    text = capsys.readouterr().out
    assert out["offer_id"] in text and "open" in text and "reward 2.00000000" in text
    # The job id names the offer too, as exactly one live offer carries it.
    sent = run_json(market, capsys, "job", "refund", out["job_id"])
    assert sent["kind"] == "refund" and sent["offer_id"] == out["offer_id"]
    client = decode_address(ADDR[0], PARAMS.hrp)
    before = market.balance(client)
    market.mine()
    assert market.balance(client) == before + 4 * 10**8 - sent["fee"]
    capsys.readouterr()
    assert wallet(market, "job", "refund", out["offer_id"]) == 1
    assert "is final (refunded" in capsys.readouterr().err


def test_only_the_client_may_accept(market, capsys):
    offer_id = submit(market, capsys)["offer_id"]
    offer = market.call("getjoboffer", offer_id)
    with pytest.raises(MarketError, match="only the client"):
        check_sendable(4, {**offer, "status": "claimed", "claim_height": 7}, PARAMS, 8, ADDR[1])


def test_plan_offer_bounds():
    a = np.ones((16, 256), np.int8)
    with pytest.raises(MarketError, match="deadline"):
        plan_offer(a, a.T.copy(), PARAMS, 10, 100, deadline_blocks=PARAMS.max_job_lifetime + 1)
    with pytest.raises(MarketError, match="reward"):
        plan_offer(a, a.T.copy(), PARAMS, 10, 0)
    small = replace(PARAMS, max_job_k=128)
    with pytest.raises(MarketError, match="at most"):
        plan_offer(a, a.T.copy(), small, 10, 100)
    plan = plan_offer(a, a.T.copy(), PARAMS, 10, 100)
    assert plan.payload.bond >= 100 and plan.payload.deposit >= plan.payload.bond  # the fraud-fee floor wins here


def test_result_without_auto_reports_and_sends_nothing_without_a_terminal(market, capsys):
    offer_id = submit(market, capsys)["offer_id"]
    run_json(market, capsys, "job", "claim", offer_id, "--product", str(market.tmp / "bad.npy"), "--from-index", "1")
    market.mine()
    capsys.readouterr()
    assert wallet(market, "job", "result", offer_id, "--out", str(market.tmp / "got.npy")) == 1
    out = capsys.readouterr().out
    assert "WRONG product" in out and "tile (2, 1)" in out and f"pouw-wallet job fraud {offer_id}" in out
    assert market.pending == [] and not (market.tmp / "got.npy").exists()
    status = run_json(market, capsys, "job", "status", offer_id)
    assert status["status"] == "claimed" and status["claimant"] == ADDR[1]


def test_result_of_an_open_offer_without_wait_says_so(market, capsys):
    offer_id = submit(market, capsys)["offer_id"]
    capsys.readouterr()
    assert wallet(market, "job", "result", offer_id, "--out", str(market.tmp / "got.npy")) == 1
    assert "nobody has claimed it yet" in capsys.readouterr().err
