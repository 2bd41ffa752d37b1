"""Mempool RPC methods: sending transfers, the pending set, and the devnet faucet."""

from __future__ import annotations

from consensus.codec import decode_tx
from consensus.errors import DecodeError, InvalidTx
from consensus.keys import devnet_keypairs
from consensus.tx import compute_tx_id, make_transfer
from consensus.types import Tx

from ..chainhandle import ChainHandle
from ..mempool import Mempool, MempoolError
from ..rpc import errors as E
from ..rpc.errors import RpcError
from ..rpc.registry import Param, rpc_method
from ..txintake import TxIntake
from .views import ADDRESS, HEX, HEX32, Addresses, rejection

FAUCET_KEY_INDEX = 9
"""The faucet pays from the last prefunded devnet account, so it never races the miner's or the user's key."""
FAUCET_MAX = 1000 * 10**8


class MempoolMethods:
    """Transfers in: ``sendrawtransaction`` and ``faucet``; the pending set: ``getrawmempool``, ``getmempoolinfo``."""

    def __init__(self, chain: ChainHandle, txs: TxIntake, mempool: Mempool, addresses: Addresses) -> None:
        self.chain = chain
        self.txs = txs
        self.mempool = mempool
        self.addresses = addresses

    async def _submit(self, tx: Tx) -> bytes:
        tx_id = compute_tx_id(tx)
        if await self.chain.read(lambda c: c.get_tx_block(tx_id)) is not None:
            raise RpcError(E.VERIFY_ALREADY_IN_CHAIN, "transaction already in the best chain")
        try:
            return await self.txs.submit(tx, source="rpc")
        except (MempoolError, InvalidTx) as e:
            raise rejection(E.VERIFY_REJECTED, e) from None

    @rpc_method(params=[Param("hexstring", HEX, description="An encoded transaction of any kind: a transfer or a "
                                                             "job transaction (offer, claim, accept, reject, settle, "
                                                             "refund, fraud).")], result=HEX32,
                errors=[E.DESERIALIZATION_ERROR, E.VERIFY_REJECTED, E.VERIFY_ALREADY_IN_CHAIN])
    async def sendrawtransaction(self, hexstring: str) -> str:
        """Validate a signed transaction (any kind), add it to the mempool and relay it; returns its txid.

        A refusal answers -26 with the rule first: a job transaction the offer's record does not allow at the
        next height says so (e.g. ``job-status: a claim needs an open offer, found it claimed``), a second job
        transaction for an offer with one pending says ``offer-busy``.
        """
        try:
            tx = decode_tx(bytes.fromhex(hexstring))
        except DecodeError as e:
            raise RpcError(E.DESERIALIZATION_ERROR, f"transaction decode failed: {e}") from None
        return (await self._submit(tx)).hex()

    @rpc_method(params=[Param("verbose", {"type": "boolean", "default": False}, required=False)])
    async def getrawmempool(self, verbose: bool = False) -> object:
        """Txids in the mempool, or (verbose) their sender, nonce, fee, size and arrival time."""
        entries = self.mempool.entries()
        if not verbose:
            return [e.tx_id.hex() for e in entries]
        return {e.tx_id.hex(): {"from": self.addresses.encode(e.sender), "nonce": e.nonce, "fee": e.fee,
                                "size": e.size, "time": e.time} for e in entries}

    @rpc_method(result={"type": "object"})
    async def getmempoolinfo(self) -> dict:
        """Mempool size, bytes and limits."""
        mp = self.mempool
        return {"size": len(mp), "bytes": mp.bytes, "maxcount": mp.max_count, "maxbytes": mp.max_bytes}

    @rpc_method(params=[Param("address", ADDRESS),
                        Param("amount", {"type": "integer", "minimum": 1, "maximum": FAUCET_MAX,
                                         "default": 10 * 10**8},
                              required=False, description="Base units (default 10 coins).")],
                errors=[E.INVALID_ADDRESS_OR_KEY, E.MISC_ERROR], control=True)
    async def faucet(self, address: str, amount: int = 10 * 10**8) -> dict:
        """Send devnet coins from the faucet account (devnet and regtest only); returns the txid."""
        params = self.chain.params
        if params.name not in ("devnet", "regtest"):
            raise RpcError(E.MISC_ERROR, f"the faucet exists on devnet and regtest, not {params.name}")
        key = devnet_keypairs(FAUCET_KEY_INDEX + 1)[FAUCET_KEY_INDEX]
        to = self.addresses.decode(address)
        tx = make_transfer(key, params.chain_id, self.mempool.pending_nonce(key.address), to, amount, 1000)
        txid = await self._submit(tx)
        return {"txid": txid.hex(), "amount": amount, "from": self.addresses.encode(key.address)}
