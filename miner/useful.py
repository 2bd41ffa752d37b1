"""``UsefulMiner``: exact products of your own integer matrices, computed as mining work for a node.

Each ``matmul(A, B)`` multiplies int7 matrices (entries in ``[-64, 63]``) the
way a miner does: the pair is zero-padded to the shape rules, committed, and
multiplied for one nonce against the node's current template, with the exact
product recovered from the noised one (docs/protocol.md section 7). So every
call draws lottery tickets (one per 16x16 output tile), and a winning tile
becomes a block submitted to the node: the matrices are the miner's own
choice, as the protocol allows. The answer is ``A @ B`` in int64, bit-exact.

Wider integers (int8 beyond ``[-64, 63]``, int16, int32, int64, unsigned) are
split into balanced radix-128 digits (``wallet.digits``): one int7 product per
pair of non-zero digit matrices, recombined exactly in int64 (wrapping
modulo 2^64 as NumPy's int64 matmul does). An inner dimension beyond the
protocol's ``K_MAX`` is cut into slices whose products are summed.

The template is fetched again when it is older than ``template_max_age``
seconds and after every block found, so a call mines on the current tip
(up to that age). ``last`` reports the call: multiply-adds (padded), matmuls,
tickets drawn, blocks found and refused; ``totals`` adds every call up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kernels.base import Backend, prepare
from kernels.select import get_backend
from pouw.constants import K_MAX, TILE, VALUE_MAX, VALUE_MIN
from pouw.matrix import pad_pair
from wallet.rpc import RpcClient, RpcError

from .client import MinerClient
from .work import Work, at_shape, winning_block


@dataclass
class CallReport:
    """What one ``matmul`` (or all of them, ``totals``) did as mining work."""

    macs: int = 0
    """Multiply-adds of the padded int7 matmuls."""
    matmuls: int = 0
    tickets: int = 0
    """Lottery tickets drawn: one per 16x16 tile of every padded product."""
    blocks: list[str] = field(default_factory=list)
    """Ids of the blocks found and accepted by the node."""
    refused: int = 0
    """Winning blocks the node refused (a tip that moved meanwhile, mostly)."""

    def add(self, other: CallReport) -> None:
        self.macs += other.macs
        self.matmuls += other.matmuls
        self.tickets += other.tickets
        self.blocks.extend(other.blocks)
        self.refused += other.refused


def _wrapped(v: int) -> np.int64:
    """``v`` modulo 2^64 as a signed int64 (array arithmetic with it then wraps the same way)."""
    return np.int64(((v + (1 << 63)) % (1 << 64)) - (1 << 63))


def _int7(x: np.ndarray) -> bool:
    return x.size == 0 or (int(x.min()) >= VALUE_MIN and int(x.max()) <= VALUE_MAX)


def _digits(x: np.ndarray) -> list[np.ndarray]:
    try:
        from wallet.digits import to_digits  # written alongside; without it only int7 entries work
    except ImportError:
        raise TypeError(f"entries outside [{VALUE_MIN}, {VALUE_MAX}] need wallet.digits, which is missing here; "
                        "only int7 matrices can be multiplied") from None
    return to_digits(x)


class UsefulMiner:
    """Multiply your matrices as mining work against the node at ``rpc_url``.

    ``backend``: a ``kernels`` backend (default: ``kernels.select.get_backend()``,
    CuPy where a GPU works, else NumPy). ``auth``: ``(user, password)`` (a
    cookie's). ``address``: the coinbase address (default: the node's).
    """

    def __init__(self, rpc_url: str, backend: Backend | None = None, *, auth: tuple[str, str] | None = None,
                 address: str | None = None, template_max_age: float = 1.0,
                 client: MinerClient | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client or MinerClient(RpcClient(rpc_url, auth=auth), address=address)
        self.backend = backend or get_backend()
        self.template_max_age = template_max_age
        self._clock = clock
        self._work: Work | None = None
        self._fetched = 0.0
        self._nonce = int.from_bytes(np.random.default_rng().bytes(8), "little")
        self.last = CallReport()
        self.totals = CallReport()

    def _template(self) -> Work:
        if self._work is None or self._clock() - self._fetched > self.template_max_age:
            self._work = self.client.template(jobs=False)
            self._fetched = self._clock()
        return self._work

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``A @ B`` in int64, exact, computed as mining work (``last`` says what it mined)."""
        a, b = np.asarray(a), np.asarray(b)
        for name, x in (("A", a), ("B", b)):
            if x.ndim != 2 or x.dtype.kind not in "iu":
                raise TypeError(f"{name}: expected a 2-D integer matrix, found {x.ndim}-D {x.dtype}")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"inner dimensions differ: A is {a.shape[0]}x{a.shape[1]}, B is {b.shape[0]}x{b.shape[1]}")
        if min(a.shape[0], a.shape[1], b.shape[1]) == 0:
            return np.zeros((a.shape[0], b.shape[1]), np.int64)
        report = CallReport()
        try:
            if _int7(a) and _int7(b):
                return self._int7_product(a.astype(np.int8), b.astype(np.int8), report)
            da = _digits(a)
            db = _digits(b)
            out = np.zeros((a.shape[0], b.shape[1]), np.int64)
            for i, di in enumerate(da):  # sum_i sum_j 128^(i+j) A_i B_j, wrapping mod 2^64 like an int64 matmul
                if not di.any():
                    continue
                for j, dj in enumerate(db):
                    if dj.any():
                        out += _wrapped(128 ** (i + j)) * self._int7_product(di, dj, report)
            return out
        finally:
            self.last = report
            self.totals.add(report)

    def _int7_product(self, a: np.ndarray, b: np.ndarray, report: CallReport) -> np.ndarray:
        k = a.shape[1]
        if k <= K_MAX:
            return self._mine_pair(a, b, report)
        out = np.zeros((a.shape[0], b.shape[1]), np.int64)
        for s in range(0, k, K_MAX):
            out += self._mine_pair(a[:, s : s + K_MAX], b[s : s + K_MAX], report)
        return out

    def _mine_pair(self, a: np.ndarray, b: np.ndarray, report: CallReport) -> np.ndarray:
        m, n = a.shape[0], b.shape[1]
        prepared = prepare(*pad_pair(np.ascontiguousarray(a), np.ascontiguousarray(b)))
        work = self._template()
        nonce, self._nonce = self._nonce, (self._nonce + 1) % (1 << 64)
        result = self.backend.mine(prepared, at_shape(work.template.pre, prepared), nonce, want_product=True)
        pm, pk, pn = prepared.shape
        report.macs += pm * pk * pn
        report.matmuls += 1
        report.tickets += (pm // TILE) * (pn // TILE)
        block = winning_block(work.template, prepared, result)
        if block is not None:
            self._work = None  # this template is spent: the next matmul mines on the new tip
            try:
                self.client.submit_block(block)
                report.blocks.append(block.header.block_id.hex())
            except RpcError:
                report.refused += 1
        if result.product is None:
            raise RuntimeError(f"backend {self.backend.name!r} returned no product")
        return result.product[:m, :n].astype(np.int64)
