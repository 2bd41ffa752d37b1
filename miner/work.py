"""Templates from a node's ``getblocktemplate`` answer, and blocks from winning tiles.

Everything here is pure and reuses the protocol's own pieces: the template
is a ``consensus.assemble.BlockTemplate`` rebuilt from the answer (its
transaction root is checked), the matrices' shape goes into the HeaderPre
(the shape is the miner's choice: it is not under the transaction root),
and a winning tile becomes a block through ``MineResult.header`` /
``certificate`` and ``assemble_block``, the path ``pouwd --mine`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from consensus.assemble import BlockTemplate, assemble_block
from consensus.codec import decode_coinbase, decode_tx, encode_block
from consensus.errors import DecodeError
from consensus.tx import compute_tx_id, compute_tx_root
from consensus.types import Block, Transaction
from kernels.base import MineResult, Prepared
from pouw.header import HeaderPre

MAX_TEMPLATE_TXS = 100_000
"""Most transactions a template answer may list (a node's blocks hold far fewer)."""


class TemplateError(ValueError):
    """A ``getblocktemplate`` answer that does not hold together (bad hex, a wrong transaction root, ...)."""


@dataclass(frozen=True)
class JobWork:
    """A job leased to this miner with the template: multiply its (padded) matrices for one nonce."""

    job_id: str
    a: str
    b: str
    """Blob hashes of A (m x k) and B (k x n) as submitted."""
    shape: tuple[int, int, int]
    """``(m, k, n)`` as submitted."""
    padded: tuple[int, int, int]
    lease_expires: float


@dataclass(frozen=True)
class Work:
    """One template from the node: what to mine until the next one arrives."""

    template: BlockTemplate
    longpollid: str | None
    job: JobWork | None
    generation: int = 0
    """Counts templates as this miner received them (set by ``miner.engine``)."""
    received: float = 0.0
    """``time.monotonic()`` when it arrived."""

    @property
    def prev_id(self) -> bytes:
        return self.template.pre.prev_id

    @property
    def height(self) -> int:
        return self.template.pre.height


def _hex(answer: dict, key: str) -> bytes:
    value = answer.get(key)
    if not isinstance(value, str):
        raise TemplateError(f"template: {key} is missing or not a string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise TemplateError(f"template: {key} is not hex") from None


def _shape(d: Any, names: str, what: str) -> tuple[int, int, int]:
    if not isinstance(d, dict) or any(not isinstance(d.get(x), int) or d[x] < 1 for x in names):
        raise TemplateError(f"template: {what} needs positive integers {', '.join(names)}")
    return d[names[0]], d[names[1]], d[names[2]]


def parse_template(answer: Any) -> Work:
    """The ``Work`` of a ``getblocktemplate`` answer; raise ``TemplateError`` if it does not hold together."""
    if not isinstance(answer, dict):
        raise TemplateError("template: expected a JSON object")
    try:
        pre = HeaderPre.decode(_hex(answer, "header_pre"))
    except ValueError as e:
        raise TemplateError(f"template: header_pre: {e}") from None
    raw_txs = answer.get("transactions")
    if not isinstance(raw_txs, list) or not raw_txs or len(raw_txs) > MAX_TEMPLATE_TXS:
        raise TemplateError(f"template: transactions must be a list of 1 to {MAX_TEMPLATE_TXS} hex strings")
    txs: list[Transaction] = []
    try:
        for i, raw in enumerate(raw_txs):
            if not isinstance(raw, str):
                raise TemplateError(f"template: transaction {i} is not a hex string")
            data = bytes.fromhex(raw)
            txs.append(decode_coinbase(data) if i == 0 else decode_tx(data))
    except (ValueError, DecodeError) as e:
        raise TemplateError(f"template: transaction {len(txs)}: {e}") from None
    if compute_tx_root([compute_tx_id(t) for t in txs]) != pre.tx_root:
        raise TemplateError("template: the transactions do not give header_pre's tx_root")
    job = None
    if answer.get("job") is not None:
        j = answer["job"]
        if not isinstance(j, dict) or not all(isinstance(j.get(x), str) for x in ("job_id", "a", "b")):
            raise TemplateError("template: job needs job_id, a and b")
        job = JobWork(j["job_id"], j["a"], j["b"], _shape(j.get("shape"), "mkn", "job.shape"),
                      _shape(j.get("padded_shape"), "mkn", "job.padded_shape"),
                      float(j.get("lease_expires") or 0.0))
    pollid = answer.get("longpollid")
    return Work(BlockTemplate(pre, tuple(txs)), pollid if isinstance(pollid, str) else None, job)


def at_shape(pre: HeaderPre, prepared: Prepared) -> HeaderPre:
    """``pre`` for the miner's own matrices: the shape fields set to theirs (``(m, k, n)``)."""
    m, k, n = prepared.shape
    if (pre.m, pre.k, pre.n) == (m, k, n):
        return pre
    return replace(pre, m=m, k=k, n=n)


def winning_block(template: BlockTemplate, prepared: Prepared, result: MineResult) -> Block | None:
    """The block of the first winning tile of ``result`` (mined on ``template`` at the matrices' shape), if any."""
    if not result.winners:
        return None
    w = result.winners[0]
    return assemble_block(template, result.header(prepared, w), result.certificate(prepared, w))


def block_hex(block: Block) -> str:
    return encode_block(block).hex()
