"""The backend interface shared by every compute backend.

A backend takes a prepared matrix pair (validated, committed once), a HeaderPre
template and a nonce, and returns the winning tiles (or every ticket on
request) and, on request, the exact product ``C = A @ B``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pouw.certificate import Certificate, make_certificate
from pouw.commit import Commitment, leaf_a, leaf_b, tree_levels
from pouw.header import Header, HeaderPre
from pouw.matrix import transpose_int8, validate_pair
from pouw.seeds import Seeds


class BackendError(RuntimeError):
    """A backend cannot be used (missing library, no device, failed self-test)."""


@dataclass(frozen=True)
class Prepared:
    """A validated matrix pair with its commitments, reused across nonces."""

    a: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    commitment: Commitment

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(m, k, n)``."""
        return self.commitment.m, self.commitment.k, self.commitment.n


def prepare(a: np.ndarray, b: np.ndarray) -> Prepared:
    """Validate ``A`` (m x k) and ``B`` (k x n) and commit to them.

    ``A``'s tree is hashed on a second thread while ``B`` is transposed (it is
    committed column block by column block) and hashed: NumPy copies and BLAKE3
    over 16-row blocks release the GIL.
    """
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    m, k, n = validate_pair(a, b)
    with ThreadPoolExecutor(1, thread_name_prefix="pouw-prepare") as pool:
        future_a = pool.submit(tree_levels, leaf_a, a)
        levels_b = tree_levels(leaf_b, transpose_int8(b))
        levels_a = future_a.result()
    return Prepared(a, b, Commitment(m, k, n, levels_a[-1][0], levels_b[-1][0], levels_a, levels_b))


@dataclass(frozen=True)
class Winner:
    tile_i: int
    tile_j: int
    ticket: bytes


@dataclass(frozen=True)
class MineResult:
    """Outcome of one mining attempt (one nonce = one noised matmul)."""

    pre: HeaderPre
    seeds: Seeds
    threshold: int
    winners: tuple[Winner, ...]
    """Winning tiles in row-major order."""
    tickets: np.ndarray | None = field(default=None, repr=False)
    """``(m/16, n/16, 32)`` uint8 when every ticket was asked for."""
    product: np.ndarray | None = field(default=None, repr=False)
    """Exact ``A @ B`` (int32) when asked for."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase (noise, gemm, transcript, tickets, peel, ...)."""

    def header(self, prepared: Prepared, winner: Winner) -> Header:
        c = prepared.commitment
        return Header(self.pre, c.root_a, c.root_b, winner.tile_i, winner.tile_j)

    def certificate(self, prepared: Prepared, winner: Winner) -> Certificate:
        return make_certificate(prepared.a, prepared.b, prepared.commitment, winner.tile_i, winner.tile_j)


class Backend(Protocol):
    """What a compute backend offers."""

    name: str

    def mine(
        self, prepared: Prepared, template: HeaderPre, nonce: int, *,
        want_product: bool = False, all_tickets: bool = False,
    ) -> MineResult:
        """Mine ``template`` with ``nonce`` over ``prepared``; exact, bit-identical to the reference."""
        ...


def check_template(prepared: Prepared, template: HeaderPre) -> None:
    m, k, n = prepared.shape
    if (template.m, template.k, template.n) != (m, k, n):
        raise ValueError(
            f"template shape m={template.m} k={template.k} n={template.n} does not match the matrices {m}x{k}x{n}"
        )
