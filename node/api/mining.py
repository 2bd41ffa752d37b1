"""Mining RPC methods: miner state, templates, submitting and generating blocks, checking certificates."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

from consensus.codec import decode_block, encode_transaction
from consensus.errors import ConsensusError, DecodeError
from consensus.validation import compute_expected_target
from pouw.errors import VerificationError
from pouw.header import Header, compute_work
from pouw.verify import verify

from ..chain import BlockStatus
from ..chainhandle import ChainHandle
from ..jobs import JobService
from ..mempool import Mempool
from ..metrics import Metrics
from ..miner import Miner
from ..rpc import errors as E
from ..rpc.errors import RpcError
from ..rpc.registry import Param, rpc_method
from ..templates import TemplateMaker
from .views import ADDRESS, HEX, Addresses, rejection

_SUBMIT_NOTES = {
    BlockStatus.ORPHAN: "orphan: parent unknown, held until it arrives",
    BlockStatus.LOW_WORK: "low-work: its branch is too far behind the tip; not stored",
    BlockStatus.FORK_TOO_DEEP: "fork-too-deep: its branch forks below max_fork_depth; not stored",
}
"""``submitblock``'s answer for a block that was not refused but is not on the main chain (BIP 22: a reason
string; ``null`` when it connected or was stored on a side branch)."""

class MiningMethods:
    """The miner and blocks in: ``getmininginfo``, ``getblocktemplate``, ``submitblock``, ``generatetoaddress``."""

    def __init__(self, chain: ChainHandle, miner: Miner, templates: TemplateMaker, mempool: Mempool,
                 jobs: JobService, addresses: Addresses, *, work: Executor, metrics: Metrics) -> None:
        self.chain = chain
        self.miner = miner
        self.templates = templates
        self.mempool = mempool
        self.jobs = jobs
        self.addresses = addresses
        self.work = work
        self.metrics = metrics

    @rpc_method(result={"type": "object"})
    async def getmininginfo(self) -> dict:
        """Miner state: address, backend, shape, matmuls and multiply-adds done, blocks found, difficulty."""
        miner = self.miner
        m, k, n = miner.shape
        tip = self.chain.snapshot.tip
        return {"mining": miner.running, "address": self.addresses.encode(miner.address),
                "backend": miner.backend.name, "shape": {"m": m, "k": k, "n": n}, "matmuls": miner.matmuls,
                "macs": miner.macs, "blocks_found": miner.blocks_found, "blocks": tip.height,
                "difficulty": compute_work(tip.target), "target": f"{tip.target:064x}",
                "pooledtx": len(self.mempool), "chain": self.chain.params.name,
                "jobs_queued": len(self.jobs.list("queued"))}

    @rpc_method(params=[Param("address", ADDRESS, required=False,
                              description="Coinbase address (default: the miner's).")],
                errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getblocktemplate(self, address: str | None = None) -> dict:
        """A template to mine: HeaderPre (nonce 0), the transactions it commits to, target and shape."""
        raw = self.addresses.decode(address) if address else self.miner.address
        m, k, n = self.miner.shape
        t = await self.templates.template(raw, (m, n, k))
        p = t.pre
        return {"height": p.height, "previousblockhash": p.prev_id.hex(), "time": p.time,
                "target": f"{p.target:064x}", "shape": {"m": p.m, "n": p.n, "k": p.k},
                "header_pre": p.encode().hex(), "tx_root": p.tx_root.hex(),
                "transactions": [encode_transaction(tx).hex() for tx in t.transactions]}

    @rpc_method(params=[Param("hexdata", HEX, description="An encoded block.")],
                errors=[E.DESERIALIZATION_ERROR, E.VERIFY_ERROR, E.VERIFY_ALREADY_IN_CHAIN])
    async def submitblock(self, hexdata: str) -> str | None:
        """Validate and accept a block (the same path as blocks from peers); null on success."""
        raw = bytes.fromhex(hexdata)
        try:
            block = decode_block(raw)
        except DecodeError as e:
            raise RpcError(E.DESERIALIZATION_ERROR, f"block decode failed: {e}") from None
        try:
            sub = await self.chain.submit_block(block, "rpc", size=len(raw))
        except ConsensusError as e:
            raise rejection(E.VERIFY_ERROR, e) from None
        if sub.status == BlockStatus.DUPLICATE:
            raise RpcError(E.VERIFY_ALREADY_IN_CHAIN, "duplicate: block already known")
        return _SUBMIT_NOTES.get(sub.status)

    @rpc_method(params=[Param("nblocks", {"type": "integer", "minimum": 1, "maximum": 1000}),
                        Param("address", ADDRESS)],
                result={"type": "array"}, errors=[E.INVALID_ADDRESS_OR_KEY, E.MISC_ERROR], control=True)
    async def generatetoaddress(self, nblocks: int, address: str) -> list:
        """Mine blocks paying ``address`` right now (devnet and regtest only); returns their ids."""
        name = self.chain.params.name
        if name not in ("devnet", "regtest"):
            raise RpcError(E.MISC_ERROR, f"generatetoaddress is for devnet and regtest, not {name}")
        ids = await self.miner.generate(nblocks, self.addresses.decode(address))
        return [i.hex() for i in ids]

    @rpc_method(params=[Param("header", HEX, description="212-byte header, hex."),
                        Param("certificate", HEX, description="Certificate, hex."),
                        Param("expected_target", {"type": "string", "pattern": "^(0x)?[0-9a-fA-F]{1,64}$"},
                              required=False,
                              description="Hex target; default: the chain's, when the parent is known.")])
    async def verifycertificate(self, header: str, certificate: str, expected_target: str | None = None) -> dict:
        """Check a header and certificate (docs/protocol.md section 8); says which rule failed, if any."""
        h, c = bytes.fromhex(header), bytes.fromhex(certificate)
        target, source = None, "none: internal consistency only"
        if expected_target is not None:
            target, source = int(expected_target, 16), "given"
        elif len(h) == 212:
            pre = Header.decode(h).pre
            params = self.chain.params

            def expected(chain):
                if chain.get_entry(pre.prev_id) is None:
                    return None
                return compute_expected_target(chain.get_parent_info(pre.prev_id), params)

            target = await self.chain.read(expected)
            if target is not None:
                source = "chain"
        start = time.perf_counter()
        try:
            v = await asyncio.get_running_loop().run_in_executor(self.work, verify, h, c, target)
        except VerificationError as e:
            return {"valid": False, "rule": e.rule, "message": e.detail, "target_source": source}
        ms = (time.perf_counter() - start) * 1000
        self.metrics.certificate_verify_seconds.observe(ms / 1000)
        return {"valid": True, "rule": None, "block_id": v.block_id.hex(), "ticket": v.ticket.hex(),
                "target_source": source, "verify_ms": round(ms, 3)}
