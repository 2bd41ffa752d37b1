"""The low-work side block attack against a real ``pouwd``: refused before any check, nothing stored.

Before issue 13 a side block forking near genesis, full of transfers from
unfunded senders, was stored as a ``valid-fork`` (3.5 MB written, 1.18 s of
CPU on its checks), and its signed transfers could be reused in every further
side block. Now the chain weighs the branch first: out of reach of the tip,
the block is refused (``low-work``) on its header alone, not stored, not
recorded as invalid, and the node keeps its tip and answers RPC at once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from consensus.codec import encode_block
from consensus.keys import keypair_from_private
from consensus.networks import REGTEST
from consensus.tx import make_transfer
from consensus.validation import ParentInfo
from tests.functional.chainbuild import mine_block, parent_info
from tests.functional.harness import RpcFailure

COINBASE = "preg1q2j87kdl0l0j2a086yas59cmeu850pf6295gkm"
TRANSFERS = REGTEST.max_tx_count - 1  # the most a block may carry: 9,999 beside the coinbase


def mine(parent: ParentInfo, transfers):
    """A real block on ``parent`` (regtest's target: about one matmul in two wins)."""
    return mine_block(parent, b"\x0e" * 20, transfers, time_=max(parent.recent_times) + 1, seed=3)


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_a_low_work_side_block_of_unfunded_transfers_is_refused_and_not_stored(node_factory):
    node = node_factory("victim").start()
    node.rpc("generatetoaddress", 12, COINBASE)
    tip = node.rpc("getbestblockhash")

    started = time.monotonic()
    unfunded = [keypair_from_private(i.to_bytes(4, "little") * 8) for i in range(1, TRANSFERS + 1)]
    transfers = [make_transfer(key, REGTEST.chain_id, 0, b"\x0f" * 20, 10**8, 1000) for key in unfunded]
    side = mine(parent_info(node, node.rpc("getblockhash", 1)), transfers)  # height 2: 11 blocks short
    raw = encode_block(side)
    print(f"built a side block of {len(transfers)} transfers, {len(raw)} bytes, in {time.monotonic() - started:.1f} s")
    assert len(raw) > 1_000_000

    chain_dir = node.datadir / "chain"
    before = disk_bytes(chain_dir)
    started = time.monotonic()
    answer = node.rpc("submitblock", raw.hex())  # refused, not an error: nobody is at fault
    assert answer.startswith("low-work:"), answer
    elapsed = time.monotonic() - started
    print(f"submitblock answered in {elapsed:.3f} s; chain directory {before} -> {disk_bytes(chain_dir)} bytes")

    assert disk_bytes(chain_dir) - before < len(raw) // 20  # the block's bytes were not written
    tips = node.rpc("getchaintips")
    assert [t["status"] for t in tips] == ["active"] and tips[0]["hash"] == tip
    assert node.rpc("getbestblockhash") == tip and node.rpc("getblockcount") == 12
    start = time.monotonic()
    node.rpc("getblockcount")
    assert time.monotonic() - start < 2.0
    assert node.rpc("verifychain")["ok"]
    # Sent again it costs the same nothing: refused, not remembered as invalid.
    assert node.rpc("submitblock", raw.hex()).startswith("low-work:")
    assert [t["status"] for t in node.rpc("getchaintips")] == ["active"]


def test_a_state_fault_in_submitblock_is_reported_with_its_rule(node_factory):
    """A block on the tip spending from an unfunded key: refused with the consensus rule, as any invalid block."""
    node = node_factory("local").start()
    node.rpc("generatetoaddress", 2, COINBASE)
    tip = node.rpc("getbestblockhash")
    spend = make_transfer(keypair_from_private(b"\x10" * 32), REGTEST.chain_id, 0, b"\x0f" * 20, 5, 1000)
    block = mine(parent_info(node, tip), [spend])
    with pytest.raises(RpcFailure) as info:
        node.rpc("submitblock", encode_block(block).hex())
    assert info.value.code == -25 and info.value.message.startswith("block-tx: transaction 1: tx-balance:")
    assert node.rpc("getbestblockhash") == tip

