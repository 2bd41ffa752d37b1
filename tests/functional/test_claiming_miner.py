"""Claim-key miners and claimed products on real pouwd processes (section 11, the honest path).

Two peered devnet nodes: A, a client that does not mine, offers a reward for ``A @ B`` and uploads the matrices;
B mines with ``--claim-key``, computes the job, claims it with the product's ``root_C`` and serves the product only
once the claim has two confirmations; A then holds the product as the offer's, with ``root_c_ok`` and
``freivalds_ok``. Devnet, not regtest, for this one: regtest mines tens of blocks a second here, so its window of
ten blocks would close before a product crossed the network; devnet's blocks (about five seconds apart) let the
test see that the product arrives after the claim has confirmed. On one regtest node: a claim-key miner settles
its claim once the window has passed; a product handed in with ``submitmatmulresult`` is claimed and withheld until
the claim confirms; ``PUT /blobs?claim_of=`` holds an uploaded product until a claim with its ``root_C`` has two
confirmations; a wrong passphrase or a missing keystore stops the node with the reason."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from consensus.address import encode_address
from consensus.codec import encode_tx
from consensus.jobmarket import compute_offer_id
from consensus.keys import DEVNET_MNEMONIC, keypair_from_mnemonic
from consensus.networks import DEVNET, REGTEST
from consensus.types import KIND_OFFER
from node.claimer import build_claim, build_settle
from tests.functional.harness import RpcFailure, wait_until
from tests.support.jobmarket import job_tx, make_job
from wallet.keystore import Secret, create

CLIENT = keypair_from_mnemonic(DEVNET_MNEMONIC, index=0)
CLAIMANT = keypair_from_mnemonic(DEVNET_MNEMONIC, index=1)
REWARD = 1_000_000


def npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def offer_or_none(node, offer_id: str) -> dict | None:
    """``getjoboffer``, or None while the node does not know the offer (-48)."""
    try:
        return node.rpc("getjoboffer", offer_id)
    except RpcFailure as e:
        if e.code != -48:
            raise
        return None


def test_a_claim_key_miner_claims_a_paid_job_and_serves_the_product_after_the_claim_confirms(node_factory, tmp_path):
    client = node_factory("client", network="devnet", p2p=True).start()
    miner = node_factory("claimer", "--connect", client.p2p[0], "--mine", *write_claim_key(tmp_path, "devnet"),
                         network="devnet", p2p=True).start()
    wait_until(lambda: client.rpc("getpeerinfo") and miner.rpc("getpeerinfo"), timeout=60, what="the two peered")
    claim_address = encode_address(CLAIMANT.address, DEVNET.hrp)
    assert miner.rpc("getmininginfo")["claim"]["address"] == claim_address
    assert client.rpc("getmininginfo")["claim"]["address"] is None

    # The offer first (the client computes the roots itself), then the matrices.
    job = make_job(24, 200, 20)
    height = client.rpc("getblockcount")
    nonce = client.rpc("getaccount", encode_address(CLIENT.address, DEVNET.hrp))["next_nonce"]
    offer = job_tx(CLIENT, nonce, KIND_OFFER, job.job_id, job.offer(REWARD, REWARD, REWARD, height + 600))
    client.rpc("sendrawtransaction", encode_tx(offer).hex())
    offer_id = compute_offer_id(CLIENT.address, nonce).hex()
    wait_until(lambda: offer_or_none(miner, offer_id) is not None, timeout=90, what="the offer mined")
    hashes = [json.loads(client.http("PUT", "/blobs", npy(x))[1])["hash"] for x in (job.a, job.b)]
    assert client.rpc("submitmatmuljob", *hashes)["job_id"] == job.job_id.hex()

    seen: list[tuple[dict, int]] = []

    def product_at_client():
        info = offer_or_none(client, offer_id)
        if info is None or info["product"] is None:
            return False
        seen.append((info, client.rpc("getblockcount")))
        return True

    wait_until(product_at_client, timeout=120, interval=0.1, what="the claimed product at the client")
    info, tip = seen[0]
    # It came only once the claim had two confirmations (the claim's block and one more).
    assert info["claim_height"] is not None and tip >= info["claim_height"] + 1
    assert info["claimant"] == claim_address and info["root_c"] is not None
    product = info["product"]
    assert product["root_c_ok"] is True and product["freivalds_ok"] is True and product["source"] == "peer"
    assert product["root_c"] == info["root_c"]
    status, body = client.http("GET", f"/blobs/{product['blob']}")
    assert status == 200
    assert np.array_equal(np.load(io.BytesIO(body), allow_pickle=False), job.product())
    assert client.rpc("getmatmuljob", job.job_id.hex())["status"] == "done"

    at_miner = miner.rpc("getjoboffer", offer_id)["product"]
    assert at_miner["source"] == "mined" and at_miner["served"] is True and at_miner["blob"] == product["blob"]
    claim = miner.rpc("getmininginfo")["claim"]
    assert claim["claims_sent"] == 1
    wait_until(lambda: miner.rpc("getmininginfo")["claim"]["claims_won"] == 1, timeout=30, what="the claim counted")
    assert client.rpc("verifychain")["ok"] and miner.rpc("verifychain")["ok"]


def write_claim_key(tmp_path, network: str):
    """A keystore of the devnet mnemonic (its index 1 is prefunded on devnet and regtest) and its passphrase file."""
    ks = create(tmp_path, f"claims-{network}", network, Secret(DEVNET_MNEMONIC), "claim pass", scrypt_n=1 << 4)
    passfile = tmp_path / f"{network}.pass"
    passfile.write_text("claim pass\n")
    return ["--claim-key", str(ks.path), "--claim-passphrase-file", str(passfile), "--claim-index", "1"]


def test_a_claim_key_miner_settles_its_claim_after_the_window(node_factory, tmp_path):
    """Regtest mines tens of blocks a second: the window (ten blocks) passes at once and the claimant settles."""
    node = node_factory("settler", "--mine", *write_claim_key(tmp_path, "regtest")).start()
    claimant = encode_address(CLAIMANT.address, REGTEST.hrp)
    before = node.rpc("getaccount", claimant)["balance"]
    job = make_job(20, 100, 12)
    nonce = node.rpc("getaccount", encode_address(CLIENT.address, REGTEST.hrp))["next_nonce"]
    height = node.rpc("getblockcount")
    offer = job_tx(CLIENT, nonce, KIND_OFFER, job.job_id, job.offer(REWARD, REWARD, REWARD, height + 700),
                   params=REGTEST)
    node.rpc("sendrawtransaction", encode_tx(offer).hex())
    offer_id = compute_offer_id(CLIENT.address, nonce).hex()
    wait_until(lambda: offer_or_none(node, offer_id) is not None, timeout=30, what="the offer mined")
    hashes = [json.loads(node.http("PUT", "/blobs", npy(x))[1])["hash"] for x in (job.a, job.b)]
    node.rpc("submitmatmuljob", *hashes)
    wait_until(lambda: node.rpc("getjoboffer", offer_id)["status"] == "settled", timeout=60, what="the settle")
    info = node.rpc("getjoboffer", offer_id)
    assert info["claimant"] == claimant and info["final_height"] > info["claim_height"] + REGTEST.job_window
    assert info["product"]["source"] == "mined" and info["product"]["served"] is True
    claim = node.rpc("getmininginfo")["claim"]
    assert (claim["claims_sent"], claim["claims_won"], claim["settles_sent"], claim["settled"]) == (1, 1, 1, 1)
    fees = (build_claim(CLAIMANT, REGTEST, 0, bytes(32), bytes(32)).body.fee
            + build_settle(CLAIMANT, REGTEST, 0, bytes(32)).body.fee)
    assert node.rpc("getaccount", claimant)["balance"] == before + REWARD - fees  # the bond back, the reward paid
    assert node.rpc("verifychain")["ok"]


def test_a_product_uploaded_for_an_offer_is_served_only_once_a_claim_with_its_root_confirms(node_factory):
    """``PUT /blobs?claim_of=OFFER``: checked from the header, held, withheld until a claim has two confirmations."""
    node = node_factory("uploads").start()
    job = make_job(20, 100, 12)
    nonce = node.rpc("getaccount", encode_address(CLIENT.address, REGTEST.hrp))["next_nonce"]
    offer = job_tx(CLIENT, nonce, KIND_OFFER, job.job_id, job.offer(REWARD, REWARD, REWARD, 500), params=REGTEST)
    node.rpc("sendrawtransaction", encode_tx(offer).hex())
    offer_id = compute_offer_id(CLIENT.address, nonce).hex()
    miner_addr = encode_address(CLIENT.address, REGTEST.hrp)
    node.rpc("generatetoaddress", 1, miner_addr)

    def put(x: np.ndarray, offer: str = offer_id) -> tuple[int, dict]:
        status, body = node.http("PUT", f"/blobs?claim_of={offer}", npy(x))
        return status, json.loads(body)

    c = job.product()
    assert put(c.astype(np.int64))[0] == 400  # not int32
    assert put(c[:, :-1])[0] == 400  # not m x n
    status, body = put(c, "ab" * 32)
    assert status == 404 and body["error"]["code"] == -48
    assert put(c, "xyz")[0] == 400
    status, stored = put(c)
    assert status == 200 and set(stored) == {"blob", "root_c", "h_c"}
    assert node.http("GET", f"/blobs/{stored['blob']}")[0] == 404  # withheld: no claim yet
    product = node.rpc("getjoboffer", offer_id)["product"]
    assert product["source"] == "upload" and product["root_c_ok"] is False and product["freivalds_ok"] is None

    claim = build_claim(CLAIMANT, REGTEST, 0, bytes.fromhex(offer_id), bytes.fromhex(stored["root_c"]))
    node.rpc("sendrawtransaction", encode_tx(claim).hex())
    node.rpc("generatetoaddress", 1, miner_addr)  # the claim's block: one confirmation
    wait_until(lambda: node.rpc("getjoboffer", offer_id)["product"]["root_c_ok"], timeout=10, what="the claim seen")
    assert node.http("GET", f"/blobs/{stored['blob']}")[0] == 404
    node.rpc("generatetoaddress", 1, miner_addr)  # two
    wait_until(lambda: node.http("GET", f"/blobs/{stored['blob']}")[0] == 200, timeout=10, what="the product served")
    status, body = node.http("GET", f"/blobs/{stored['blob']}")
    assert np.array_equal(np.load(io.BytesIO(body), allow_pickle=False), c)
    assert node.rpc("getjoboffer", offer_id)["product"]["served"] is True


def test_a_wrong_claim_passphrase_or_a_missing_keystore_stops_the_node_with_the_reason(node_factory, tmp_path):
    args = write_claim_key(tmp_path, "regtest")
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not the passphrase\n")
    cases = [(["--claim-passphrase-file", str(wrong)], "wrong passphrase for keystore"),
             (["--claim-key", str(tmp_path / "missing.json")], "no keystore file at"),
             (["--claim-confirmations", "11"], "exceeds the challenge window")]
    for i, (override, message) in enumerate(cases):
        node = node_factory(f"bad{i}", *args, *override)
        with pytest.raises(RuntimeError):
            node.start(timeout=30)
        assert node.proc.wait(10) == 1
        err = (tmp_path / f"bad{i}.stderr").read_text()
        assert message in err and "not the passphrase" not in err and "claim pass" not in err


def test_a_product_handed_in_by_an_external_miner_is_claimed_and_withheld_until_the_claim_confirms(node_factory,
                                                                                                   tmp_path):
    """``submitmatmulresult`` on a claim-key node: the roots are recomputed from the blobs, the claim is sent."""
    node = node_factory("external", *write_claim_key(tmp_path, "regtest")).start()
    job = make_job(20, 100, 12)
    nonce = node.rpc("getaccount", encode_address(CLIENT.address, REGTEST.hrp))["next_nonce"]
    offer = job_tx(CLIENT, nonce, KIND_OFFER, job.job_id, job.offer(REWARD, REWARD, REWARD, 500), params=REGTEST)
    node.rpc("sendrawtransaction", encode_tx(offer).hex())
    offer_id = compute_offer_id(CLIENT.address, nonce).hex()
    to = encode_address(CLIENT.address, REGTEST.hrp)
    node.rpc("generatetoaddress", 1, to)
    wait_until(lambda: offer_or_none(node, offer_id) is not None, timeout=10, what="the offer in the book")
    hashes = [json.loads(node.http("PUT", "/blobs", npy(x))[1])["hash"] for x in (job.a, job.b)]
    job_id = node.rpc("submitmatmuljob", *hashes)["job_id"]
    done = node.rpc("submitmatmulresult", job_id, base64.b64encode(npy(job.product())).decode(), "gpu1")
    assert done["status"] == "done"
    info = node.rpc("getjoboffer", offer_id)
    assert len(info["pending"]) == 1 and info["product"]["source"] == "miner"
    assert info["product"]["served"] is False and node.http("GET", f"/blobs/{done['c']}")[0] == 404
    assert node.rpc("getmininginfo")["claim"]["claims_sent"] == 1
    node.rpc("generatetoaddress", 2, to)  # the claim's block and one more
    wait_until(lambda: node.http("GET", f"/blobs/{done['c']}")[0] == 200, timeout=10, what="the product served")
    info = node.rpc("getjoboffer", offer_id)
    assert info["status"] == "claimed" and info["claimant"] == encode_address(CLAIMANT.address, REGTEST.hrp)
    assert info["product"]["root_c_ok"] is True and info["product"]["served"] is True
