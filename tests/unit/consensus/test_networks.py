"""Network presets and the genesis block."""

from __future__ import annotations

import pytest

from consensus.codec import encode_block
from consensus.genesis import make_genesis_block
from consensus.networks import COIN, DEVNET, DEVNET_MATMULS_PER_BLOCK, MAINNET, NETWORKS, REGTEST, TESTNET, get_network
from consensus.state import apply_block
from consensus.tx import compute_tx_id, compute_tx_root
from pouw.header import compute_work


def test_presets_have_distinct_identities():
    assert set(NETWORKS) == {"devnet", "regtest", "testnet", "mainnet"}
    assert len({p.chain_id for p in NETWORKS.values()}) == 4
    assert len({p.hrp for p in NETWORKS.values()}) == 4
    assert [p.hrp for p in (DEVNET, REGTEST, TESTNET, MAINNET)] == ["pdev", "preg", "ptest", "pouw"]
    assert get_network("testnet") is TESTNET
    with pytest.raises(ValueError):
        get_network("simnet")


def test_regtest_is_devnet_with_easy_blocks():
    assert REGTEST.allocations == DEVNET.allocations and REGTEST.mining_shape == DEVNET.mining_shape
    m, n, k = REGTEST.mining_shape
    assert (1 << 256) // REGTEST.initial_target == 2 * m * n * k


@pytest.mark.parametrize("params", list(NETWORKS.values()))
def test_preset_sanity(params):
    assert 1 <= params.initial_target <= params.pow_limit < 1 << 256
    assert params.max_memo == 256
    m, n, k = params.mining_shape
    assert m % 16 == 0 and n % 16 == 0 and k % 128 == 0 and 256 <= k <= 65536
    assert 32 * k + 1024 < params.max_block_size


def test_devnet_costs_twenty_default_matmuls_per_block():
    m, n, k = DEVNET.mining_shape
    expected_macs = compute_work(DEVNET.initial_target)
    assert abs(expected_macs / (m * n * k) - DEVNET_MATMULS_PER_BLOCK) < 1e-6
    assert DEVNET.no_retarget


def test_subsidy_halves():
    p = DEVNET
    assert p.subsidy(1) == 50 * COIN
    assert p.subsidy(p.halving_interval - 1) == 50 * COIN
    assert p.subsidy(p.halving_interval) == 25 * COIN
    assert p.subsidy(3 * p.halving_interval) == 50 * COIN // 8
    assert p.subsidy(64 * p.halving_interval) == 0


def test_devnet_genesis_funds_the_allocations():
    genesis = make_genesis_block(DEVNET)
    pre = genesis.header.pre
    assert (pre.height, pre.prev_id, pre.time, pre.target) == (0, bytes(32), DEVNET.genesis_time, DEVNET.initial_target)
    assert genesis.certificate is None
    assert pre.tx_root == compute_tx_root([compute_tx_id(t) for t in genesis.transactions])
    change = apply_block(type("V", (), {"get_account": lambda self, a: None})(), genesis)
    assert {a: acct.balance for a, acct in change.accounts} == {a.address: a.amount for a in DEVNET.allocations}


def test_genesis_without_allocations_has_one_zero_record():
    genesis = make_genesis_block(MAINNET)
    assert len(genesis.transactions) == 1 and genesis.transactions[0].amount == 0


def test_genesis_ids_are_pinned():
    # Changing a preset or a codec changes these ids: every node's database and peers notice.
    assert make_genesis_block(DEVNET).header.block_id.hex() == (
        "0adc34699f2b96a12808886dee13d76afb48cead62733d73bd285a07fdca14d5")
    assert len(encode_block(make_genesis_block(DEVNET))) == 626
