"""A real pouwd on regtest under a flood of transfers: a block with 20,000 pending must not freeze RPC.

Twenty senders, funded by the faucet, each send 1,000 transfers (the per-sender
limit) over ``sendrawtransaction`` batches. Then one block is mined with
``generatetoaddress`` while another thread keeps asking ``getblockcount``: no
answer may take more than 2 s, and afterwards the mempool holds exactly the
transfers that were not mined, in contiguous nonce order per sender.
"""

from __future__ import annotations

import threading
import time

import pytest

from consensus.address import encode_address
from consensus.codec import encode_tx
from consensus.keys import devnet_keypairs
from consensus.networks import REGTEST
from consensus.tx import make_transfer
from tests.functional.harness import NodeProcess, RpcFailure

SENDERS = devnet_keypairs(30)[10:30]  # not prefunded: the faucet funds them
PER_SENDER = 1_000  # node.mempool.MAX_PER_SENDER
BATCH = 1_000  # the RPC server's batch limit
HRP = REGTEST.hrp
MINER = encode_address(devnet_keypairs(1)[0].address, HRP)
SINK = devnet_keypairs(2)[1].address
MAX_WAIT = 2.0


def rpc_batch(node: NodeProcess, method: str, params: list[list]) -> list:
    answers = node.call([{"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in enumerate(params)])
    assert isinstance(answers, list) and len(answers) == len(params)
    return [a for a in sorted(answers, key=lambda a: a["id"])]


def fund_and_flood(node: NodeProcess, senders, per_sender: int) -> dict[str, tuple[str, int]]:
    """Fund ``senders`` with the faucet, mine that, then send ``per_sender`` transfers each; txid -> (from, nonce)."""
    for key in senders:
        node.rpc("faucet", encode_address(key.address, HRP), 1_000 * 10**8)
    node.rpc("generatetoaddress", 1, MINER)
    txs = [(key, n, make_transfer(key, REGTEST.chain_id, n, SINK, 1 + n % 5, 1000 + n % 7))
           for n in range(per_sender) for key in senders]  # nonce order per sender, senders interleaved
    sent: dict[str, tuple[str, int]] = {}
    for start in range(0, len(txs), BATCH):
        chunk = txs[start:start + BATCH]
        answers = rpc_batch(node, "sendrawtransaction", [[encode_tx(t).hex()] for _, _, t in chunk])
        errors = [a["error"] for a in answers if "error" in a]
        assert not errors, errors[:3]
        for (key, n, _), a in zip(chunk, answers, strict=True):
            sent[a["result"]] = (encode_address(key.address, HRP), n)
    return sent


class Poller(threading.Thread):
    """Asks ``getblockcount`` over and over; records how long each answer took."""

    def __init__(self, node: NodeProcess) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.waits: list[float] = []
        self.heights: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            start = time.perf_counter()
            self.heights.append(self.node.rpc("getblockcount"))
            self.waits.append(time.perf_counter() - start)
            time.sleep(0.01)


@pytest.mark.slow
def test_a_block_with_20000_pending_transfers_keeps_rpc_responsive(node_factory):
    node = node_factory("flood").start()
    sent = fund_and_flood(node, SENDERS, PER_SENDER)
    assert len(sent) == len(SENDERS) * PER_SENDER
    assert node.rpc("getmempoolinfo")["size"] == len(sent)
    with pytest.raises(RpcFailure) as refused:  # the per-sender limit
        node.rpc("sendrawtransaction", encode_tx(make_transfer(SENDERS[0], REGTEST.chain_id, PER_SENDER, SINK,
                                                               1, 1000)).hex())
    assert refused.value.code == -26 and refused.value.message.startswith("sender-limit")

    height = node.rpc("getblockcount")
    poller = Poller(node)
    poller.start()
    time.sleep(0.2)
    try:
        (block_id,) = node.rpc("generatetoaddress", 1, MINER)
        time.sleep(0.3)
    finally:
        poller.halt.set()
        poller.join(10)
    assert height + 1 in poller.heights and height in poller.heights  # it polled across the block
    assert max(poller.waits) < MAX_WAIT, f"a getblockcount waited {max(poller.waits):.2f} s"

    mined = set(node.rpc("getblock", block_id, 1)["tx"][1:])
    max_transfers = REGTEST.max_tx_count - 1
    assert 0 < len(mined) <= max_transfers and mined <= set(sent)
    pending = node.rpc("getrawmempool", True)
    assert len(pending) == node.rpc("getmempoolinfo")["size"] == len(sent) - len(mined)
    assert not mined & set(pending) and set(pending) == set(sent) - mined
    by_sender: dict[str, list[int]] = {}
    for info in pending.values():
        by_sender.setdefault(info["from"], []).append(info["nonce"])
    for key in SENDERS:
        address = encode_address(key.address, HRP)
        account = node.rpc("getaccount", address)
        nonces = sorted(by_sender.get(address, []))
        assert nonces == list(range(account["nonce"], PER_SENDER))
        assert account["next_nonce"] == PER_SENDER
    some_mined = next(iter(mined))
    assert node.rpc("gettransaction", some_mined)["confirmations"] == 1
