"""Explorer RPC methods: one read-only call per page of ``/explorer`` (home, block, transaction, address, offer,
search).

Why whole views: the page used to make one call per block and per detail
(about 33 for the home page); each of these methods answers a page in one
request, paged on the server, every list bounded by its parameter's maximum.

Every view is built from one ``ChainSnapshot`` (a tip and the store as of that
tip, point reads only), in the node's work pool, so a view is consistent (its
blocks, accounts and address history all belong to one tip) and never waits
on the chain thread or blocks the event loop. The mempool, owned by the event
loop, is read there first. Transactions are shown through
``views.tx_fields``, one dict for every kind.

Address history comes from the address index (``node.addrindex``): newest
first, ``limit`` entries per call, ``cursor`` (the answer's ``next_cursor``)
for the next page. The index covers blocks above genesis; an address's genesis
allocations are listed apart (``genesis``).

Paid job offers (section 11) come from the node's ``OfferBook`` (``node.offers``),
read on the event loop like the mempool, since the book changes there on every
tip change: the home page's newest offers, the offer page (``getexploreroffer``:
the record, its offer / claim / final transactions, the held product), the
search for an offer id, and the job id of claims and finals (a claim names
only its offer; the book knows the offer's job). The book follows the tip
events, so it can trail the snapshot a view reads by a block.
"""

from __future__ import annotations

import asyncio
import heapq
import re
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from consensus.codec import decode_coinbase, decode_header, decode_tx
from consensus.errors import DecodeError
from consensus.genesis import make_genesis_block
from consensus.tx import compute_tx_id
from consensus.types import Coinbase, Header, Transaction, TxBody
from pouw.errors import VerificationError
from pouw.header import compute_work
from pouw.verify import verify

from .. import addrindex, schema
from ..chainhandle import ChainHandle
from ..errors import StorageError
from ..jobs import JobError, JobService
from ..mempool import Mempool
from ..offers import OfferBook, OfferInfo
from ..records import decode_stored, load_block
from ..rpc import errors as E
from ..rpc.errors import RpcError
from ..rpc.registry import Param, rpc_method
from ..snapshot import ChainSnapshot
from .offers import ProductSource, offer_json
from .views import ADDRESS, HEX32, JOB_KIND_NAMES, Addresses, tx_fields

T = TypeVar("T")

MAX_HOME_BLOCKS = 50
MAX_HOME_TXS = 100
MAX_BLOCK_TXS = 200
MAX_ADDRESS_TXS = 100
MAX_ADDRESS_PENDING = 20
MAX_HOME_JOBS = 10
MAX_HOME_OFFERS = 50
MAX_QUERY = 128
SUMMARY_CACHE = 1024
"""Block summaries kept (a block's summary never changes): the home page reads each block's body once."""

BLOCK_REF = {"type": "string", "pattern": "^([0-9a-fA-F]{64}|[0-9]{1,19})$"}
"""A block id (64 hex digits) or a main-chain height (decimal digits)."""

_U32 = struct.Struct("<I")
_HASH_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_HEIGHT_RE = re.compile(r"^[0-9]{1,19}$")


class SummaryCache:
    """Block summaries by id, the newest ``size`` used (thread-safe: views run in the work pool)."""

    def __init__(self, size: int = SUMMARY_CACHE) -> None:
        self.size = size
        self._items: OrderedDict[bytes, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, block_id: bytes) -> dict | None:
        with self._lock:
            item = self._items.get(block_id)
            if item is not None:
                self._items.move_to_end(block_id)
            return item

    def put(self, block_id: bytes, summary: dict) -> None:
        with self._lock:
            self._items[block_id] = summary
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class ChainView:
    """Point reads of one snapshot: blocks by height or id, their headers and summaries (any thread)."""

    def __init__(self, snap: ChainSnapshot, addresses: Addresses, summaries: SummaryCache | None = None) -> None:
        self.snap = snap
        self.state = snap.state
        self.addresses = addresses
        self.summaries = summaries if summaries is not None else SummaryCache(0)
        self._headers: dict[bytes, Header] = {}
        self._header_sizes: dict[bytes, int] = {}

    @property
    def height(self) -> int:
        return self.snap.height

    def block_id(self, height: int) -> bytes | None:
        """Id of the main-chain block at ``height`` as of the snapshot."""
        if not 0 <= height <= self.snap.height:
            return None
        return self.state.get(schema.main_key(height))

    def header(self, block_id: bytes) -> Header | None:
        if block_id not in self._headers:
            raw = self.state.get(schema.header_key(block_id))
            if raw is None:
                return None
            self._headers[block_id] = decode_stored(decode_header, raw)
            self._header_sizes[block_id] = len(raw)
        return self._headers[block_id]

    def on_main(self, block_id: bytes, height: int) -> bool:
        return self.block_id(height) == block_id

    def summary(self, block_id: bytes) -> dict:
        """A block's line in a list: height, id, time, transactions, size, miner and reward, from its records."""
        cached = self.summaries.get(block_id)
        if cached is not None:
            return dict(cached)
        header = self.header(block_id)
        cert = self.state.get(schema.certificate_key(block_id))
        body = self.state.get(schema.body_key(block_id))
        if header is None or cert is None or body is None or len(body) < 8:
            raise StorageError(f"block {block_id.hex()} is indexed but its data is missing")
        p = header.pre
        miner, reward = None, None
        if p.height > 0:  # the coinbase comes first: u32 count || u32 len || coinbase
            (size,) = _U32.unpack_from(body, 4)
            coinbase = decode_stored(decode_coinbase, body[8 : 8 + size])
            miner, reward = self.addresses.encode(coinbase.to), coinbase.amount
        out = {"height": p.height, "hash": block_id.hex(), "time": p.time, "tx_count": _U32.unpack_from(body)[0],
               "size": self._header_sizes[block_id] + len(cert) + len(body),
               "miner": miner, "reward": reward, "target": f"{p.target:064x}",
               "shape": {"m": p.m, "n": p.n, "k": p.k}}
        self.summaries.put(block_id, out)
        return dict(out)


def resolve_block(view: ChainView, ref: str) -> bytes:
    """The id a block reference names: a height on the main chain or a stored block id."""
    if _HEIGHT_RE.match(ref):
        height = int(ref)
        block_id = view.block_id(height)
        if block_id is None:
            raise RpcError(E.INVALID_PARAMETER, f"block height {height} out of range (tip is {view.height})")
        return block_id
    block_id = bytes.fromhex(ref)
    if view.state.get(schema.index_key(block_id)) is None:
        raise RpcError(E.INVALID_ADDRESS_OR_KEY, f"block {ref.lower()} not found")
    return block_id


def home_view(view: ChainView, blocks: int) -> dict:
    """The chain part of the home page: the tip's figures and the newest ``blocks`` blocks."""
    tip = view.snap.tip
    ids = [view.block_id(h) for h in range(tip.height, max(tip.height - blocks, -1), -1)]
    return {"height": tip.height, "bestblockhash": tip.block_id.hex(), "time": tip.time,
            "mediantime": view.snap.median_time, "difficulty": compute_work(tip.target),
            "target": f"{tip.target:064x}", "chainwork": f"{tip.chain_work:064x}", "orphans": view.snap.orphans,
            "blocks": [view.summary(b) for b in ids if b is not None]}


def check_certificate(header: bytes, certificate: bytes, target: int) -> dict:
    """``pouw.verify`` of a stored block's certificate against its header's target, timed, as the page shows it.

    The header's target is the one the chain expected: it was checked against
    the parent when the block arrived.
    """
    start = time.perf_counter()
    try:
        verify(header, certificate, target)
    except VerificationError as e:
        return {"valid": False, "rule": e.rule, "message": e.detail}
    return {"valid": True, "rule": None, "verify_ms": round((time.perf_counter() - start) * 1000, 3)}


def block_view(view: ChainView, ref: str, offset: int, limit: int, check: bool = False) -> dict:
    """A block's header fields and one page of its transactions (and its certificate checked, if ``check``)."""
    block_id = resolve_block(view, ref)
    block = load_block(view.state, block_id)
    h = block.header
    p = h.pre
    raw_entry = view.state.get(schema.index_key(block_id))
    entry = schema.decode_index(block_id, raw_entry) if raw_entry is not None else None
    on_main = view.on_main(block_id, p.height)
    next_id = view.block_id(p.height + 1) if on_main else None
    out = view.summary(block_id)
    txs = block.transactions[offset : offset + limit]
    fees = sum(t.body.fee for t in block.transactions if not isinstance(t, Coinbase))
    out.update({
        "version": p.version, "previousblockhash": p.prev_id.hex() if p.height else None,
        "nextblockhash": next_id.hex() if next_id else None, "tx_root": p.tx_root.hex(), "nonce": p.nonce,
        "difficulty": compute_work(p.target), "root_a": h.root_a.hex(), "root_b": h.root_b.hex(),
        "tile": [h.tile_i, h.tile_j] if p.height else None,
        "certificate_bytes": len(block.certificate.encode()) if block.certificate else 0,
        "chainwork": f"{entry.chain_work:064x}" if entry else None, "on_main_chain": on_main,
        "confirmations": view.height - p.height + 1 if on_main else 0, "fees": fees,
        "txs": [{"position": offset + i, **tx_fields(t, view.addresses)} for i, t in enumerate(txs)],
        "tx_offset": offset, "next_offset": offset + limit if offset + limit < len(block.transactions) else None,
        "certificate_check": (check_certificate(h.encode(), block.certificate.encode(), p.target)
                              if check and block.certificate is not None else None),
    })
    return out


def chain_tx_view(view: ChainView, tx_id: bytes) -> dict | None:
    """A transaction of the snapshot's main chain with its block and confirmations; None if it has none."""
    block_id = view.state.get(schema.tx_key(tx_id))
    if block_id is None:
        return None
    block = load_block(view.state, block_id)
    for position, tx in enumerate(block.transactions):
        if compute_tx_id(tx) == tx_id:
            return {**tx_fields(tx, view.addresses), "in_mempool": False, "blockhash": block_id.hex(),
                    "blockheight": block.height, "position": position, "time": block.header.pre.time,
                    "confirmations": view.height - block.height + 1}
    raise StorageError(f"transaction index points at block {block_id.hex()}, which lacks {tx_id.hex()}")


def _indexed_tx(view: ChainView, block_id: bytes, body: bytes, entry: addrindex.Entry) -> Transaction:
    """The transaction an address-index entry points at, sliced from its block's body and checked against its id."""
    try:
        (size,) = _U32.unpack_from(body, entry.offset)
        raw = body[entry.offset + 4 : entry.offset + 4 + size]
        tx: Transaction = decode_coinbase(raw) if entry.position == 0 else decode_tx(raw)
    except (struct.error, DecodeError) as e:
        raise StorageError(f"address index entry {entry.seq} points at no transaction of {block_id.hex()}: {e}") from e
    if compute_tx_id(tx) != entry.tx_id:
        raise StorageError(f"address index entry {entry.seq} points at another transaction of {block_id.hex()}")
    return tx


def address_history(view: ChainView, address: bytes, cursor: int | None, limit: int) -> dict:
    """Balance, nonce and one page of an address's main-chain transactions, newest first."""
    count, entries = addrindex.history(view.state, address, cursor, limit)
    body_of: tuple[bytes, bytes] | None = None  # one body at a time: a page's entries of one block are adjacent
    txs = []
    for e in entries:
        block_id = view.block_id(e.height)
        if block_id is None:
            raise StorageError(f"address index entry at height {e.height} is above the tip {view.height}")
        if body_of is None or body_of[0] != block_id:
            body_of = (block_id, view.state.get(schema.body_key(block_id)) or b"")
        tx = _indexed_tx(view, block_id, body_of[1], e)
        header = view.header(block_id)
        direction = {addrindex.ROLE_SENDER: "out", addrindex.ROLE_RECIPIENT: "in"}.get(e.role, "self")
        txs.append({**tx_fields(tx, view.addresses), "seq": e.seq, "direction": direction,
                    "blockheight": e.height, "blockhash": block_id.hex(), "position": e.position,
                    "time": header.pre.time if header else None, "confirmations": view.height - e.height + 1})
    acct = view.snap.get_account(address)
    last = entries[-1].seq if entries else 0
    return {"address": view.addresses.encode(address), "balance": acct.balance, "nonce": acct.nonce,
            "height": view.height, "tx_count": count, "txs": txs, "next_cursor": last if last > 0 else None}


def offer_line(info: OfferInfo, tip_height: int) -> dict:
    """An offer's row in the home page's table: ids, status, amounts, claimant and the height it can settle from."""
    full = info.to_json(tip_height, None)
    return {k: full[k] for k in ("offer_id", "job_id", "status", "live", "reward", "bond", "claimant",
                                 "offer_height", "claim_height", "settle_height", "final_height")}


def offer_history(info: OfferInfo) -> list[dict]:
    """The offer's transactions this node saw on its best chain, oldest first: offer, claim, then the final one."""
    out = []
    if info.offer_txid is not None:
        out.append({"event": "offer", "txid": info.offer_txid.hex(), "height": info.offer_height})
    if info.claim_txid is not None or info.claim_height is not None:
        out.append({"event": "claim", "txid": info.claim_txid.hex() if info.claim_txid else None,
                    "height": info.claim_height})
    if info.final_kind is not None:
        out.append({"event": JOB_KIND_NAMES.get(info.final_kind, f"kind-{info.final_kind}"),
                    "txid": info.final_txid.hex() if info.final_txid else None, "height": info.final_height})
    return out


def with_block_hashes(view: ChainView, history: list[dict]) -> list[dict]:
    """Each history event with the id of its block on the snapshot's main chain (None where the snapshot lacks it)."""
    return [{**e, "blockhash": _hex_or_none(view.block_id(e["height"]) if e["height"] is not None else None)}
            for e in history]


def _hex_or_none(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def mempool_txs(mempool: Mempool, addresses: Addresses, limit: int,
                involving: bytes | None = None) -> list[dict]:
    """Pending transactions, newest first (all, or those that touch ``involving``); call it on the event loop."""
    entries = mempool.entries()
    if involving is not None:
        entries = [e for e in entries if e.sender == involving
                   or (isinstance(e.tx.body, TxBody) and e.tx.body.to == involving)]
    newest = heapq.nlargest(limit, entries, key=lambda e: e.time)
    return [{**tx_fields(e.tx, addresses), "in_mempool": True, "time": e.time, "confirmations": 0} for e in newest]


class ExplorerMethods:
    """The explorer's views; each is one snapshot read in the work pool, plus the mempool read on the loop."""

    def __init__(self, chain: ChainHandle, mempool: Mempool, jobs: JobService, addresses: Addresses, *,
                 work: Executor, offers: OfferBook | None = None, products: ProductSource | None = None) -> None:
        self.chain = chain
        self.mempool = mempool
        self.jobs = jobs
        self.offers = offers
        self.products = products
        self.addresses = addresses
        self.work = work
        self.summaries = SummaryCache()
        genesis = make_genesis_block(chain.params)
        self.allocations: dict[bytes, list[dict]] = {}
        for position, tx in enumerate(genesis.transactions):
            assert isinstance(tx, Coinbase)
            self.allocations.setdefault(tx.to, []).append(
                {"txid": compute_tx_id(tx).hex(), "amount": tx.amount, "position": position})

    def _tip(self, view: ChainView) -> dict:
        """What every view but the home page adds, for the page's header: the network and the tip's height."""
        return {"chain": self.chain.params.name, "tip_height": view.height}

    async def _view(self, fn: Callable[[ChainView], T]) -> T:
        view = ChainView(self.chain.snapshot, self.addresses, self.summaries)
        return await asyncio.get_running_loop().run_in_executor(self.work, fn, view)

    def _offer_jobs(self, txs: list[dict]) -> list[dict]:
        """Fill the ``job_id`` of claims and finals from the offer book (on the event loop, where the book lives)."""
        if self.offers is not None:
            for t in txs:
                if t.get("offer_id") and t.get("job_id") is None:
                    info = self.offers.get(bytes.fromhex(t["offer_id"]))
                    if info is not None:
                        t["job_id"] = info.job_id.hex()
        return txs

    @rpc_method(params=[Param("blocks", {"type": "integer", "minimum": 1, "maximum": MAX_HOME_BLOCKS, "default": 20},
                              required=False, description="How many of the newest blocks to list."),
                        Param("txs", {"type": "integer", "minimum": 0, "maximum": MAX_HOME_TXS, "default": 20},
                              required=False, description="How many pending transactions to list, newest first."),
                        Param("offers", {"type": "integer", "minimum": 0, "maximum": MAX_HOME_OFFERS, "default": 20},
                              required=False, description="How many paid job offers to list, newest first.")],
                result={"type": "object"})
    async def getexplorerhome(self, blocks: int = 20, txs: int = 20, offers: int = 20) -> dict:
        """The explorer's home page: network, tip, difficulty, mempool, blocks, pending txs, jobs, job offers."""
        pending = self._offer_jobs(mempool_txs(self.mempool, self.addresses, txs))
        tip_height = self.chain.snapshot.height
        offer_lines = ([] if self.offers is None or offers == 0
                       else [{**offer_line(i, tip_height), "job_known": self._job_known(i.job_id)}
                             for i in self.offers.list(None, offers)])
        jobs = [{"job_id": j.job_id, "status": str(j.status), "shape": dict(zip("mkn", j.shape, strict=True)),
                 "blocks": len(j.blocks or []), "created": j.created}
                for j in reversed(self.jobs.list()[-MAX_HOME_JOBS:])]
        home = await self._view(lambda v: home_view(v, blocks))
        return {"chain": self.chain.params.name, **home,
                "mempool": {"size": len(self.mempool), "bytes": self.mempool.bytes, "txs": pending}, "jobs": jobs,
                "offers": offer_lines}

    @rpc_method(params=[Param("block", BLOCK_REF, description="Block id, or a height on the best chain."),
                        Param("offset", {"type": "integer", "minimum": 0, "maximum": 1 << 32, "default": 0},
                              required=False, description="Position of the first transaction listed."),
                        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_BLOCK_TXS, "default": 50},
                              required=False, description="How many transactions to list."),
                        Param("check_certificate", {"type": "boolean", "default": False}, required=False,
                              description="Also verify the block's certificate (pouw.verify) and time it.")],
                result={"type": "object"}, errors=[E.INVALID_ADDRESS_OR_KEY, E.INVALID_PARAMETER])
    async def getexplorerblock(self, block: str, offset: int = 0, limit: int = 50,
                               check_certificate: bool = False) -> dict:
        """A block's header fields, place in the chain, and one page of its transactions (``next_offset`` pages on)."""
        out = await self._view(lambda v: {**block_view(v, block, offset, limit, check_certificate), **self._tip(v)})
        self._offer_jobs(out["txs"])
        return out

    @rpc_method(params=[Param("txid", HEX32)], result={"type": "object"}, errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getexplorertx(self, txid: str) -> dict:
        """A transaction of any kind from the mempool or the best chain, with its block and confirmations."""
        tx_id = bytes.fromhex(txid)
        entry = self.mempool.get(tx_id)
        if entry is not None:
            return self._offer_jobs([{**tx_fields(entry.tx, self.addresses), "in_mempool": True, "time": entry.time,
                                      "confirmations": 0, "blockhash": None, "blockheight": None,
                                      **self._tip(ChainView(self.chain.snapshot, self.addresses))}])[0]
        found = await self._view(lambda v: _with(chain_tx_view(v, tx_id), self._tip(v)))
        if found is None:
            raise RpcError(E.INVALID_ADDRESS_OR_KEY,
                           f"transaction {txid.lower()} is neither in the mempool nor on the best chain")
        return self._offer_jobs([found])[0]

    @rpc_method(params=[Param("address", ADDRESS, description="bech32m address of this network."),
                        Param("cursor", {"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1},
                              required=False, description="The previous page's next_cursor (omit: newest)."),
                        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_ADDRESS_TXS, "default": 25},
                              required=False, description="How many transactions to list.")],
                result={"type": "object"}, errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getexploreraddress(self, address: str, cursor: int | None = None, limit: int = 25) -> dict:
        """An address: balance, nonce, pending transactions, and its best-chain transactions newest first, paged."""
        raw = self.addresses.decode(address)
        pending = self._offer_jobs(mempool_txs(self.mempool, self.addresses, MAX_ADDRESS_PENDING, involving=raw))
        out = await self._view(lambda v: address_history(v, raw, cursor, limit))
        self._offer_jobs(out["txs"])
        return {**out, "chain": self.chain.params.name, "next_nonce": self.mempool.pending_nonce(raw),
                "pending": pending,
                "genesis": self.allocations.get(raw, [])}

    @rpc_method(params=[Param("query", {"type": "string", "minLength": 1, "maxLength": MAX_QUERY},
                              description="A height, block id, txid, address, job id or offer id.")],
                result={"type": "object"}, errors=[E.INVALID_ADDRESS_OR_KEY, E.INVALID_PARAMETER])
    async def searchexplorer(self, query: str) -> dict:
        """What a search names: ``{"kind": "block" | "tx" | "address" | "offer" | "job", "id": ...}`` (the page)."""
        q = query.strip()
        if _HEIGHT_RE.match(q):
            block_id = await self._view(lambda v: resolve_block(v, q))
            return {"kind": "block", "id": block_id.hex(), "height": int(q)}
        if _HASH_RE.match(q):
            q = q.lower()
            key = bytes.fromhex(q)
            if self.mempool.get(key) is not None:
                return {"kind": "tx", "id": q}
            found = await self._view(lambda v: _find_hash(v, key))
            if found is not None:
                return {"kind": found, "id": q}
            if self.offers is not None and self.offers.get(key) is not None:
                return {"kind": "offer", "id": q}
            try:
                self.jobs.get(q)
            except JobError:
                raise RpcError(E.INVALID_ADDRESS_OR_KEY, f"no block, transaction, offer or job {q}") from None
            return {"kind": "job", "id": q}
        if q.lower().startswith(self.addresses.hrp + "1"):
            raw = self.addresses.decode(q)
            return {"kind": "address", "id": self.addresses.encode(raw)}
        raise RpcError(E.INVALID_PARAMETER, f"{q[:MAX_QUERY]!r} is not a height, a block id, a txid, a job id, an "
                       f"offer id or an address of this network ({self.addresses.hrp}1...)")

    @rpc_method(params=[Param("offer_id", HEX32, description="Offer id (hex), as getjoboffer takes it.")],
                result={"type": "object"}, errors=[E.OFFER_NOT_FOUND])
    async def getexploreroffer(self, offer_id: str) -> dict:
        """The explorer's offer page: ``offer`` (getjoboffer's dict), ``history`` (its offer, claim and final
        transactions with their blocks), ``job_known`` (this node holds the job's matrices) and the tip."""
        info = self.offers.get(bytes.fromhex(offer_id)) if self.offers is not None else None
        if info is None:
            raise RpcError(E.OFFER_NOT_FOUND, f"offer {offer_id.lower()} is not known to this node (never mined on "
                                              "its best chain, or final and evicted from its history)")
        offer = offer_json(info, self.chain.snapshot.height, self.mempool, self.products)
        history = offer_history(info)
        out = await self._view(lambda v: {"history": with_block_hashes(v, history), **self._tip(v)})
        return {"offer": offer, **out, "job_known": self._job_known(info.job_id)}

    def _job_known(self, job_id: bytes) -> bool:
        """Whether this node holds the job (its matrices: ``getmatmuljob`` answers), so a page may link to it."""
        try:
            self.jobs.get(job_id.hex())
        except JobError:
            return False
        return True


def _with(found: dict | None, extra: dict) -> dict | None:
    return None if found is None else {**found, **extra}


def _find_hash(view: ChainView, key: bytes) -> str | None:
    """``"block"`` for a stored block id, ``"tx"`` for a main-chain txid, else None."""
    if view.state.get(schema.index_key(key)) is not None:
        return "block"
    if view.state.get(schema.tx_key(key)) is not None:
        return "tx"
    return None
