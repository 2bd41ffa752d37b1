"""Job-market RPC methods (section 11): ``getjoboffer`` and ``listjoboffers``, read from the node's ``OfferBook``.

Every answer is bounded: one offer, or at most ``MAX_LIST`` (1,000). The
``product`` member comes from an optional ``ProductSource`` (the claim
products of ``node.claims``) and is ``null`` without one or when it holds
nothing for the offer; ``pending`` lists the txids of the offer's job
transactions in this node's mempool.
"""

from __future__ import annotations

from typing import Protocol

from ..chainhandle import ChainHandle
from ..mempool import Mempool
from ..offers import MAX_LIST, STATUSES, OfferBook, OfferInfo
from ..rpc import errors as E
from ..rpc.errors import RpcError
from ..rpc.registry import Param, rpc_method
from .views import HEX32


class ProductSource(Protocol):
    """What the RPC needs of ``node.claims.ClaimProducts``: a held product's description for an offer."""

    def product_info(self, offer_id: bytes) -> dict | None: ...


def offer_json(info: OfferInfo, tip_height: int, mempool: Mempool, products: ProductSource | None) -> dict:
    """The ``getjoboffer`` dict of one offer (also ``listjoboffers``' items and ``getmatmuljob``'s ``offers``)."""
    product = products.product_info(info.offer_id) if products is not None else None
    return info.to_json(tip_height, product, mempool.pending_for_offer(info.offer_id))


class OfferMethods:
    """Reads of the offer book; nothing here writes."""

    def __init__(self, chain: ChainHandle, book: OfferBook, mempool: Mempool,
                 products: ProductSource | None = None) -> None:
        self.chain = chain
        self.book = book
        self.mempool = mempool
        self.products = products

    def offers_for_job(self, job_id: bytes) -> list[dict]:
        """``getjoboffer`` dicts of every offer carrying ``job_id``, newest first (for ``getmatmuljob``)."""
        height = self.chain.snapshot.height
        return [offer_json(i, height, self.mempool, self.products) for i in self.book.offers_for_job(job_id)]

    @rpc_method(params=[Param("offer_id", HEX32, description="Offer id (hex), as sendrawtransaction's offer "
                                                              "created it: HK(K(\"offer\"), client || nonce).")],
                result={"type": "object"}, errors=[E.OFFER_NOT_FOUND])
    async def getjoboffer(self, offer_id: str) -> dict:
        """A paid job offer: the on-chain record while live, this node's history (claim, final tx) once final."""
        info = self.book.get(bytes.fromhex(offer_id))
        if info is None:
            raise RpcError(E.OFFER_NOT_FOUND, f"offer {offer_id} is not known to this node (never mined on its "
                                              "best chain, or final and evicted from its history)")
        return offer_json(info, self.chain.snapshot.height, self.mempool, self.products)

    @rpc_method(params=[Param("status", {"type": "string", "enum": list(STATUSES)}, required=False,
                              description="Only offers with this status."),
                        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIST, "default": 100},
                              required=False, description=f"At most this many (1 to {MAX_LIST}).")],
                result={"type": "array"})
    async def listjoboffers(self, status: str | None = None, limit: int = 100) -> list:
        """Paid job offers this node knows, newest first, optionally only those with a status."""
        height = self.chain.snapshot.height
        return [offer_json(i, height, self.mempool, self.products) for i in self.book.list(status, limit)]
