"""The genesis block of a network, built from its preset (docs/protocol.md section 10).

The genesis block is fixed data, never mined or verified:

- header: height 0, ``prev_id`` all zero, ``time = genesis_time``,
  ``target = initial_target``, nonce 0, the preset's mining shape, ``root_A``
  and ``root_B`` all zero, tile ``(0, 0)``;
- no certificate (zero bytes in the block encoding);
- transactions: one ``Coinbase`` record ``(version 1, height 0, address, amount)``
  per allocation, in preset order; a preset without allocations gets a single
  zero-amount record paying the all-zero address, because a block holds at
  least one transaction;
- ``tx_root`` over those records' ids, like any block.

Its id is ``HK(K("block"), Header)`` like any other block, so the allocations
are committed to by the id that every node checks its database against.
"""

from __future__ import annotations

from pouw.header import Header, HeaderPre

from .networks import NetworkParams
from .tx import compute_tx_id, compute_tx_root
from .types import ADDRESS_SIZE, TX_VERSION, Block, Coinbase

ZERO_ID = bytes(32)


def make_genesis_block(params: NetworkParams) -> Block:
    """The genesis block of ``params``."""
    allocations = params.allocations or ()
    records = tuple(Coinbase(TX_VERSION, 0, a.address, a.amount) for a in allocations)
    if not records:
        records = (Coinbase(TX_VERSION, 0, bytes(ADDRESS_SIZE), 0),)
    m, n, k = params.mining_shape
    pre = HeaderPre(
        version=1, height=0, prev_id=ZERO_ID,
        tx_root=compute_tx_root([compute_tx_id(r) for r in records]),
        time=params.genesis_time, target=params.initial_target, nonce=0, m=m, n=n, k=k,
    )
    return Block(Header(pre, bytes(32), bytes(32), 0, 0), None, records)
