"""The /explorer page, loaded in headless Chromium against a running node: every view shows what it should.

Real pouwd, real RPC, real LevelDB, real browser (``chromium --headless
--dump-dom``): the DOM after the page's script ran, under the CSP the node
sends, is what a user would see.
"""

import base64
import html
import io
import re
import shutil
import subprocess
import urllib.request

import numpy as np
import pytest

from consensus.address import encode_address
from consensus.codec import encode_tx
from consensus.jobmarket import compute_offer_id, min_bond, min_deposit
from consensus.keys import devnet_keypairs
from consensus.networks import REGTEST, get_network
from consensus.tx import make_transfer
from consensus.types import KIND_CLAIM, KIND_OFFER, ClaimPayload
from tests.functional.harness import RpcFailure, wait_until
from tests.support.jobmarket import job_tx, make_job

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--virtual-time-budget=4000"]
MINER = "preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkm"
USER = encode_address(bytes(range(20)), "preg")
"""An address nobody funded at genesis: its history is what the test sends it."""
HOSTILE_MEMO = b'<img src=x id="pwned">"&'
KEYS = devnet_keypairs(6)
JOB = make_job(20, 300, 20)
REWARD = 5 * 10**8

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


def chromium(tmp_path, *args):
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def dom_of(tmp_path, node, fragment: str) -> str:
    return chromium(tmp_path, "--dump-dom", f"{node.url}/explorer{fragment}").stdout


def section(dom: str, section_id: str) -> str:
    """The HTML of one ``<section id=...>`` of the dumped DOM (sections do not nest)."""
    m = re.search(rf'<section id="{section_id}"[^>]*>(.*?)</section>', dom, re.S)
    assert m, f"no section {section_id} in {dom[:3000]}"
    return m.group(1)


def rows(table_html: str) -> list[str]:
    return re.findall(r"<tr>(.*?)</tr>", table_html.split("<tbody>", 1)[1], re.S)


@pytest.fixture
def busy_node(node_factory):
    """A regtest node with 4 mined blocks, one carrying two transfers to ``USER``, and one transfer pending."""
    node = node_factory().start()
    node.rpc("generatetoaddress", 2, MINER)
    paid = node.rpc("faucet", USER, 3 * 10**8)["txid"]
    wait_until(lambda: paid in node.rpc("getrawmempool"), what="the faucet transfer pending")
    mined = node.rpc("generatetoaddress", 1, MINER)[0]
    node.rpc("generatetoaddress", 1, MINER)
    pending = node.rpc("faucet", USER, 2 * 10**8)["txid"]
    return node, {"paid": paid, "mined": mined, "pending": pending}


@needs_chromium
def test_home_lists_blocks_and_mempool_and_a_block_its_transactions(busy_node, tmp_path):
    node, ids = busy_node
    height = node.rpc("getblockcount")
    with urllib.request.urlopen(node.url + "/explorer", timeout=30) as r:
        assert r.status == 200 and b"pouw explorer" in r.read()
        csp = r.headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp

    dom = dom_of(tmp_path, node, "")
    shown = re.search(r'id="height"[^>]*>(\d+)<', dom)
    assert shown and int(shown.group(1)) == height, dom[:2000]
    blocks = rows(section(dom, "blocks-section"))
    assert len(blocks) == height + 1  # fewer than 20 blocks: all of them, genesis last
    assert f">{height}</a>" in blocks[0] and node.rpc("getbestblockhash")[:16] in blocks[0]
    assert "genesis" in blocks[-1]
    assert MINER[:16] in blocks[0]  # the miner's address
    mempool = section(dom, "mempool-section")
    assert ids["pending"][:16] in mempool
    assert '<div id="error"></div>' in dom

    dom = dom_of(tmp_path, node, f"#block={ids['mined']}&check=1")
    detail = section(dom, "block-section")
    assert ids["mined"] in detail and re.search(r'class="ok">valid</span> in [0-9.]+ ms', detail), detail
    txs = rows(section(dom, "block-txs"))
    assert len(txs) == 2  # the coinbase and the faucet transfer
    assert "coinbase" in txs[0] and ids["paid"][:16] in txs[1] and "transfer" in txs[1] and USER[:16] in txs[1]
    assert "3.00000000" in txs[1]

    shot = tmp_path / "explorer.png"
    chromium(tmp_path, "--window-size=1280,900", f"--screenshot={shot}", f"{node.url}/explorer")
    assert shot.exists() and shot.stat().st_size > 10_000


@needs_chromium
def test_search_lands_on_the_transaction_the_address_and_the_block(busy_node, tmp_path):
    node, ids = busy_node
    dom = dom_of(tmp_path, node, f"#search={ids['paid']}")
    tx = section(dom, "tx-section")
    assert ids["paid"] in tx and ids["mined"] in tx and "transfer" in tx  # confirmed, in its block

    dom = dom_of(tmp_path, node, f"#search={USER}")
    summary = section(dom, "address-section")
    assert USER in summary and "3.00000000" in summary  # the confirmed balance
    history = rows(section(dom, "address-txs"))
    assert len(history) == 1 and ids["paid"][:16] in history[0] and ">in<" in history[0]
    assert ids["pending"][:16] in section(dom, "address-pending")

    dom = dom_of(tmp_path, node, "#search=1")
    assert node.rpc("getblockhash", 1) in section(dom, "block-section")

    job = node.rpc("submitmatmuljob", npy_b64(np.ones((16, 32), np.int8)), npy_b64(np.ones((32, 16), np.int8)))
    dom = dom_of(tmp_path, node, f"#search={job['job_id']}")
    assert job["job_id"] in section(dom, "job-section")

    dom = dom_of(tmp_path, node, "#search=" + "ab" * 32)
    error = html.unescape(re.search(r'<div id="error">(.*?)</div>', dom).group(1))
    assert "no block, transaction, offer or job" in error


def npy_b64(x) -> str:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode()


def code_of(node, method, *params) -> int:
    with pytest.raises(RpcFailure) as e:
        node.rpc(method, *params)
    return e.value.code


def test_explorer_methods_refuse_precisely_and_page_over_rpc(busy_node):
    node, ids = busy_node
    assert code_of(node, "getexplorerblock", "99999") == -8
    assert code_of(node, "getexplorerblock", "ab" * 32) == -5
    assert code_of(node, "getexplorerblock", "1", 0, 201) == -32602  # over the page limit
    assert code_of(node, "getexplorerblock", "-1") == -32602
    assert code_of(node, "getexplorertx", "cd" * 32) == -5
    assert code_of(node, "getexploreraddress", "preg1notanaddress") == -5
    assert code_of(node, "getexploreraddress", USER, 0, 0) == -32602
    assert code_of(node, "getexplorerhome", 51) == -32602
    assert code_of(node, "searchexplorer", "hello") == -8
    assert code_of(node, "searchexplorer", "ee" * 32) == -5
    assert code_of(node, "searchexplorer", "x" * 129) == -32602

    home = node.rpc("getexplorerhome", 2, 5)
    assert [b["height"] for b in home["blocks"]] == [4, 3] and home["mempool"]["size"] == 1
    assert home["mempool"]["txs"][0]["txid"] == ids["pending"]
    miner, pages, cursor = [], 0, None
    while True:  # the miner's coinbases, two a page, newest first
        after = {} if cursor is None else {"cursor": cursor}
        page = node.rpc("getexploreraddress", address=MINER, limit=2, **after)
        miner += [t["blockheight"] for t in page["txs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert miner == [4, 3, 2, 1] and pages == 2
    tx = node.rpc("getexplorertx", ids["pending"])
    assert tx["in_mempool"] and tx["confirmations"] == 0 and tx["to"] == USER


@needs_chromium
def test_hostile_memo_is_shown_as_text(node_factory, tmp_path):
    node = node_factory().start()
    params = get_network("regtest")
    key = devnet_keypairs(3)[2]
    tx = make_transfer(key, params.chain_id, 0, key.address, 1, 10_000, HOSTILE_MEMO)
    txid = node.rpc("sendrawtransaction", encode_tx(tx).hex())
    dom = dom_of(tmp_path, node, f"#tx={txid}")
    shown = section(dom, "tx-section")
    assert txid in shown and html.escape(HOSTILE_MEMO.decode(), quote=False) in shown
    assert "<img" not in dom  # the memo is a text node: no element was made of it


@needs_chromium
def test_a_paid_offer_shows_on_the_home_page_its_own_page_and_its_job(node_factory, tmp_path):
    """One offer and its claim on a regtest node (``make_job_tx`` as test_job_offers_rpc builds them): the home
    page's offers table, the offer page (record, history with both txids, no product held), the job's offers,
    the search and the claim's transaction page name it."""
    node = node_factory().start()
    client, claimant = KEYS[2], KEYS[3]
    height = node.rpc("getblockcount")
    bond = min_bond(JOB.offer(REWARD, 0, 0, height + 50), REGTEST)
    deposit = min_deposit(JOB.offer(REWARD, 0, bond, 0), REGTEST)
    offer_txid = node.rpc("sendrawtransaction", encode_tx(job_tx(
        client, 0, KIND_OFFER, JOB.job_id, JOB.offer(REWARD, deposit, bond, height + 50), params=REGTEST)).hex())
    offer_id = compute_offer_id(client.address, 0).hex()
    node.rpc("generatetoaddress", 1, MINER)
    claim_txid = node.rpc("sendrawtransaction", encode_tx(job_tx(
        claimant, 0, KIND_CLAIM, bytes.fromhex(offer_id), ClaimPayload(b"\x07" * 32), params=REGTEST)).hex())
    node.rpc("generatetoaddress", 1, MINER)
    wait_until(lambda: node.rpc("getjoboffer", offer_id)["status"] == "claimed", what="the claim in the book")
    claimant_addr = encode_address(claimant.address, REGTEST.hrp)
    settle = height + 2 + REGTEST.job_window + 1
    job = node.rpc("submitmatmuljob", npy_b64(JOB.a), npy_b64(JOB.b))
    assert job["job_id"] == JOB.job_id.hex()

    home = node.rpc("getexplorerhome")
    assert [(o["offer_id"], o["status"], o["settle_height"]) for o in home["offers"]] == [(offer_id, "claimed", settle)]
    assert node.rpc("getexplorerhome", 1, 0, 0)["offers"] == []
    assert code_of(node, "getexplorerhome", 1, 0, 51) == -32602
    assert code_of(node, "getexploreroffer", "00" * 32) == -48
    page = node.rpc("getexploreroffer", offer_id)
    assert page["offer"]["claim_txid"] == claim_txid and page["job_known"]
    assert [(e["event"], e["txid"], e["height"]) for e in page["history"]] == [
        ("offer", offer_txid, height + 1), ("claim", claim_txid, height + 2)]
    assert page["history"][1]["blockhash"] == node.rpc("getblockhash", height + 2)
    claim = node.rpc("getexplorertx", claim_txid)
    assert claim["type"] == "claim" and claim["offer_id"] == offer_id and claim["job_id"] == JOB.job_id.hex()
    assert node.rpc("searchexplorer", offer_id) == {"kind": "offer", "id": offer_id}

    offers = rows(section(dom_of(tmp_path, node, ""), "offers-section"))
    assert len(offers) == 1 and f"#offer={offer_id}" in offers[0] and offer_id[:16] in offers[0]
    assert ">claimed<" in offers[0] and "5.00000000" in offers[0] and claimant_addr[:16] in offers[0]
    assert f">{settle}<" in offers[0]

    dom = dom_of(tmp_path, node, f"#offer={offer_id}")
    record = section(dom, "offer-section")
    assert offer_id in record and "claimed (live on chain)" in record and claimant_addr in record
    assert encode_address(client.address, REGTEST.hrp) in record and (b"\x07" * 32).hex() in record
    history = rows(section(dom, "offer-history"))
    assert len(history) == 2 and offer_txid[:16] in history[0] and claim_txid[:16] in history[1]
    assert ">claim<" in history[1] and f"#block={height + 2}" in history[1]
    assert "holds no product" in section(dom, "offer-product")

    dom = dom_of(tmp_path, node, f"#job={JOB.job_id.hex()}")
    assert offer_id[:16] in section(dom, "job-offers")
    dom = dom_of(tmp_path, node, f"#search={offer_id}")
    assert offer_id in section(dom, "offer-section")
    dom = dom_of(tmp_path, node, f"#tx={claim_txid}")
    assert f"#offer={offer_id}" in section(dom, "tx-section") and ">claim<" in section(dom, "tx-section")
