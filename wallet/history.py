"""Transfers in and out of a wallet, found by scanning the best chain backwards.

The node keeps no per-address index, so the wallet reads blocks from the tip
down (``getblockhash`` then ``getblock`` at verbosity 2, batched to save round
trips), at most ``max_blocks`` of them, and keeps the transactions that touch
one of its addresses: ``send`` (from us), ``receive`` (to us), ``self`` (both)
and ``mined`` (a coinbase paying us). Pending transfers (mempool) are not shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .rpc import RpcClient

BATCH = 50


def scan_history(client: RpcClient, addresses: Iterable[str], max_blocks: int = 1000,
                 progress: Callable[[int, int], None] | None = None) -> tuple[list[dict], int, int]:
    """``(entries newest first, tip height, lowest height scanned)``."""
    ours = set(addresses)
    tip = int(client.call("getblockcount"))
    low = max(0, tip - max_blocks + 1)
    entries: list[dict] = []
    height = tip
    while height >= low:
        heights = list(range(height, max(low, height - BATCH + 1) - 1, -1))
        hashes = client.batch([("getblockhash", [h]) for h in heights])
        blocks = client.batch([("getblock", [bh, 2]) for bh in hashes])
        for block in blocks:
            for tx in block.get("tx", []):
                entry = _entry(tx, block, ours, tip)
                if entry is not None:
                    entries.append(entry)
        height = heights[-1] - 1
        if progress is not None:
            progress(tip - height, tip - low + 1)
    return entries, tip, low


def _entry(tx: dict, block: dict, ours: set[str], tip: int) -> dict | None:
    to_us = tx.get("to") in ours
    base = {"txid": tx["txid"], "height": block["height"], "time": block["time"], "blockhash": block["hash"],
            "confirmations": tip - block["height"] + 1}
    if tx.get("type") == "coinbase":
        if not to_us:
            return None
        kind = "genesis" if block["height"] == 0 else "mined"
        return {**base, "direction": kind, "amount": tx["amount"], "fee": 0, "address": tx["to"],
                "counterparty": None, "delta": tx["amount"]}
    from_us = tx.get("from") in ours
    if not (from_us or to_us):
        return None
    amount, fee = tx["amount"], tx["fee"]
    base["memo"] = tx.get("memo", "")
    base["memo_text"] = _memo_text(base["memo"])
    if from_us and to_us:
        return {**base, "direction": "self", "amount": amount, "fee": fee, "address": tx["from"],
                "counterparty": tx["to"], "delta": -fee}
    if from_us:
        return {**base, "direction": "send", "amount": amount, "fee": fee, "address": tx["from"],
                "counterparty": tx["to"], "delta": -(amount + fee)}
    return {**base, "direction": "receive", "amount": amount, "fee": fee, "address": tx["to"],
            "counterparty": tx["from"], "delta": amount}


def _memo_text(memo_hex: str) -> str | None:
    """The memo as text when it is UTF-8, else ``None`` (the hex stays in ``memo``)."""
    try:
        return bytes.fromhex(memo_hex).decode("utf-8")
    except ValueError:
        return None
