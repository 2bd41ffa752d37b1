"""Mining RPC methods: miner state, templates, submitting and generating blocks, checking certificates.

``getblocktemplate`` serves external miners (``pouw-miner``) as in BIP 22:
every answer carries a ``longpollid``; a call that passes it back waits (no
thread, bounded: ``node.templates.TemplateWatch``) until the tip, the jobs or,
every few seconds, the mempool changed, or ``longpoll_timeout`` passed. A call
with ``worker`` also leases that miner the oldest waiting job
(``node.jobs.JobService.lease``): the template is then at the job's padded
shape and names the job's matrices (blobs), and the product goes back with
``submitmatmulresult`` (node/api/jobs.py). A block submitted with
``submitblock`` on a job's matrices is recorded on the job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor

from consensus.codec import decode_block, encode_transaction
from consensus.errors import ConsensusError, DecodeError
from consensus.validation import compute_expected_target
from pouw.errors import VerificationError
from pouw.header import Header, compute_work
from pouw.jobs import compute_job_id
from pouw.verify import verify

from ..chain import BlockStatus
from ..chainhandle import ChainHandle
from ..jobs import MINING, WORKER_PATTERN, JobService
from ..mempool import Mempool
from ..metrics import Metrics
from ..miner import Miner
from ..rpc import errors as E
from ..rpc.errors import RpcError
from ..rpc.registry import Param, rpc_method
from ..templates import LONGPOLL_ID_PATTERN, LONGPOLL_MAX_WAIT, LongPollBusy, TemplateMaker, TemplateWatch
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
                 jobs: JobService, addresses: Addresses, *, work: Executor, metrics: Metrics,
                 watch: TemplateWatch | None = None, claim_info: Callable[[], dict] | None = None) -> None:
        self.chain = chain
        self.claim_info = claim_info
        """The claim key's state (``node.claimer.Claimer.info``), shown by ``getmininginfo``."""
        self.miner = miner
        self.templates = templates
        self.mempool = mempool
        self.jobs = jobs
        self.addresses = addresses
        self.work = work
        self.metrics = metrics
        self.watch = watch or TemplateWatch(lambda: chain.tip_id, lambda: (len(mempool), mempool.bytes),
                                            jobs.version)

    @rpc_method(result={"type": "object"})
    async def getmininginfo(self) -> dict:
        """Miner state: address, backend, shape, matmuls and multiply-adds done, blocks found, difficulty, claims.

        ``claim``: the claim key's address (null without ``--claim-key``), the confirmations a claim needs before
        its product is served, claims sent and won (mined), settles sent and mined, and the claim products held.
        """
        miner = self.miner
        m, k, n = miner.shape
        tip = self.chain.snapshot.tip
        return {"mining": miner.running, "address": self.addresses.encode(miner.address),
                "backend": miner.backend.name, "shape": {"m": m, "k": k, "n": n}, "matmuls": miner.matmuls,
                "macs": miner.macs, "blocks_found": miner.blocks_found, "blocks": tip.height,
                "difficulty": compute_work(tip.target), "target": f"{tip.target:064x}",
                "pooledtx": len(self.mempool), "chain": self.chain.params.name,
                "jobs_queued": len(self.jobs.list("queued")),
                "claim": self.claim_info() if self.claim_info is not None else None}

    @rpc_method(params=[Param("address", ADDRESS, required=False,
                              description="Coinbase address (default: the miner's)."),
                        Param("longpollid", {"type": "string", "pattern": LONGPOLL_ID_PATTERN}, required=False,
                              description="Wait until the template differs from the one this id came with."),
                        Param("longpoll_timeout", {"type": "number", "minimum": 0, "maximum": LONGPOLL_MAX_WAIT},
                              required=False, description=f"Longest wait in seconds (default and most: "
                              f"{LONGPOLL_MAX_WAIT:g}); the unchanged template comes back after it."),
                        Param("worker", {"type": "string", "pattern": WORKER_PATTERN}, required=False,
                              description="An external miner's name: lease it a waiting job's work.")],
                errors=[E.INVALID_ADDRESS_OR_KEY, E.MISC_ERROR])
    async def getblocktemplate(self, address: str | None = None, longpollid: str | None = None,
                               longpoll_timeout: float | None = None, worker: str | None = None) -> dict:
        """A template to mine: HeaderPre (nonce 0), transactions, target, shape, longpollid and any leased job."""
        raw = self.addresses.decode(address) if address else self.miner.address
        if longpollid is not None:
            try:
                await self.watch.wait(longpollid, longpoll_timeout)
            except LongPollBusy as e:
                raise RpcError(E.MISC_ERROR, str(e)) from None
        taken = None
        if worker is not None:
            taken = await asyncio.get_running_loop().run_in_executor(self.work, self.jobs.lease, worker)
        pollid = self.watch.longpollid  # before building: a tip that moves meanwhile makes the next poll return
        if taken is not None:
            pm, pk, pn = taken[0].padded
            shape = (pm, pn, pk)
        else:
            m, k, n = self.miner.shape
            shape = (m, n, k)
        t = await self.templates.template(raw, shape)
        p = t.pre
        job = None
        if taken is not None:
            j, lease = taken
            jm, jk, jn = j.shape
            pm, pk, pn = j.padded
            job = {"job_id": j.job_id, "a": j.a, "b": j.b, "shape": {"m": jm, "k": jk, "n": jn},
                   "padded_shape": {"m": pm, "k": pk, "n": pn}, "worker": lease.worker,
                   "lease_expires": lease.expires}
        return {"height": p.height, "previousblockhash": p.prev_id.hex(), "time": p.time,
                "target": f"{p.target:064x}", "shape": {"m": p.m, "n": p.n, "k": p.k},
                "header_pre": p.encode().hex(), "tx_root": p.tx_root.hex(),
                "transactions": [encode_transaction(tx).hex() for tx in t.transactions],
                "longpollid": pollid, "job": job}

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
        self.watch.notify()  # long-polls wake now, not at the watch's next look
        await asyncio.get_running_loop().run_in_executor(self.work, self._record_job_block, block.header)
        return _SUBMIT_NOTES.get(sub.status)

    def _record_job_block(self, header: Header) -> None:
        """Record a block on the job being mined whose padded matrices it was mined on (their roots say so)."""
        pre = header.pre
        for job in self.jobs.list(MINING):
            m, k, n = job.shape
            if job.padded == (pre.m, pre.k, pre.n) and \
                    compute_job_id(m, k, n, header.root_a, header.root_b).hex() == job.job_id:
                self.jobs.add_block(job.job_id, header.block_id)

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
