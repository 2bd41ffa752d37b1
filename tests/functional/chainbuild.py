"""Blocks built outside a node for attacks on one: its chain read over RPC, real certificates mined here."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from consensus.assemble import assemble_block, build_template
from consensus.networks import REGTEST
from consensus.types import Block, Tx
from consensus.validation import ParentInfo
from kernels import get_backend, prepare

_PAIRS: dict[int, object] = {}


def parent_info(node, block_hash: str) -> ParentInfo:
    """``ParentInfo`` of a block the node holds, from ``getblock`` (its time and up to ten ancestors')."""
    times = []
    cursor = node.rpc("getblock", block_hash)
    head = cursor
    while len(times) < 11:
        times.append(cursor["time"])
        if cursor["height"] == 0:
            break
        cursor = node.rpc("getblock", cursor["previousblockhash"])
    return ParentInfo(bytes.fromhex(head["hash"]), head["height"], head["time"], int(head["target"], 16), tuple(times))


def mine_block(parent: ParentInfo, miner: bytes, transfers: Sequence[Tx] = (), *, target: int | None = None,
               time_: int | None = None, seed: int = 11) -> Block:
    """A regtest block on ``parent`` with a real certificate for its header (``target`` may replace the right
    one; ``time_`` defaults to the clock, at least one second past the parent's times)."""
    if seed not in _PAIRS:
        m, n, k = REGTEST.mining_shape
        rng = np.random.default_rng(seed)
        _PAIRS[seed] = prepare(rng.integers(-64, 64, (m, k), dtype=np.int8),
                               rng.integers(-64, 64, (k, n), dtype=np.int8))
    pair = _PAIRS[seed]
    t = build_template(parent, REGTEST, time_ or max(int(time.time()), max(parent.recent_times) + 1), miner,
                       list(transfers))
    if target is not None:
        t = replace(t, pre=replace(t.pre, target=target))
    backend = get_backend("numpy")
    nonce = int.from_bytes(os.urandom(6), "little")
    while True:
        r = backend.mine(pair, t.pre, nonce)
        if r.winners:
            w = r.winners[0]
            return assemble_block(t, r.header(pair, w), r.certificate(pair, w))
        nonce += 1
