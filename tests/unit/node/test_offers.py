"""OfferBook: the node's history of paid job offers across tip changes, reorgs, restarts and its bound;
and the RPC views built on it (getjoboffer, listjoboffers, getmatmuljob's offers)."""

from __future__ import annotations

import pytest

from consensus.address import encode_address
from consensus.jobmarket import compute_offer_id, min_bond, min_deposit
from consensus.keys import devnet_keypairs
from consensus.tx import compute_tx_id
from consensus.types import KIND_ACCEPT, KIND_CLAIM, KIND_OFFER, ClaimPayload
from node.api.offers import OfferMethods
from node.api.views import Addresses
from node.mempool import Mempool
from node.offers import OfferBook
from node.rpc import errors as E
from node.rpc.errors import RpcError
from tests.support.jobmarket import PARAMS, Ledger, make_block, make_job
from tests.support.memstore import MemoryStore

KEYS = devnet_keypairs(6)
CLIENT, CLAIMANT = KEYS[0], KEYS[1]
JOB = make_job(20, 300, 20)
ADDRESSES = Addresses(PARAMS.hrp)
CONTRACT_KEYS = {"offer_id", "job_id", "client", "status", "live", "m", "k", "n", "root_a", "root_b", "reward",
                 "deposit", "bond", "deadline", "offer_txid", "offer_height", "claimant", "root_c", "claim_txid",
                 "claim_height", "window_end", "settle_height", "final_txid", "final_height", "pending", "product"}


class Chain:
    """A ledger whose blocks are kept, so tests can disconnect them and feed an OfferBook like TipMoved does."""

    def __init__(self, book: OfferBook) -> None:
        self.ledger = Ledger({k.address: 10**15 for k in KEYS}, height=5)
        self.book = book
        self.blocks: list[tuple[object, tuple, dict, dict]] = []

    def block(self, *txs):
        led = self.ledger
        saved = (dict(led.view.accounts), dict(led.view.records))
        led.block(*txs)
        block = make_block(led.height, txs)
        self.blocks.append((block, txs, *saved))
        self.book.on_tip_change([block], [], led.view)
        return block

    def disconnect(self):
        block, _, accounts, records = self.blocks.pop()
        led = self.ledger
        led.view.accounts.clear()
        led.view.accounts.update(accounts)
        led.view.records.clear()
        led.view.records.update(records)
        led.height -= 1
        self.book.on_tip_change([], [block], led.view)

    def offer(self, key=CLIENT, reward=10**6):
        led = self.ledger
        probe = JOB.offer(reward, 0, 0, led.height + 50)
        bond = min_bond(probe, PARAMS)
        payload = JOB.offer(reward, min_deposit(JOB.offer(reward, 0, bond, 0), PARAMS), bond, led.height + 50)
        tx = led.tx(key, KIND_OFFER, JOB.job_id, payload)
        self.block(tx)
        return compute_offer_id(key.address, tx.body.nonce), tx


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
def chain(store):
    book = OfferBook(store, PARAMS, ADDRESSES)
    book.rebuild([])
    return Chain(book)


def test_an_offer_its_claim_and_its_accept_are_followed(chain):
    book = chain.book
    offer_id, offer_tx = chain.offer()
    info = book.get(offer_id)
    assert info.status == "open" and info.live and info.offer_txid == compute_tx_id(offer_tx)
    assert info.offer_height == chain.ledger.height
    assert book.open_offers_for_job(JOB.job_id) == [(offer_id, chain.ledger.record(offer_id))]
    claim = chain.ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x07" * 32))
    chain.block(claim)
    info = book.get(offer_id)
    assert info.status == "claimed" and info.claimant == CLAIMANT.address
    assert info.claim_txid == compute_tx_id(claim) and info.claim_height == chain.ledger.height
    assert book.claimed_by(CLAIMANT.address) == [(offer_id, chain.ledger.record(offer_id))]
    assert book.open_offers_for_job(JOB.job_id) == []
    j = info.to_json(chain.ledger.height, None)
    assert j["window_end"] == info.claim_height + PARAMS.job_window and j["settle_height"] == j["window_end"] + 1
    accept = chain.ledger.tx(CLIENT, KIND_ACCEPT, offer_id)
    chain.block(accept)
    info = book.get(offer_id)
    assert info.status == "accepted" and not info.live and info.final_txid == compute_tx_id(accept)
    assert book.claimed_by(CLAIMANT.address) == [] and chain.ledger.record(offer_id) is None


def test_a_reorg_undoes_final_claim_and_offer_in_turn(chain):
    book = chain.book
    offer_id, _ = chain.offer()
    chain.block(chain.ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x07" * 32)))
    chain.block(chain.ledger.tx(CLIENT, KIND_ACCEPT, offer_id))
    chain.disconnect()
    info = book.get(offer_id)
    assert info.status == "claimed" and info.live and info.final_txid is None
    chain.disconnect()
    info = book.get(offer_id)
    assert info.status == "open" and info.claimant is None and info.claim_txid is None
    chain.disconnect()
    assert book.get(offer_id) is None and book.offers_for_job(JOB.job_id) == []


def test_history_survives_a_restart_and_live_records_win(chain, store):
    offer_id, _ = chain.offer()
    chain.block(chain.ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x07" * 32)))
    chain.block(chain.ledger.tx(CLIENT, KIND_ACCEPT, offer_id))
    live_id, _ = chain.offer(KEYS[2])
    gone_id, _ = chain.offer(KEYS[3])
    again = OfferBook(store, PARAMS, ADDRESSES)
    again.rebuild([(live_id, chain.ledger.record(live_id))])  # gone_id: neither live nor final (a crash)
    assert again.get(offer_id).status == "accepted" and again.get(offer_id).final_height is not None
    assert again.get(live_id).status == "open" and again.get(live_id).offer_txid is not None
    assert again.get(gone_id) is None
    assert [i.offer_id for i in again.list()] == [live_id, offer_id]  # newest first


def test_an_offer_older_than_the_book_is_learnt_from_its_record(store):
    chain = Chain(OfferBook(store, PARAMS, ADDRESSES))
    offer_id, _ = chain.offer()
    fresh = OfferBook(MemoryStore(), PARAMS, ADDRESSES)
    fresh.rebuild([(offer_id, chain.ledger.record(offer_id))])
    info = fresh.get(offer_id)
    assert info.status == "open" and info.offer_txid is None and info.reward == 10**6


def test_final_offers_are_bounded_oldest_evicted(store):
    book = OfferBook(store, PARAMS, ADDRESSES, max_final=2)
    book.rebuild([])
    chain = Chain(book)
    ids = []
    for key in KEYS[2:5]:
        offer_id, _ = chain.offer(key)
        chain.block(chain.ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x07" * 32)))
        chain.block(chain.ledger.tx(key, KIND_ACCEPT, offer_id))
        ids.append(offer_id)
    assert book.get(ids[0]) is None and book.get(ids[1]) is not None and book.get(ids[2]) is not None
    assert not any(k.endswith(ids[0]) for k in store.data)


def test_list_filters_by_status_and_limit(chain):
    a, _ = chain.offer(KEYS[2])
    b, _ = chain.offer(KEYS[3])
    chain.block(chain.ledger.tx(CLAIMANT, KIND_CLAIM, a, ClaimPayload(b"\x07" * 32)))
    assert [i.offer_id for i in chain.book.list("open")] == [b]
    assert [i.offer_id for i in chain.book.list("claimed")] == [a]
    assert [i.offer_id for i in chain.book.list(None, 1)] == [b]


# --- RPC views -----------------------------------------------------------------------------------------


class Snap:
    def __init__(self, height):
        self.height = height


class Handle:
    def __init__(self, ledger):
        self.ledger = ledger

    @property
    def snapshot(self):
        return Snap(self.ledger.height)


class Products:
    def __init__(self, offer_id):
        self.offer_id = offer_id

    def product_info(self, offer_id):
        if offer_id != self.offer_id:
            return None
        return {"blob": "ab" * 32, "h_c": "cd" * 32, "root_c_ok": True, "freivalds_ok": True, "source": "mined"}


async def test_getjoboffer_has_the_contracts_shape_pending_txids_and_product(chain):
    offer_id, _ = chain.offer()
    view = chain.ledger.view
    mp = Mempool(PARAMS, lambda a: view.get_account(a), get_job_record=view.get_job_record,
                 height=chain.ledger.height)
    claim = mp.add(chain.ledger.tx(CLAIMANT, KIND_CLAIM, offer_id, ClaimPayload(b"\x07" * 32)))
    rpc = OfferMethods(Handle(chain.ledger), chain.book, mp, Products(offer_id))
    j = await rpc.getjoboffer(offer_id.hex())
    assert set(j) == CONTRACT_KEYS
    assert j["status"] == "open" and j["pending"] == [claim.tx_id.hex()] and j["product"]["source"] == "mined"
    assert j["client"] == encode_address(CLIENT.address, PARAMS.hrp) and j["claimant"] is None
    assert j["reward"] == 10**6 and j["job_id"] == JOB.job_id.hex()
    assert await rpc.listjoboffers() == [j]
    assert rpc.offers_for_job(JOB.job_id) == [j]
    no_products = OfferMethods(Handle(chain.ledger), chain.book, mp)
    assert (await no_products.getjoboffer(offer_id.hex()))["product"] is None


async def test_getjoboffer_of_an_unknown_offer_is_error_48(chain):
    view = chain.ledger.view
    mp = Mempool(PARAMS, lambda a: view.get_account(a))
    rpc = OfferMethods(Handle(chain.ledger), chain.book, mp)
    with pytest.raises(RpcError) as e:
        await rpc.getjoboffer("00" * 32)
    assert e.value.code == E.OFFER_NOT_FOUND == -48
