"""Chain RPC methods: the best chain, blocks, headers, branch tips, transactions, accounts, verifychain."""

from __future__ import annotations

from consensus.codec import encode_block
from consensus.tx import compute_tx_id
from pouw.header import compute_work

from ..chain import ChainService
from ..chainhandle import ChainHandle
from ..mempool import Mempool
from ..rpc import errors as E
from ..rpc.errors import RpcError
from ..rpc.registry import Param, rpc_method
from .views import ADDRESS, HEX32, Addresses, block_json, load_block, tx_json


def chain_tips(chain: ChainService) -> list[dict]:
    """``getchaintips`` (call it on the chain thread)."""
    index = {e.block_id: e for e in chain.entries()}
    parents = {e.parent for e in index.values()}
    out = []
    for e in index.values():
        if e.block_id in parents:
            continue
        fork = e
        while not chain.is_main_chain(fork.block_id):
            fork = index[fork.parent]
        status = ("active" if e.block_id == chain.tip_id else "invalid" if chain.is_invalid(e.block_id)
                  else "valid-fork")
        out.append({"height": e.height, "hash": e.block_id.hex(), "branchlen": e.height - fork.height,
                    "status": status, "chainwork": f"{e.chain_work:064x}"})
    return sorted(out, key=lambda t: -t["height"])


class ChainMethods:
    """Reads of the chain; every one goes through the chain handle (its thread or its snapshot)."""

    def __init__(self, chain: ChainHandle, mempool: Mempool, addresses: Addresses) -> None:
        self.chain = chain
        self.mempool = mempool
        self.addresses = addresses

    @rpc_method(result={"type": "object"})
    async def getblockchaininfo(self) -> dict:
        """Chain state: network, height, best block, difficulty, target, chain work, median time, job market."""
        snap = self.chain.snapshot
        tip = snap.tip
        p = self.chain.params
        market = {"window": p.job_window, "bond_bp": p.bond_bp, "deposit_bp": p.deposit_bp,
                  "fraud_fee_mult": p.fraud_fee_mult, "min_fee_per_byte": p.min_fee_per_byte,
                  "max_job_lifetime": p.max_job_lifetime, "max_job_mn": p.max_job_mn, "max_job_k": p.max_job_k}
        return {
            "chain": self.chain.params.name, "blocks": tip.height, "headers": tip.height,
            "bestblockhash": tip.block_id.hex(), "difficulty": compute_work(tip.target),
            "target": f"{tip.target:064x}", "chainwork": f"{tip.chain_work:064x}",
            "mediantime": snap.median_time, "time": tip.time,
            "verificationprogress": 1.0, "orphans": snap.orphans, "genesis": snap.genesis_id.hex(),
            "job_market": market,
        }

    @rpc_method(result={"type": "integer"})
    async def getblockcount(self) -> int:
        """Height of the best chain's tip."""
        return self.chain.snapshot.height

    @rpc_method(result=HEX32)
    async def getbestblockhash(self) -> str:
        """Id of the best chain's tip."""
        return self.chain.snapshot.tip_id.hex()

    @rpc_method(params=[Param("height", {"type": "integer", "minimum": 0}, description="Block height.")],
                result=HEX32, errors=[E.INVALID_PARAMETER])
    async def getblockhash(self, height: int) -> str:
        """Id of the best-chain block at a height."""
        block_id, tip = await self.chain.read(lambda c: (c.get_block_id(height), c.height))
        if block_id is None:
            raise RpcError(E.INVALID_PARAMETER, f"block height {height} out of range (tip is {tip})")
        return block_id.hex()

    @rpc_method(params=[Param("blockhash", HEX32, description="Block id."),
                        Param("verbosity", {"type": "integer", "minimum": 0, "maximum": 2, "default": 1},
                              required=False, description="0: hex; 1: JSON with txids; 2: JSON with txs.")],
                errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getblock(self, blockhash: str, verbosity: int = 1) -> object:
        """A block as hex (verbosity 0) or JSON (1, 2)."""
        place = await load_block(self.chain, blockhash)
        return encode_block(place.block).hex() if verbosity == 0 else block_json(place, self.addresses, verbosity)

    @rpc_method(params=[Param("blockhash", HEX32), Param("verbose", {"type": "boolean", "default": True},
                                                         required=False)],
                errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getblockheader(self, blockhash: str, verbose: bool = True) -> object:
        """A block header as hex (212 bytes) or JSON."""
        place = await load_block(self.chain, blockhash)
        if not verbose:
            return place.block.header.encode().hex()
        out = block_json(place, self.addresses, 1)
        del out["tx"]
        return out

    @rpc_method(result={"type": "array"})
    async def getchaintips(self) -> list:
        """Every branch tip known: the active one, valid side branches and invalid ones."""
        return await self.chain.read(chain_tips)

    @rpc_method(params=[Param("txid", HEX32)], errors=[E.INVALID_ADDRESS_OR_KEY])
    async def gettransaction(self, txid: str) -> dict:
        """A transaction from the mempool or the best chain, with its block and confirmations."""
        tx_id = bytes.fromhex(txid)
        entry = self.mempool.get(tx_id)
        if entry is not None:
            return {**tx_json(entry.tx, self.addresses), "confirmations": 0, "blockhash": None, "in_mempool": True}
        block_id = await self.chain.read(lambda c: c.get_tx_block(tx_id))
        if block_id is None:
            raise RpcError(E.INVALID_ADDRESS_OR_KEY,
                           f"transaction {txid} is neither in the mempool nor on the best chain")
        place = await load_block(self.chain, block_id.hex())
        for t in place.block.transactions:
            if compute_tx_id(t) == tx_id:
                return {**tx_json(t, self.addresses), "blockhash": block_id.hex(), "blockheight": place.block.height,
                        "confirmations": place.tip_height - place.block.height + 1, "in_mempool": False}
        raise RpcError(E.INTERNAL_ERROR, "transaction index points at a block without the transaction")

    @rpc_method(params=[Param("address", ADDRESS)], errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getaccount(self, address: str) -> dict:
        """Balance and nonce of an address at the tip, and the nonce its next transfer should use."""
        raw = self.addresses.decode(address)
        snap = self.chain.snapshot
        acct = snap.get_account(raw)
        return {"address": address, "balance": acct.balance, "nonce": acct.nonce,
                "next_nonce": self.mempool.pending_nonce(raw), "height": snap.height}

    @rpc_method(result={"type": "object"})
    async def verifychain(self) -> dict:
        """Replay the best chain from genesis and compare accounts, indexes and tip with the database."""
        r = await self.chain.read(lambda c: c.verify_chain())
        return {"ok": r.ok, "tip": r.tip.hex(), "height": r.height, "blocks_replayed": r.blocks_replayed,
                "accounts_checked": r.accounts_checked, "records_checked": r.records_checked,
                "supply": r.supply, "problems": list(r.problems)}
