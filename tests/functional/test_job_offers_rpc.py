"""A paid job's offer, claim and accept through a real regtest pouwd's RPC: the mempool admits job transactions
(one pending per offer), blocks carry them, getjoboffer/listjoboffers follow them, balances move exactly as
section 11 says, and verifychain finds value conserved."""

from __future__ import annotations

import pytest

from consensus.address import encode_address
from consensus.codec import encode_tx
from consensus.jobmarket import compute_offer_id, min_bond, min_deposit
from consensus.keys import devnet_keypairs
from consensus.networks import REGTEST
from consensus.tx import compute_tx_id
from consensus.types import KIND_ACCEPT, KIND_CLAIM, KIND_FRAUD, KIND_OFFER, ClaimPayload
from pouw.tiles import commit_product
from tests.functional.harness import RpcFailure, wait_until
from tests.support.jobmarket import job_tx, make_job

KEYS = devnet_keypairs(6)
CLIENT, CLAIMANT, RIVAL, MINER = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
JOB = make_job(20, 300, 20)
REWARD = 5 * 10**8


def addr(key) -> str:
    return encode_address(key.address, REGTEST.hrp)


def send(node, tx) -> str:
    txid = node.rpc("sendrawtransaction", encode_tx(tx).hex())
    assert txid == compute_tx_id(tx).hex()
    return txid


def mine_one(node) -> None:
    height = node.rpc("getblockcount")
    node.rpc("generatetoaddress", 1, addr(MINER))
    wait_until(lambda: node.rpc("getblockcount") == height + 1, what="the block")


def balance(node, key) -> int:
    return node.rpc("getaccount", addr(key))["balance"]


def test_offer_claim_accept_over_rpc_moves_balances_exactly(node_factory):
    node = node_factory().start()
    info = node.rpc("getblockchaininfo")["job_market"]
    assert info["window"] == REGTEST.job_window and info["max_job_k"] == REGTEST.max_job_k
    client0, claimant0 = balance(node, CLIENT), balance(node, CLAIMANT)

    height = node.rpc("getblockcount")
    probe = JOB.offer(REWARD, 0, 0, height + 50)
    bond = min_bond(probe, REGTEST)
    deposit = min_deposit(JOB.offer(REWARD, 0, bond, 0), REGTEST)
    offer_tx = job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(REWARD, deposit, bond, height + 50),
                      params=REGTEST)
    offer_id = compute_offer_id(CLIENT.address, 0)
    offer_txid = send(node, offer_tx)
    with pytest.raises(RpcFailure) as e:  # the offer is not on chain yet: a claim of it is refused, not held
        send(node, job_tx(CLAIMANT, 0, KIND_CLAIM, offer_id, ClaimPayload(b"\x01" * 32), params=REGTEST))
    assert e.value.code == -26 and "job-record" in str(e.value)
    mine_one(node)

    offer = node.rpc("getjoboffer", offer_id.hex())
    assert offer["status"] == "open" and offer["live"] and offer["offer_txid"] == offer_txid
    assert offer["offer_height"] == height + 1 and offer["client"] == addr(CLIENT)
    assert (offer["reward"], offer["deposit"], offer["bond"]) == (REWARD, deposit, bond)
    assert [o["offer_id"] for o in node.rpc("listjoboffers")] == [offer_id.hex()]
    assert node.rpc("listjoboffers", "claimed") == []
    assert balance(node, CLIENT) == client0 - offer_tx.body.fee - REWARD - deposit

    claim = job_tx(CLAIMANT, 0, KIND_CLAIM, offer_id, ClaimPayload(b"\x07" * 32), params=REGTEST)
    claim_txid = send(node, claim)
    with pytest.raises(RpcFailure) as e:  # one pending claim per offer, whatever the fee
        send(node, job_tx(RIVAL, 0, KIND_CLAIM, offer_id, ClaimPayload(b"\x08" * 32), params=REGTEST,
                          fee=10**7))
    assert e.value.code == -26 and "offer-busy" in str(e.value)
    assert node.rpc("getjoboffer", offer_id.hex())["pending"] == [claim_txid]
    mine_one(node)

    offer = node.rpc("getjoboffer", offer_id.hex())
    assert offer["status"] == "claimed" and offer["claimant"] == addr(CLAIMANT) and offer["claim_txid"] == claim_txid
    assert offer["window_end"] == offer["claim_height"] + REGTEST.job_window and offer["pending"] == []
    assert balance(node, CLAIMANT) == claimant0 - claim.body.fee - bond
    with pytest.raises(RpcFailure) as e:  # only the client accepts
        send(node, job_tx(RIVAL, 0, KIND_ACCEPT, offer_id, None, params=REGTEST))
    assert e.value.code == -26 and "job-sender" in str(e.value)

    accept = job_tx(CLIENT, 1, KIND_ACCEPT, offer_id, None, params=REGTEST)
    accept_txid = send(node, accept)
    mine_one(node)

    offer = node.rpc("getjoboffer", offer_id.hex())
    assert offer["status"] == "accepted" and not offer["live"] and offer["final_txid"] == accept_txid
    assert [o["status"] for o in node.rpc("listjoboffers", "accepted")] == ["accepted"]
    assert balance(node, CLIENT) == client0 - offer_tx.body.fee - REWARD - accept.body.fee
    assert balance(node, CLAIMANT) == claimant0 - claim.body.fee + REWARD
    report = node.rpc("verifychain")
    assert report["ok"], report["problems"]
    supply = report["supply"]
    assert supply["escrow"] == 0 and supply["burned"] == 0
    assert supply["balances"] == supply["allocations"] + supply["coinbase"] - supply["fees"]
    with pytest.raises(RpcFailure) as e:
        node.rpc("getjoboffer", "00" * 32)
    assert e.value.code == -48


def test_a_largest_fraud_proof_crosses_the_network_and_refunds_the_client(node_factory):
    """A fraud tx at K_job (about 527 KB, one gossip batch of its own) reaches a peer's mempool and its block
    ends the offer on both nodes: client refunded plus half the bond, the other half burned."""
    a = node_factory("a", p2p=True).start()
    b = node_factory("b", "--bootstrap", a.p2p[0], p2p=True).start()
    wait_until(lambda: len(b.rpc("getpeerinfo")) >= 1, timeout=60, what="b to peer with a")
    job = make_job(16, REGTEST.max_job_k, 16)

    def mine_both() -> None:
        mine_one(a)
        wait_until(lambda: b.rpc("getbestblockhash") == a.rpc("getbestblockhash"), timeout=30, what="b's tip")

    height = a.rpc("getblockcount")
    probe = job.offer(REWARD, 0, 0, height + 50)
    bond = min_bond(probe, REGTEST)
    deposit = min_deposit(job.offer(REWARD, 0, bond, 0), REGTEST)
    offer_tx = job_tx(CLIENT, 0, KIND_OFFER, job.job_id, job.offer(REWARD, deposit, bond, height + 50),
                      params=REGTEST)
    offer_id = compute_offer_id(CLIENT.address, 0)
    send(a, offer_tx)
    mine_both()
    wrong = job.product()
    wrong[5, 6] += 1
    c_padded = job.padded_product(wrong)
    product = commit_product(c_padded)
    send(a, job_tx(CLAIMANT, 0, KIND_CLAIM, offer_id, ClaimPayload(product.root_c), params=REGTEST))
    mine_both()
    client_before = balance(b, CLIENT)
    fraud = job_tx(RIVAL, 0, KIND_FRAUD, offer_id, job.fraud(c_padded, 0, 0, product), params=REGTEST)
    size = len(encode_tx(fraud))
    assert size > 500_000
    txid = send(a, fraud)
    wait_until(lambda: txid in b.rpc("getrawmempool"), timeout=30, what="the fraud tx to reach b")
    mine_both()
    for node in (a, b):
        offer = node.rpc("getjoboffer", offer_id.hex())
        assert offer["status"] == "fraud" and offer["final_txid"] == txid and not offer["live"]
        report = node.rpc("verifychain")
        assert report["ok"], report["problems"]
        assert report["supply"]["burned"] == bond - bond // 2
    assert balance(b, CLIENT) == client_before + REWARD + deposit + bond // 2


def test_a_reorg_across_offer_claim_and_fraud_restores_every_balance(node_factory):
    """Offer, claim and fraud mined on one node, then a heavier branch from another: every balance is back to
    what it was before the offer, no record or burn remains, verifychain passes; the offer (valid again on
    the new branch) returns to the mempool and is mined again, the claim and the fraud proof (their offer
    is no longer on chain) are not."""
    a = node_factory("a", p2p=True).start()
    b = node_factory("b", p2p=True).start()
    parties = (CLIENT, CLAIMANT, RIVAL)
    before = {k.address: balance(a, k) for k in parties}
    assert before == {k.address: balance(b, k) for k in parties}

    height = a.rpc("getblockcount")
    bond = min_bond(JOB.offer(REWARD, 0, 0, height + 50), REGTEST)
    deposit = min_deposit(JOB.offer(REWARD, 0, bond, 0), REGTEST)
    offer_tx = job_tx(CLIENT, 0, KIND_OFFER, JOB.job_id, JOB.offer(REWARD, deposit, bond, height + 50),
                      params=REGTEST)
    offer_id = compute_offer_id(CLIENT.address, 0)
    send(a, offer_tx)
    mine_one(a)
    wrong = JOB.product()
    wrong[3, 4] -= 1
    c_padded = JOB.padded_product(wrong)
    product = commit_product(c_padded)
    claim_txid = send(a, job_tx(CLAIMANT, 0, KIND_CLAIM, offer_id, ClaimPayload(product.root_c), params=REGTEST))
    mine_one(a)
    fraud_txid = send(a, job_tx(RIVAL, 0, KIND_FRAUD, offer_id, JOB.fraud(c_padded, 0, 0, product),
                                params=REGTEST))
    mine_one(a)
    assert a.rpc("getjoboffer", offer_id.hex())["status"] == "fraud"
    assert balance(a, CLIENT) == before[CLIENT.address] - offer_tx.body.fee + bond // 2
    assert a.rpc("verifychain")["supply"]["burned"] == bond - bond // 2

    b.rpc("generatetoaddress", 5, addr(MINER))  # a heavier branch without any of it
    b_tip = b.rpc("getbestblockhash")
    a.rpc("addnode", b.p2p[0], "onetry")
    wait_until(lambda: a.rpc("getbestblockhash") == b_tip, timeout=60, what="a to reorganise onto b's branch")

    assert {k.address: balance(a, k) for k in parties} == before
    report = a.rpc("verifychain")
    assert report["ok"], report["problems"]
    assert report["records_checked"] == 0 and report["supply"]["escrow"] == 0 and report["supply"]["burned"] == 0
    assert report["supply"]["balances"] == report["supply"]["allocations"] + report["supply"]["coinbase"] \
        - report["supply"]["fees"]
    pool = a.rpc("getrawmempool")
    assert compute_tx_id(offer_tx).hex() in pool and claim_txid not in pool and fraud_txid not in pool

    mine_one(a)
    offer = a.rpc("getjoboffer", offer_id.hex())
    assert offer["status"] == "open" and offer["live"] and offer["claimant"] is None
    assert balance(a, CLIENT) == before[CLIENT.address] - offer_tx.body.fee - REWARD - deposit
    assert balance(a, CLAIMANT) == before[CLAIMANT.address] and balance(a, RIVAL) == before[RIVAL.address]
    report = a.rpc("verifychain")
    assert report["ok"], report["problems"]
    assert report["supply"]["escrow"] == REWARD + deposit
