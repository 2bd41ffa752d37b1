"""Mempool figures: admission rate, the cost of a tip change, and RPC latency while a full block connects.

Prints figures, asserts nothing.

1. Admission of 25,000 transfers into an in-process ``Mempool``, from many
   senders (1,000 senders x 25) and from one sender (the per-sender limit lifted
   for this run), with the signature check (``add``) and without it
   (``add(verified=True)``: the mempool's own bookkeeping).
2. One tip change with 25,000 pending and a block of 1,000 transfers: the
   block's transfers spread over every sender, or from a few senders, and the
   block disconnected again (its 1,000 transfers taken back). It reports the
   whole time, the longest stretch the event loop waited (``on_tip_change``
   yields between slices) and the ``get_account`` reads.
3. A real ``pouwd --network regtest`` (``tests/functional/harness.py``): 25
   senders funded by the faucet send 1,000 transfers each (25,000 pending),
   then ``generatetoaddress 1`` mines a block (at most ``max_tx_count - 1`` =
   9,999 transfers, the network's limit) while a thread polls
   ``getblockcount``; p50/p99/max of those answers.

    .venv/bin/python bench/mempool.py              # all three
    .venv/bin/python bench/mempool.py --no-node    # 1 and 2 only
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consensus.address import compute_address, encode_address
from consensus.codec import encode_tx
from consensus.keys import KeyPair, devnet_keypairs, keypair_from_private
from consensus.networks import REGTEST
from consensus.tx import make_transfer
from consensus.types import Account, Tx
from node.mempool import Mempool
from tests.functional.harness import NodeProcess

CHAIN = REGTEST.chain_id
TO = b"\x42" * 20
TOTAL = 25_000


class Accounts(dict):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_account(self, address: bytes) -> Account:
        self.reads += 1
        return self.get(address, Account(10**15, 0))


def keys(count: int) -> list[KeyPair]:
    # Cheap distinct keys (derivation is slow and not what is measured here).
    return [keypair_from_private(i.to_bytes(32, "big")) for i in range(1, count + 1)]


def transfers(senders: list[KeyPair], per_sender: int) -> list[Tx]:
    """Nonce order per sender, senders interleaved (as they would arrive)."""
    return [make_transfer(k, CHAIN, n, TO, 1 + n % 5, 1000 + (n * 7 + i) % 13)
            for n in range(per_sender) for i, k in enumerate(senders)]


def admit(txs: list[Tx], *, verified: bool, per_sender: int = 1_000) -> tuple[Mempool, Accounts, float]:
    state = Accounts()
    mp = Mempool(REGTEST, state.get_account, max_per_sender=per_sender)
    start = time.perf_counter()
    for t in txs:
        mp.add(t, verified=verified)
    return mp, state, time.perf_counter() - start


def apply(state: Accounts, block: list[Tx], sign: int) -> None:
    """Move ``state`` over ``block`` (sign=1) or back (sign=-1), as the chain would (senders only)."""
    for t in block:
        address = compute_address(t.body.pubkey)
        acct = state.get(address, Account(10**15, 0))
        state[address] = Account(acct.balance - sign * (t.body.amount + t.body.fee), acct.nonce + sign)


async def timed_tip_change(mp: Mempool, state: Accounts, mined: list[Tx], returned: list[Tx]) -> dict:
    """Run one ``on_tip_change`` with a ticker task on the loop; the longest gap is the loop's longest wait."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    state.reads = 0
    before = len(mp)
    start = time.perf_counter()
    dropped = await mp.on_tip_change(mined, returned)
    seconds = time.perf_counter() - start
    done.set()
    await tick
    return {"seconds": seconds, "longest_wait": max(gaps, default=seconds), "reads": state.reads,
            "dropped": len(dropped), "before": before, "after": len(mp)}


def section_admission() -> None:
    print(f"== admission of {TOTAL:,} transfers")
    many = transfers(keys(1_000), TOTAL // 1_000)
    one = transfers(keys(1), TOTAL)
    for name, txs, per_sender in (("1,000 senders x 25", many, 1_000), ("1 sender x 25,000", one, TOTAL)):
        for verified in (False, True):
            _, _, seconds = admit(txs, verified=verified, per_sender=per_sender)
            what = "bookkeeping only (verified=True)" if verified else "with signature check"
            print(f"  {name:20s} {what:34s} {seconds:6.2f} s  {len(txs) / seconds:9,.0f} tx/s")


def section_tip_change() -> None:
    print(f"== one tip change with {TOTAL:,} pending, block of 1,000 transfers")
    many_keys = keys(1_000)
    many = transfers(many_keys, TOTAL // 1_000)
    few_keys = keys(25)
    few = transfers(few_keys, TOTAL // 25)
    cases = [
        ("1,000 senders x 25; block: nonce 0 of every sender (all touched)", many, 1_000,
         lambda txs: [t for t in txs if t.body.nonce == 0]),
        ("1,000 senders x 25; block: every transfer of 40 senders", many, 1_000,
         lambda txs: [t for t in txs if t.body.pubkey in {k.public_key for k in many_keys[:40]}]),
        ("25 senders x 1,000; block: nonces 0-39 of every sender", few, 1_000,
         lambda txs: [t for t in txs if t.body.nonce < 40]),
    ]
    for name, txs, per_sender, pick in cases:
        mp, state, _ = admit(txs, verified=True, per_sender=per_sender)
        block = pick(txs)
        apply(state, block, 1)
        connect = asyncio.run(timed_tip_change(mp, state, block, []))
        apply(state, block, -1)
        disconnect = asyncio.run(timed_tip_change(mp, state, [], block))
        print(f"  {name} ({len(block):,} transfers)")
        for what, r in (("connect", connect), ("disconnect", disconnect)):
            print(f"    {what:10s} {r['seconds'] * 1e3:7.1f} ms  longest loop wait {r['longest_wait'] * 1e3:5.1f} ms  "
                  f"get_account reads {r['reads']:5,}  pending {r['before']:,} -> {r['after']:,}")


def section_node() -> None:
    senders = devnet_keypairs(35)[10:35]
    per_sender = TOTAL // len(senders)
    miner = encode_address(devnet_keypairs(1)[0].address, REGTEST.hrp)
    print(f"== pouwd --network regtest: {len(senders)} senders x {per_sender:,} pending, then one block")
    with tempfile.TemporaryDirectory() as tmp:
        node = NodeProcess(Path(tmp) / "node").start()
        try:
            for key in senders:
                node.rpc("faucet", encode_address(key.address, REGTEST.hrp), 1_000 * 10**8)
            node.rpc("generatetoaddress", 1, miner)
            txs = transfers(senders, per_sender)
            start = time.perf_counter()
            for i in range(0, len(txs), 1_000):
                batch = [{"jsonrpc": "2.0", "id": j, "method": "sendrawtransaction", "params": [encode_tx(t).hex()]}
                         for j, t in enumerate(txs[i:i + 1_000])]
                answers = node.call(batch)
                assert isinstance(answers, list)
                bad = [a["error"] for a in answers if "error" in a]
                if bad:
                    print("  refused:", bad[:3])
            flood = time.perf_counter() - start
            size = node.rpc("getmempoolinfo")["size"]
            print(f"  flood over RPC (batches of 1,000): {len(txs):,} in {flood:.1f} s ({len(txs) / flood:,.0f} tx/s), "
                  f"mempool {size:,}")

            waits: list[float] = []
            halt = threading.Event()

            def poll() -> None:
                while not halt.is_set():
                    t0 = time.perf_counter()
                    node.rpc("getblockcount")
                    waits.append(time.perf_counter() - t0)
                    time.sleep(0.005)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            time.sleep(0.2)
            start = time.perf_counter()
            (block_id,) = node.rpc("generatetoaddress", 1, miner)
            mined_in = time.perf_counter() - start
            time.sleep(0.3)
            halt.set()
            poller.join()
            block = node.rpc("getblock", block_id, 1)
            after = node.rpc("getmempoolinfo")["size"]
            waits.sort()
            p = lambda q: waits[min(len(waits) - 1, round(q * (len(waits) - 1)))] * 1e3  # noqa: E731
            print(f"  generatetoaddress 1: {mined_in:.2f} s, block of {len(block['tx']) - 1:,} transfers "
                  f"({block['size']:,} bytes), mempool {size:,} -> {after:,}")
            print(f"  getblockcount during it: {len(waits)} requests, p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, "
                  f"max {waits[-1] * 1e3:.1f} ms, mean {statistics.mean(waits) * 1e3:.1f} ms")
        finally:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-node", action="store_true", help="skip the real pouwd part")
    args = parser.parse_args()
    section_admission()
    section_tip_change()
    if not args.no_node:
        section_node()


if __name__ == "__main__":
    main()
