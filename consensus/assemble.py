"""Building a block to mine: the template a miner fills in (docs/protocol.md sections 4 and 10).

``build_template`` fixes everything a miner does not search over: height,
parent, time, the ASERT target (from the parent's height and time only, so the
same whatever time the miner picks), the coinbase (subsidy plus fees to the
miner's address) and the transaction root. The miner then varies the
nonce (``HeaderPre.with_nonce``) and, on a winning tile, ``assemble_block``
puts header, certificate and transactions together.

Transfers are taken as given; picking valid ones (nonces, balances) is the
mempool's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pouw.certificate import Certificate
from pouw.header import Header, HeaderPre

from .networks import NetworkParams
from .tx import compute_tx_id, compute_tx_root
from .types import TX_VERSION, Block, Coinbase, Transaction, Tx
from .validation import ParentInfo, compute_expected_target


@dataclass(frozen=True)
class BlockTemplate:
    """A HeaderPre with nonce 0 and the transactions it commits to."""

    pre: HeaderPre
    transactions: tuple[Transaction, ...]


def build_template(
    parent: ParentInfo,
    params: NetworkParams,
    time: int,
    coinbase_to: bytes,
    transfers: Sequence[Tx] = (),
    shape: tuple[int, int, int] | None = None,
) -> BlockTemplate:
    """Template for a child of ``parent`` at ``time`` paying subsidy and fees to ``coinbase_to``.

    ``shape`` is ``(m, n, k)`` of the matrices the miner will multiply (default:
    the network's mining shape).
    """
    height = parent.height + 1
    fees = sum(tx.body.fee for tx in transfers)
    coinbase = Coinbase(TX_VERSION, height, coinbase_to, params.subsidy(height) + fees)
    transactions: tuple[Transaction, ...] = (coinbase, *transfers)
    m, n, k = shape or params.mining_shape
    pre = HeaderPre(
        version=1, height=height, prev_id=parent.block_id,
        tx_root=compute_tx_root([compute_tx_id(t) for t in transactions]),
        time=time, target=compute_expected_target(parent, params), nonce=0, m=m, n=n, k=k,
    )
    return BlockTemplate(pre, transactions)


def assemble_block(template: BlockTemplate, header: Header, certificate: Certificate) -> Block:
    """The block of a mined ``header`` (its HeaderPre is the template's with some nonce)."""
    if header.pre.tx_root != template.pre.tx_root:
        raise ValueError("the header was not mined from this template")
    return Block(header, certificate, template.transactions)
