"""Paid MatMul jobs from the wallet's side (docs/protocol.md section 11): build, check and send job transactions.

The CLI (``wallet.job_commands``) is a thin layer over these functions, and
tests drive them directly. Everything the wallet sends it first checks
against the offer's record as the node reports it and the tip height, so a
step the rules would refuse is refused here with the height from which it
becomes possible, not with the node's rule text alone; the node still checks
everything (``sendrawtransaction`` answers -26 with the rule).

Nothing the node says about a product is trusted: the wallet recomputes the
job id of ``A`` and ``B``, the ``root_C`` of a delivered ``C`` and runs
Freivalds' test itself before it accepts, and builds a fraud proof from its
own matrices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from consensus.address import encode_address
from consensus.codec import encode_tx
from consensus.jobmarket import compute_offer_id, min_bond, min_deposit, padded_dims
from consensus.keys import KeyPair
from consensus.networks import NetworkParams
from consensus.tx import compute_min_fee, compute_tx_id, make_job_tx
from consensus.types import (
    JOB_KIND_NAMES,
    KIND_ACCEPT,
    KIND_CLAIM,
    KIND_FRAUD,
    KIND_OFFER,
    KIND_REFUND,
    KIND_REJECT,
    KIND_SETTLE,
    JobPayload,
    OfferPayload,
    Tx,
)
from pouw.commit import commit_pair
from pouw.jobs import compute_job_id, freivalds_check
from pouw.matrix import pad_pair
from pouw.tiles import compute_root_c

from .rpc import RpcError

HEX32_RE = re.compile(r"^[0-9a-f]{64}$")
OFFER_NOT_FOUND = -48
JOB_NOT_FOUND = -43
METHOD_NOT_FOUND = -32601
VERIFY_REJECTED = -26
DEFAULT_DEADLINE_BLOCKS = 100
NPY_HEADER_MAX = 4096
"""Bytes an ``.npy`` header may take beside the data (NumPy writes 128)."""


class JobNode(Protocol):
    """What the market functions need of a node: JSON-RPC calls and the ``/blobs`` routes (``RpcClient``)."""

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any: ...

    def batch(self, calls: list[tuple[str, list]]) -> list[Any]: ...

    def put_blob(self, data: bytes, *, product_of: str | None = None, claim_of: str | None = None) -> dict: ...

    def get_blob(self, digest: str, *, max_bytes: int | None = None) -> bytes: ...


class MarketError(ValueError):
    """A job-market step that cannot be taken now (or ever); the message says why and, when it can, from when."""


class NoLiveOffer(MarketError):
    """A job id that no live offer carries (it may still be a free job)."""


@dataclass(frozen=True)
class Sent:
    """A job transaction the node took into its mempool."""

    kind: str
    txid: str
    offer_id: str
    sender: str
    fee: int
    nonce: int

    def to_json(self) -> dict:
        return {"kind": self.kind, "txid": self.txid, "offer_id": self.offer_id, "from": self.sender,
                "fee": self.fee, "nonce": self.nonce}


def parse_hex32(text: str, what: str = "an offer id or job id") -> str:
    t = text.strip().lower()
    if not HEX32_RE.match(t):
        raise MarketError(f"{what} is 64 hex digits, found {text!r}; see the offers with: pouw-wallet job list")
    return t


# --- the node's parameters and offers ------------------------------------------------------------


def market_params(node: JobNode, network: NetworkParams) -> tuple[NetworkParams, int]:
    """The network's parameters with the node's ``job_market`` values, and the tip height."""
    info = node.call("getblockchaininfo")
    jm = info.get("job_market") if isinstance(info, dict) else None
    if not isinstance(jm, dict):
        raise MarketError("the node has no job market (getblockchaininfo has no job_market); paid jobs need a node "
                          "of consensus revision 2")
    if info.get("chain") != network.name:
        raise MarketError(f"the node runs {info.get('chain')}, but the wallet is a {network.name} wallet")
    params = replace(network, job_window=int(jm["window"]), bond_bp=int(jm["bond_bp"]),
                     deposit_bp=int(jm["deposit_bp"]), fraud_fee_mult=int(jm["fraud_fee_mult"]),
                     min_fee_per_byte=int(jm["min_fee_per_byte"]), max_job_lifetime=int(jm["max_job_lifetime"]),
                     max_job_mn=int(jm["max_job_mn"]), max_job_k=int(jm["max_job_k"]))
    return params, int(info["blocks"])


def get_offer(node: JobNode, offer_id: str) -> dict:
    """``getjoboffer``: the record (live) or the node's history of it (final); ``MarketError`` if unknown."""
    try:
        return node.call("getjoboffer", offer_id)
    except RpcError as e:
        if e.code == OFFER_NOT_FOUND:
            raise MarketError(f"no offer {offer_id} is known to the node ({e.message})") from None
        raise


def resolve_offer(node: JobNode, text: str) -> dict:
    """The offer named by ``text``: an offer id, or a job id that exactly one live offer carries."""
    ident = parse_hex32(text)
    try:
        return node.call("getjoboffer", ident)
    except RpcError as e:
        if e.code != OFFER_NOT_FOUND:
            raise
    try:
        job = node.call("getmatmuljob", ident)
    except RpcError as e:
        if e.code == JOB_NOT_FOUND:
            raise MarketError(f"{ident} is neither an offer nor a job the node knows; see: pouw-wallet job list") \
                from None
        raise
    offers = [o for o in job.get("offers") or [] if o.get("live")]
    if not offers:
        raise NoLiveOffer(f"no live offer carries job {ident}")
    if len(offers) > 1:
        ids = ", ".join(o["offer_id"] for o in offers)
        raise MarketError(f"{len(offers)} live offers carry job {ident} ({ids}); name one by its offer id")
    return offers[0]


def settle_height(offer: dict, params: NetworkParams) -> int | None:
    """The first height at which a block may settle a claimed offer (``claim_height + W + 1``)."""
    if offer.get("claim_height") is None:
        return None
    return int(offer["claim_height"]) + params.job_window + 1


# --- building and sending ------------------------------------------------------------------------


def build_job_tx(key: KeyPair, params: NetworkParams, nonce: int, kind: int, id_: bytes,
                 payload: JobPayload) -> Tx:
    """A signed job transaction paying the smallest fee the rules allow (``min_fee_per_byte`` per byte).

    The fee is a fixed-width field, so the size measured with fee 0 is the size with the real fee.
    """
    draft = make_job_tx(key, params.chain_id, nonce, kind, id_, payload, 0)
    return make_job_tx(key, params.chain_id, nonce, kind, id_, payload, compute_min_fee(draft, params.min_fee_per_byte))


def send_job_tx(node: JobNode, key: KeyPair, params: NetworkParams, kind: int, id_: bytes,
                payload: JobPayload, offer_id: bytes | None = None) -> Sent:
    """Build, sign and send one job transaction with the sender's next nonce (pending ones counted)."""
    sender = encode_address(key.address, params.hrp)
    nonce = int(node.call("getaccount", sender)["next_nonce"])
    tx = build_job_tx(key, params, nonce, kind, id_, payload)
    try:
        txid = node.call("sendrawtransaction", encode_tx(tx).hex())
    except RpcError as e:
        if e.code == VERIFY_REJECTED:
            raise MarketError(f"the node refused the {JOB_KIND_NAMES[kind]}: {e.message}; nothing was sent") from None
        raise
    if txid != compute_tx_id(tx).hex():
        raise MarketError(f"the node answered txid {txid}, expected {compute_tx_id(tx).hex()}")
    oid = offer_id if offer_id is not None else (compute_offer_id(key.address, nonce) if kind == KIND_OFFER else id_)
    return Sent(JOB_KIND_NAMES[kind], txid, oid.hex(), sender, tx.body.fee, nonce)


def fee_of(params: NetworkParams, kind: int, payload: JobPayload) -> int:
    """The fee ``build_job_tx`` would pay for this kind and payload (any key, any nonce)."""
    from consensus.keys import keypair_from_private

    return build_job_tx(keypair_from_private(bytes(32)), params, 0, kind, bytes(32), payload).body.fee


@dataclass(frozen=True)
class OfferPlan:
    """An offer to send: the job's roots and the amounts at stake."""

    job_id: bytes
    payload: OfferPayload

    def to_json(self) -> dict:
        p = self.payload
        return {"job_id": self.job_id.hex(), "m": p.m, "k": p.k, "n": p.n, "reward": p.reward,
                "deposit": p.deposit, "bond": p.bond, "deadline": p.deadline}


def plan_offer(a: np.ndarray, b: np.ndarray, params: NetworkParams, tip: int, reward: int,
               deposit: int | None = None, bond: int | None = None, deadline_blocks: int | None = None) -> OfferPlan:
    """The offer for ``(A, B)``: roots of the zero-padded pair, bond and deposit at least the rules' minimum.

    The deadline is ``tip + blocks`` (``min(100, max_job_lifetime)`` by default): valid for an offer
    included in any of the next ``blocks - 1`` blocks.
    """
    m, k = a.shape
    n = b.shape[1]
    if not (1 <= m <= params.max_job_mn and 1 <= n <= params.max_job_mn and 1 <= k <= params.max_job_k):
        raise MarketError(f"a paid job is at most {params.max_job_mn}x{params.max_job_k} @ "
                          f"{params.max_job_k}x{params.max_job_mn}, found {m}x{k} @ {k}x{n}")
    if reward < 1:
        raise MarketError("a paid job's reward is at least 1 base unit")
    blocks = min(DEFAULT_DEADLINE_BLOCKS, params.max_job_lifetime) if deadline_blocks is None else deadline_blocks
    if not 2 <= blocks <= params.max_job_lifetime:
        raise MarketError(f"--deadline is between 2 and {params.max_job_lifetime} blocks (max_job_lifetime), "
                          f"found {blocks}")
    pair = commit_pair(*pad_pair(np.ascontiguousarray(a), np.ascontiguousarray(b)))
    job_id = compute_job_id(m, k, n, pair.root_a, pair.root_b)
    draft = OfferPayload(m, k, n, pair.root_a, pair.root_b, reward, 0, 0, tip + blocks)
    low_bond = min_bond(draft, params)
    bond = low_bond if bond is None else bond
    if bond < low_bond:
        raise MarketError(f"the bond is at least {low_bond} base units here ({params.bond_bp} bp of the reward, and "
                          f"{params.fraud_fee_mult}x the fee of this job's fraud proof), found {bond}")
    low_deposit = min_deposit(replace(draft, bond=bond), params)
    deposit = low_deposit if deposit is None else deposit
    if deposit < low_deposit:
        raise MarketError(f"the deposit is at least {low_deposit} base units here ({params.deposit_bp} bp of the "
                          f"reward, and never below the bond), found {deposit}")
    return OfferPlan(job_id, replace(draft, deposit=deposit, bond=bond))


def reserve_fees(params: NetworkParams, m: int, k: int, n: int) -> int:
    """What a client keeps beside an offer (section 11's honest path): the fees of a fraud proof and a reject."""
    from consensus.jobmarket import compute_fraud_size

    return params.min_fee_per_byte * compute_fraud_size(m, k, n) + fee_of(params, KIND_REJECT, None)


# --- the row conditions, checked before sending --------------------------------------------------


def check_sendable(kind: int, offer: dict, params: NetworkParams, tip: int, sender: str) -> None:
    """Raise ``MarketError`` unless a ``kind`` transaction from ``sender`` fits ``offer`` in the next block.

    The next block has height ``tip + 1``; the message gives the height from which a step becomes
    possible when it is only too early.
    """
    name = JOB_KIND_NAMES[kind]
    status, oid = offer.get("status"), offer.get("offer_id")
    h = tip + 1
    if not offer.get("live"):
        raise MarketError(f"offer {oid} is final ({status}"
                          + (f" by {offer['final_txid']} at height {offer['final_height']}" if offer.get("final_txid")
                             else "") + "): nothing more can be sent for it")
    client_only = kind in (KIND_ACCEPT, KIND_REJECT, KIND_REFUND)
    if client_only and sender != offer.get("client"):
        raise MarketError(f"only the client {offer.get('client')} may send a {name} for offer {oid}; this wallet "
                          "does not hold that address")
    if kind in (KIND_CLAIM, KIND_REFUND):
        if status != "open":
            raise MarketError(f"a {name} needs an open offer; offer {oid} is {status}"
                              + (f" (claimed at height {offer.get('claim_height')})" if status == "claimed" else ""))
        deadline = int(offer["deadline"])
        if kind == KIND_CLAIM and h > deadline:
            raise MarketError(f"offer {oid} took claims up to its deadline, height {deadline}; the chain is at "
                              f"{tip}. Its client may refund it")
        if kind == KIND_REFUND and h <= deadline:
            raise MarketError(f"a refund becomes possible in the block at height {deadline + 1} (after the "
                              f"deadline {deadline}); the chain is at height {tip}")
        return
    if status != "claimed":
        raise MarketError(f"a {name} needs a claimed offer; offer {oid} is {status}"
                          + (" (nobody has claimed it yet)" if status == "open" else ""))
    end = int(offer["claim_height"]) + params.job_window
    if kind == KIND_SETTLE and h <= end:
        raise MarketError(f"a settle becomes possible in the block at height {end + 1} (claim height "
                          f"{offer['claim_height']} + W {params.job_window} + 1); the chain is at height {tip}")
    if kind in (KIND_REJECT, KIND_FRAUD) and h > end:
        raise MarketError(f"the challenge window of offer {oid} ended at height {end}; the chain is at {tip}. "
                          "It settles to the claimant now (anyone may send: pouw-wallet job settle)")


# --- products ------------------------------------------------------------------------------------


def product_bytes_limit(offer: dict) -> int:
    """Largest ``.npy`` file an offer's product may be: ``4 m n`` bytes of int32 and a header."""
    return 4 * int(offer["m"]) * int(offer["n"]) + NPY_HEADER_MAX


def check_claimed_product(offer: dict, c: np.ndarray) -> bytes:
    """``root_C`` of ``c`` after checking it has the offer's shape and dtype; ``MarketError`` otherwise."""
    m, n = int(offer["m"]), int(offer["n"])
    if c.shape != (m, n) or c.dtype != np.int32:
        raise MarketError(f"the product is a {c.shape} {c.dtype} matrix; offer {offer['offer_id']} needs an int32 "
                          f"{m}x{n} one")
    m_p, _, n_p = padded_dims(m, int(offer["k"]), n)
    return compute_root_c(c, m_p, n_p)


@dataclass(frozen=True)
class Verdict:
    """What a client's checks say of a delivered product."""

    root_c_ok: bool
    """The product's ``root_C`` is the claim's (else it is not the claimed product at all)."""
    freivalds_ok: bool
    wrong_tile: tuple[int, int] | None
    """A wrong tile found with Freivalds' residual (``None`` when the product is right)."""


def judge_product(offer: dict, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Verdict:
    """Check ``c`` against the claim's ``root_C`` and with Freivalds; find a wrong tile if it is wrong."""
    from .fraudproof import find_wrong_tile

    root = check_claimed_product(offer, c)
    if offer.get("root_c") is None or root.hex() != offer["root_c"]:
        return Verdict(False, False, None)
    job_id = bytes.fromhex(offer["job_id"])
    if freivalds_check(a, b, c, job_id):
        return Verdict(True, True, None)
    return Verdict(True, False, find_wrong_tile(a, b, c, job_id))
