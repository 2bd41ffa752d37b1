"""Issue 13's attack end to end: coins at the identity key's address cannot be spent without its secret.

The identity point ``A = 0x01 || 0^31`` has small order, so ``R = identity, S = 0``
satisfies the cofactorless equation for every message, and OpenSSL alone
accepts it. Anyone could then spend from an address funded at that key, and a
node that accepted the block would split from every libsodium-strict one. Here a
genesis allocation funds that address; the forged spend must be refused by
block validation, by the chain service (nothing changes) and by the mempool.
Each test also shows the same shape with an honest signature passing, so the
signature is the only fault.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consensus import errors
from consensus.address import compute_address
from consensus.genesis import make_genesis_block
from consensus.keys import devnet_keypairs
from consensus.networks import COIN, Allocation
from consensus.tx import compute_sighash, is_signature_valid, make_transfer
from consensus.types import Account, Tx
from consensus.validation import make_parent_info, validate_block
from node.chain import ChainService
from node.events import Events, TxAdmitted
from node.mempool import Mempool
from node.txintake import TxIntake
from tests.support.blockgen import BlockMaker, easy_params
from tests.support.memstore import MemoryStore

IDENTITY = bytes([1]) + bytes(31)
FORGED_SIGNATURE = IDENTITY + bytes(32)
"""``R = identity``, ``S = 0``."""
VICTIM = compute_address(IDENTITY)
FUNDS = 1000 * COIN
FEE = 10**6
"""Far above any network's minimum fee for a 147-byte transfer."""

BASE = easy_params()
PARAMS = replace(BASE, allocations=(*BASE.allocations, Allocation(VICTIM, FUNDS)))
KEYS = devnet_keypairs(2)
MINER = KEYS[1].address
MAKER = BlockMaker(PARAMS)
G_INFO = make_parent_info(make_genesis_block(PARAMS).header)
NOW = PARAMS.genesis_time + 10**6


def forged_spend(nonce: int = 0) -> Tx:
    """A transfer of the victim's coins to the attacker (``KEYS[0]``), "signed" by the identity key."""
    body = make_transfer(KEYS[1], PARAMS.chain_id, nonce, KEYS[0].address, FUNDS - FEE, FEE).body
    return Tx(replace(body, pubkey=IDENTITY), FORGED_SIGNATURE)


def honest_spend() -> Tx:
    return make_transfer(KEYS[0], PARAMS.chain_id, 0, KEYS[1].address, 5 * COIN, FEE)


def block_with(tx: Tx):
    return MAKER.mine(G_INFO, G_INFO.time + 10, MINER, [tx])


def test_the_forgery_passes_openssl_alone():
    """What the node accepted before strict verification: the attack is real."""
    tx = forged_spend()
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(FORGED_SIGNATURE, compute_sighash(tx.body))
    assert not is_signature_valid(tx)
    assert is_signature_valid(honest_spend())


def test_block_spending_from_the_identity_key_is_invalid():
    validate_block(block_with(honest_spend()), G_INFO, PARAMS, NOW)
    with pytest.raises(errors.BlockTxInvalid) as info:
        validate_block(block_with(forged_spend()), G_INFO, PARAMS, NOW)
    assert isinstance(info.value.cause, errors.BadSignature) and info.value.index == 1


def test_block_is_invalid_without_the_certificate_check_too():
    block = MAKER.synthetic(G_INFO, G_INFO.time + 10, MINER, [forged_spend()])
    with pytest.raises(errors.BlockTxInvalid) as info:
        validate_block(block, G_INFO, PARAMS, NOW, check_certificate=False)
    assert isinstance(info.value.cause, errors.BadSignature)


def test_chain_refuses_the_block_and_the_coins_stay():
    store = MemoryStore()
    chain = ChainService(store, PARAMS, clock=lambda: NOW)
    assert chain.get_account(VICTIM).balance == FUNDS
    attacker = chain.get_account(KEYS[0].address)
    before = store.snapshot()
    with pytest.raises(errors.BlockTxInvalid) as info:
        chain.submit_block(block_with(forged_spend()))
    assert isinstance(info.value.cause, errors.BadSignature)
    assert store.snapshot() == before and chain.height == 0
    assert chain.get_account(VICTIM).balance == FUNDS
    assert chain.get_account(KEYS[0].address) == attacker


def victim_accounts():
    accounts = {VICTIM: Account(FUNDS, 0), KEYS[0].address: Account(FUNDS, 0)}
    return lambda address: accounts.get(address, Account())


def test_mempool_refuses_the_forgery():
    mempool = Mempool(PARAMS, victim_accounts())
    for admit in (mempool.add, mempool.add_or_hold):
        with pytest.raises(errors.BadSignature):
            admit(forged_spend())
    with pytest.raises(errors.BadSignature):
        mempool.add_or_hold(forged_spend(nonce=1))  # one ahead of the nonce: would be held if it verified
    assert len(mempool) == 0 and mempool.held_count() == 0
    mempool.add(honest_spend())
    assert len(mempool) == 1


async def test_intake_refuses_the_forgery_and_announces_nothing():
    events = Events()
    admitted: list[TxAdmitted] = []
    events.subscribe(TxAdmitted, admitted.append)
    intake = TxIntake(Mempool(PARAMS, victim_accounts()), events)
    for source in ("rpc", "gossip"):
        with pytest.raises(errors.BadSignature):
            await intake.submit(forged_spend(), source)
    assert admitted == []
    await intake.submit(honest_spend(), "rpc")
    assert len(admitted) == 1
