"""The explorer's view builders on a chain in memory: what each page gets, bounded, paged, and its errors."""

from __future__ import annotations

import pytest

from consensus.codec import encode_block
from consensus.keys import devnet_keypairs
from consensus.tx import compute_tx_id, make_transfer
from node.api.explorer import (
    ChainView,
    address_history,
    block_view,
    chain_tx_view,
    home_view,
    offer_history,
    offer_line,
    resolve_block,
    with_block_hashes,
)
from node.api.views import Addresses, tx_fields
from node.chain import ChainService
from node.offers import OfferBook
from node.rpc import errors as E
from node.rpc.errors import RpcError
from node.snapshot import take_snapshot
from tests.support.blockgen import ChainBuilder, easy_params
from tests.support.jobchain import BOND, DEPOSIT, JOB, OFFER_1, OFFER_2, REWARD, WRONG_COMMIT, job_chain
from tests.support.memstore import MemoryStore

P = easy_params()
KEYS = devnet_keypairs(6)
ADDR = [k.address for k in KEYS]
NOW = P.genesis_time + 10**6
ADDRESSES = Addresses(P.hrp)


def pay(sender, nonce, to, amount, fee=200, memo=b""):
    return make_transfer(KEYS[sender], P.chain_id, nonce, ADDR[to], amount, fee, memo)


@pytest.fixture(scope="module")
def chain_and_blocks():
    """Five main-chain blocks (block 2 carries 7 transfers key0 -> key1) and one side-branch block."""
    builder = ChainBuilder(P, coinbase_to=ADDR[4])
    blocks = builder.extend(builder.genesis_id, 1, transfers=[])
    blocks.append(builder.child(blocks[-1].header.block_id, [pay(0, i, 1, 100 + i, memo=b"<b>") for i in range(7)]))
    blocks += builder.extend(blocks[-1].header.block_id, 3, transfers=[])
    side = builder.child(blocks[0].header.block_id, [], coinbase_to=ADDR[5], spacing=3)
    chain = ChainService(MemoryStore(), P, clock=lambda: NOW)
    for block in [*blocks, side]:
        chain.submit_block(block)
    assert chain.tip_id == blocks[-1].header.block_id
    return chain, blocks, side


def view_of(chain):
    return ChainView(take_snapshot(chain), ADDRESSES)


def test_home_lists_the_newest_blocks_first_and_is_bounded(chain_and_blocks):
    chain, blocks, _ = chain_and_blocks
    home = home_view(view_of(chain), 3)
    assert home["height"] == 5 and home["bestblockhash"] == blocks[-1].header.block_id.hex()
    assert [b["height"] for b in home["blocks"]] == [5, 4, 3]
    top = home["blocks"][0]
    assert top["size"] == len(encode_block(blocks[-1])) and top["tx_count"] == 1
    assert top["miner"] == ADDRESSES.encode(ADDR[4]) and top["reward"] == blocks[-1].coinbase.amount
    everything = home_view(view_of(chain), 50)["blocks"]
    assert len(everything) == 6 and everything[-1]["height"] == 0 and everything[-1]["miner"] is None


def test_block_by_height_or_hash_with_a_page_of_transactions(chain_and_blocks):
    chain, blocks, _ = chain_and_blocks
    view = view_of(chain)
    block = blocks[1]
    by_height = block_view(view, "2", 0, 3)
    assert by_height == block_view(view, block.header.block_id.hex().upper(), 0, 3)
    assert by_height["tx_count"] == 8 and by_height["confirmations"] == 4 and by_height["on_main_chain"]
    assert by_height["nextblockhash"] == blocks[2].header.block_id.hex()
    assert by_height["fees"] == 7 * 200
    assert [t["position"] for t in by_height["txs"]] == [0, 1, 2] and by_height["next_offset"] == 3
    assert by_height["txs"][0]["type"] == "coinbase" and by_height["txs"][1]["type"] == "transfer"
    last = block_view(view, "2", 6, 3)
    assert [t["position"] for t in last["txs"]] == [6, 7] and last["next_offset"] is None
    assert last["txs"][-1]["txid"] == compute_tx_id(block.transactions[7]).hex()
    assert by_height["certificate_check"] is None
    assert block_view(view, "2", 0, 1, check=True)["certificate_check"]["valid"] is True


def test_a_side_branch_block_says_so(chain_and_blocks):
    chain, _, side = chain_and_blocks
    out = block_view(view_of(chain), side.header.block_id.hex(), 0, 10)
    assert not out["on_main_chain"] and out["confirmations"] == 0 and out["nextblockhash"] is None


def test_block_errors_are_precise(chain_and_blocks):
    chain, _, _ = chain_and_blocks
    view = view_of(chain)
    with pytest.raises(RpcError) as e:
        resolve_block(view, "6")
    assert e.value.code == E.INVALID_PARAMETER and "tip is 5" in e.value.message
    with pytest.raises(RpcError) as e:
        resolve_block(view, "ab" * 32)
    assert e.value.code == E.INVALID_ADDRESS_OR_KEY and "not found" in e.value.message


def test_a_chain_transaction_has_its_block_and_confirmations(chain_and_blocks):
    chain, blocks, _ = chain_and_blocks
    tx = blocks[1].transactions[3]
    out = chain_tx_view(view_of(chain), compute_tx_id(tx))
    assert out is not None and out["blockhash"] == blocks[1].header.block_id.hex() and out["position"] == 3
    assert out["confirmations"] == 4 and out["amount"] == tx.body.amount and out["memo_text"] == "<b>"
    assert chain_tx_view(view_of(chain), bytes(32)) is None


def test_address_history_is_newest_first_and_pages(chain_and_blocks):
    chain, blocks, _ = chain_and_blocks
    view = view_of(chain)
    first = address_history(view, ADDR[1], None, 4)
    assert first["tx_count"] == 7 and len(first["txs"]) == 4 and first["next_cursor"] == 3
    assert first["balance"] == chain.get_account(ADDR[1]).balance
    assert [t["amount"] for t in first["txs"]] == [106, 105, 104, 103]
    assert {t["direction"] for t in first["txs"]} == {"in"} and first["txs"][0]["blockheight"] == 2
    rest = address_history(view, ADDR[1], first["next_cursor"], 4)
    assert [t["amount"] for t in rest["txs"]] == [102, 101, 100] and rest["next_cursor"] is None
    miner = address_history(view, ADDR[4], None, 100)
    assert [t["blockheight"] for t in miner["txs"]] == [5, 4, 3, 2, 1]  # the side branch's coinbase is not there
    assert address_history(view, ADDR[5], None, 10)["txs"] == []
    sender = address_history(view, ADDR[0], None, 1)["txs"][0]
    assert sender["direction"] == "out" and sender["txid"] == compute_tx_id(blocks[1].transactions[7]).hex()


def test_tx_fields_of_a_transfer_and_a_coinbase(chain_and_blocks):
    _, blocks, _ = chain_and_blocks
    cb = tx_fields(blocks[0].coinbase, ADDRESSES)
    assert cb["type"] == "coinbase" and cb["from"] is None and cb["kind"] is None and cb["fee"] is None
    t = tx_fields(blocks[1].transactions[1], ADDRESSES)
    assert t["type"] == "transfer" and t["kind"] == 1 and t["from"] == ADDRESSES.encode(ADDR[0])
    assert t["to"] == ADDRESSES.encode(ADDR[1]) and t["memo"] == b"<b>".hex() and t["size"] > 100


# --- paid jobs (section 11) ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def job_views():
    """Branch A of ``tests.support.jobchain`` connected, and an ``OfferBook`` fed its blocks as the node feeds it."""
    jobs = job_chain()
    chain = ChainService(MemoryStore(), P, clock=lambda: NOW)
    book = OfferBook(MemoryStore(), P, ADDRESSES)
    for block in jobs.a:
        assert chain.submit_block(block).status == "connected"
        book.on_tip_change([block], [], take_snapshot(chain))
    return chain, jobs, book


def test_tx_fields_of_each_job_kind_name_it_and_its_offer(job_views):
    _, jobs, _ = job_views
    offer = tx_fields(jobs.txs["offer1"], ADDRESSES)
    assert offer["type"] == "offer" and offer["kind"] == 2 and offer["offer_id"] == OFFER_1.hex()
    assert offer["job_id"] == JOB.job_id.hex() and (offer["m"], offer["k"], offer["n"]) == (20, 200, 24)
    assert (offer["reward"], offer["deposit"], offer["bond"], offer["deadline"]) == (REWARD, DEPOSIT, BOND, 50)
    assert offer["from"] == ADDRESSES.encode(ADDR[0]) and offer["amount"] is None and offer["to"] is None
    claim = tx_fields(jobs.txs["claim2"], ADDRESSES)
    assert claim["type"] == "claim" and claim["offer_id"] == OFFER_2.hex() and claim["job_id"] is None
    assert claim["root_c"] == WRONG_COMMIT.root_c.hex()
    fraud = tx_fields(jobs.txs["fraud2"], ADDRESSES)
    assert fraud["type"] == "fraud" and fraud["tile"] == [0, 1] and fraud["k_p"] == 256
    assert fraud["size"] > 16 * 256 * 2 and len(fraud["path_depths"]) == 3
    accept = tx_fields(jobs.txs["accept1"], ADDRESSES)
    assert accept["type"] == "accept" and accept["offer_id"] == OFFER_1.hex() and "root_c" not in accept
    assert {tx_fields(t, ADDRESSES)["type"] for t in jobs.txs.values()} == {"offer", "claim", "accept", "fraud"}


def test_a_job_block_and_a_claimant_history_show_the_job_kinds(job_views):
    chain, jobs, _ = job_views
    view = view_of(chain)
    block = block_view(view, "2", 0, 10)
    assert [t["type"] for t in block["txs"]] == ["coinbase", "claim", "offer", "claim"]
    assert block["fees"] == sum(t.body.fee for t in jobs.a[1].signed)
    claimant = address_history(view, ADDR[1], None, 10)
    assert [(t["type"], t["direction"]) for t in claimant["txs"]] == [("accept", "in"), ("claim", "out")]


def test_offer_lines_and_history_come_from_the_book(job_views):
    chain, jobs, book = job_views
    view = view_of(chain)
    lines = [offer_line(i, view.height) for i in book.list(None, 20)]
    assert [(o["offer_id"], o["status"]) for o in lines] == [(OFFER_2.hex(), "fraud"), (OFFER_1.hex(), "accepted")]
    assert lines[1]["claimant"] == ADDRESSES.encode(ADDR[1]) and lines[1]["reward"] == REWARD
    assert lines[1]["settle_height"] == 2 + P.job_window + 1 and lines[1]["job_id"] == JOB.job_id.hex()
    history = with_block_hashes(view, offer_history(book.get(OFFER_1)))
    assert [(e["event"], e["height"]) for e in history] == [("offer", 1), ("claim", 2), ("accept", 3)]
    assert history[1]["txid"] == compute_tx_id(jobs.txs["claim1"]).hex()
    assert [e["blockhash"] for e in history] == [b.header.block_id.hex() for b in jobs.a]
    assert with_block_hashes(view, [{"event": "offer", "txid": None, "height": 99}])[0]["blockhash"] is None
