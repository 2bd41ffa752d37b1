"""Paid-job fixtures for tests (docs/protocol.md section 11): fixed matrices, their roots, products and proofs.

Matrices come from a fixed integer formula, never a random generator, so the
vectors built on them mean the same on every platform. ``Ledger`` applies
blocks of job transactions through ``consensus.state.apply_block`` on a
``node.records.DictView`` and checks section 11's conservation after each.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from consensus.errors import BlockTxInvalid
from consensus.jobmarket import padded_dims
from consensus.keys import KeyPair
from consensus.networks import DEVNET, NetworkParams
from consensus.state import StateChange, apply_block
from consensus.tx import compute_min_fee, make_job_tx
from consensus.types import (
    Account,
    Block,
    Coinbase,
    FraudPayload,
    Header,
    HeaderPre,
    JobPayload,
    JobRecord,
    OfferPayload,
    Tx,
)
from node.records import DictView
from pouw.commit import Commitment, commit_pair
from pouw.constants import TILE
from pouw.jobs import compute_job_id
from pouw.matrix import pad_pair
from pouw.tiles import ProductCommitment, commit_product, pad_product, tile_of

PARAMS: NetworkParams = DEVNET
"""Devnet: ``W = 10``, one base unit per byte, offers live up to 720 blocks."""


def formula_a(m: int, k: int) -> np.ndarray:
    """``A[i, t] = (7i + 3t + 1) mod 128 - 64``: every int7 value, no RNG."""
    i, t = np.indices((m, k))
    return ((7 * i + 3 * t + 1) % 128 - 64).astype(np.int8)


def formula_b(k: int, n: int) -> np.ndarray:
    """``B[t, j] = (5t + 11j + 2) mod 128 - 64``."""
    t, j = np.indices((k, n))
    return ((5 * t + 11 * j + 2) % 128 - 64).astype(np.int8)


@dataclass
class Job:
    """One job's matrices (unpadded and padded), roots and id."""

    m: int
    k: int
    n: int
    a: np.ndarray
    b: np.ndarray
    pa: np.ndarray
    pb: np.ndarray
    commit: Commitment

    @property
    def job_id(self) -> bytes:
        return compute_job_id(self.m, self.k, self.n, self.commit.root_a, self.commit.root_b)

    @property
    def padded(self) -> tuple[int, int, int]:
        return padded_dims(self.m, self.k, self.n)

    def product(self) -> np.ndarray:
        """The honest ``m x n`` product of the matrices as submitted (int32)."""
        return self.a.astype(np.int32) @ self.b.astype(np.int32)

    def padded_product(self, c: np.ndarray | None = None) -> np.ndarray:
        m_p, _, n_p = self.padded
        return pad_product(self.product() if c is None else c, m_p, n_p)

    def offer(self, reward: int, deposit: int, bond: int, deadline: int) -> OfferPayload:
        return OfferPayload(self.m, self.k, self.n, self.commit.root_a, self.commit.root_b, reward, deposit, bond,
                            deadline)

    def fraud(self, c_padded: np.ndarray, tile_i: int, tile_j: int,
              product: ProductCommitment | None = None) -> FraudPayload:
        """The fraud payload naming tile ``(I, J)`` of the claimed padded product ``c_padded``."""
        pc = product or commit_product(c_padded)
        bt = np.ascontiguousarray(self.pb.T)
        return FraudPayload(
            tile_i, tile_j, tile_of(c_padded, tile_i, tile_j), tuple(pc.path(tile_i, tile_j)),
            self.pa[TILE * tile_i : TILE * (tile_i + 1)].tobytes(), tuple(self.commit.path_a(tile_i)),
            bt[TILE * tile_j : TILE * (tile_j + 1)].tobytes(), tuple(self.commit.path_b(tile_j)),
        )


def make_job(m: int, k: int, n: int, *, dirty_padding: bool = False) -> Job:
    """The formula job of shape ``m x k x n``; ``dirty_padding`` commits non-zero rows/columns beyond ``m``, ``n``.

    Dirty padding is what a dishonest client could commit (the roots are its
    own); it touches only rows ``>= m`` of ``A`` and columns ``>= n`` of ``B``,
    the region section 11 forces to 0 in a fraud check.
    """
    a, b = formula_a(m, k), formula_b(k, n)
    pa, pb = pad_pair(a, b)
    if dirty_padding:
        pa[m:, :] = 3
        pb[:, n:] = -5
    return Job(m, k, n, a, b, pa, pb, commit_pair(pa, pb))


def job_tx(key: KeyPair, nonce: int, kind: int, id_: bytes, payload: JobPayload, *,
           params: NetworkParams = PARAMS, fee: int | None = None) -> Tx:
    """A signed job transaction paying exactly the minimum fee (fixed-width fields: the size does not depend on it)."""
    if fee is None:
        fee = compute_min_fee(make_job_tx(key, params.chain_id, nonce, kind, id_, payload, 0), params.min_fee_per_byte)
    return make_job_tx(key, params.chain_id, nonce, kind, id_, payload, fee)


def make_block(height: int, txs: tuple[Tx, ...] | list[Tx], miner: bytes = bytes(20), amount: int = 0) -> Block:
    """A block for ``apply_block`` (header fields other than the height do not matter to the state)."""
    pre = HeaderPre(1, height, bytes(32), bytes(32), 0, 1, 0, 16, 16, 256)
    return Block(Header(pre, bytes(32), bytes(32), 0, 0), None, (Coinbase(1, height, miner, amount), *txs))


class Ledger:
    """Balances and records on a ``DictView``, advanced one applied block at a time.

    Coinbases pay nothing, so section 11's conservation reads:
    ``sum(balances) + sum(escrow of live records) == allocations - fees paid - burned``.
    """

    def __init__(self, balances: dict[bytes, int], params: NetworkParams = PARAMS, height: int = 0) -> None:
        self.params = params
        self.view = DictView({a: Account(v, 0) for a, v in balances.items()}, {})
        self.height = height
        self.allocated = sum(balances.values())
        self.fees = 0
        self.burned = 0

    def balance(self, address: bytes) -> int:
        account = self.view.get_account(address)
        return account.balance if account is not None else 0

    def nonce(self, address: bytes) -> int:
        account = self.view.get_account(address)
        return account.nonce if account is not None else 0

    def record(self, offer_id: bytes) -> JobRecord | None:
        return self.view.get_job_record(offer_id)

    def tx(self, key: KeyPair, kind: int, id_: bytes, payload: JobPayload = None, *, nonce: int | None = None,
           fee: int | None = None) -> Tx:
        """A job transaction from ``key`` with its next nonce (or ``nonce``) and the minimum fee (or ``fee``)."""
        return job_tx(key, self.nonce(key.address) if nonce is None else nonce, kind, id_, payload,
                      params=self.params, fee=fee)

    def advance_to(self, height: int) -> None:
        """Skip to just below ``height``: the next block applied has height ``height`` (empty blocks change nothing)."""
        assert height > self.height
        self.height = height - 1

    def try_block(self, *txs: Tx) -> StateChange:
        """Apply a block of ``txs`` at the next height without keeping it (raises ``BlockTxInvalid``)."""
        return apply_block(self.view, make_block(self.height + 1, txs), self.params)

    def block(self, *txs: Tx) -> StateChange:
        """Apply a block of ``txs`` at the next height, keep it, and check conservation."""
        change = self.try_block(*txs)
        self.height += 1
        for address, account in change.accounts:
            self.view.accounts[address] = account
        for offer_id, record in change.records:
            if record is None:
                self.view.records.pop(offer_id, None)
            else:
                self.view.records[offer_id] = record
        self.fees += sum(tx.body.fee for tx in txs)
        self.burned += change.burned
        self.check_conservation()
        return change

    def refuse(self, *txs: Tx) -> BaseException:
        """Apply a block that must be invalid; return the cause and check nothing changed."""
        before = (dict(self.view.accounts), dict(self.view.records), self.height)
        try:
            self.try_block(*txs)
        except BlockTxInvalid as e:
            assert before == (dict(self.view.accounts), dict(self.view.records), self.height)
            return e.cause
        raise AssertionError("the block was expected to be invalid")

    def check_conservation(self) -> None:
        total = sum(a.balance for a in self.view.accounts.values())
        escrow = sum(r.escrow for r in self.view.records.values())
        assert total + escrow == self.allocated - self.fees - self.burned, "section 11 conservation broken"


def with_params(**changes: int) -> NetworkParams:
    """Devnet with some job-market parameters changed."""
    return replace(PARAMS, **changes)
