"""The node's JSON-RPC methods: chain, transactions, mining, certificates, network, control.

Conventions (the README's JSON-RPC reference says the same):
- hashes, ids and raw blocks/transactions are lowercase hex without ``0x``;
- amounts are integers in base units (1 coin = 10^8 base units), never floats;
- addresses are bech32m with the network's prefix;
- errors use the JSON-RPC reserved codes and the application codes of
  ``node.rpc.errors`` (``-5`` unknown block/address, ``-8`` bad parameter,
  ``-22`` undecodable bytes, ``-25`` block verification failed, ``-26``
  transaction rejected, ``-27`` already known).

The MatMul job methods and the ``/blobs`` routes are in ``node.api_jobs``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from consensus.address import decode_address
from consensus.codec import decode_block, decode_tx, encode_block, encode_transaction, encode_tx
from consensus.errors import AddressError, ConsensusError, DecodeError, InvalidTx
from consensus.keys import devnet_keypairs
from consensus.tx import compute_tx_id, get_sender, make_transfer
from consensus.types import Block, Coinbase, Tx
from consensus.validation import compute_expected_target
from pouw.errors import VerificationError
from pouw.header import compute_work
from pouw.verify import verify

from .chain import DUPLICATE
from .mempool import MempoolError
from .rpc import errors as E
from .rpc.errors import RpcError
from .rpc.registry import Param, Registry

if TYPE_CHECKING:
    from .node import Node

HEX32 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
HEX = {"type": "string", "pattern": "^([0-9a-fA-F]{2})*$"}
ADDRESS = {"type": "string", "minLength": 1, "maxLength": 128}
U64 = {"type": "integer", "minimum": 0, "maximum": (1 << 64) - 1}
FAUCET_KEY_INDEX = 9
"""The faucet pays from the last prefunded devnet account, so it never races the miner's or the user's key."""
FAUCET_MAX = 1000 * 10**8


def _id(text: str) -> bytes:
    return bytes.fromhex(text)


def block_json(node: Node, block: Block, verbosity: int) -> dict:
    h = block.header
    p = h.pre
    block_id = h.block_id
    entry = node.chain.get_entry(block_id)
    on_main = node.chain.is_main_chain(block_id)
    out = {
        "hash": block_id.hex(), "height": p.height, "version": p.version,
        "previousblockhash": p.prev_id.hex(), "tx_root": p.tx_root.hex(), "time": p.time,
        "target": f"{p.target:064x}", "nonce": p.nonce, "shape": {"m": p.m, "n": p.n, "k": p.k},
        "root_a": h.root_a.hex(), "root_b": h.root_b.hex(), "tile": [h.tile_i, h.tile_j],
        "confirmations": node.chain.height - p.height + 1 if on_main else 0,
        "chainwork": f"{entry.chain_work:064x}" if entry else None,
        "size": len(encode_block(block)),
        "certificate_bytes": len(block.certificate.encode()) if block.certificate else 0,
        "nextblockhash": None,
    }
    nxt = node.chain.get_block_id(p.height + 1) if on_main else None
    if nxt is not None:
        out["nextblockhash"] = nxt.hex()
    if verbosity >= 2:
        out["tx"] = [tx_json(node, t) for t in block.transactions]
    else:
        out["tx"] = [compute_tx_id(t).hex() for t in block.transactions]
    return out


def tx_json(node: Node, tx) -> dict:
    if isinstance(tx, Coinbase):
        return {"txid": compute_tx_id(tx).hex(), "type": "coinbase", "height": tx.height,
                "to": node.encode_address(tx.to), "amount": tx.amount, "hex": encode_transaction(tx).hex()}
    b = tx.body
    return {"txid": compute_tx_id(tx).hex(), "type": "transfer", "from": node.encode_address(get_sender(tx)),
            "to": node.encode_address(b.to), "amount": b.amount, "fee": b.fee, "nonce": b.nonce,
            "memo": b.memo.hex(), "chain_id": b.chain_id, "hex": encode_tx(tx).hex()}


def register_chain_methods(reg: Registry, node: Node) -> None:
    chain = lambda: node.chain  # noqa: E731 - the chain object exists once the node started

    def address_of(text: str) -> bytes:
        try:
            return decode_address(text, node.params.hrp)
        except (AddressError, ValueError) as e:
            raise RpcError(E.INVALID_ADDRESS_OR_KEY, f"invalid address {text!r}: {e}") from None

    async def load_block(hash_hex: str) -> Block:
        block = await node.call_chain(chain().get_block, _id(hash_hex))
        if block is None:
            raise RpcError(E.INVALID_ADDRESS_OR_KEY, f"block {hash_hex} not found")
        return block

    @reg.method(result={"type": "object"})
    async def getblockchaininfo() -> dict:
        """Chain state: network, height, best block, difficulty, target, chain work and median time."""
        tip = chain().tip
        times = chain().get_parent_info(tip.block_id).recent_times
        return {
            "chain": node.params.name, "blocks": tip.height, "headers": tip.height,
            "bestblockhash": tip.block_id.hex(), "difficulty": compute_work(tip.target),
            "target": f"{tip.target:064x}", "chainwork": f"{tip.chain_work:064x}",
            "mediantime": sorted(times)[len(times) // 2], "time": tip.time,
            "verificationprogress": 1.0, "orphans": chain().orphan_count(), "genesis": chain().genesis_id.hex(),
        }

    @reg.method(result={"type": "integer"})
    async def getblockcount() -> int:
        """Height of the best chain's tip."""
        return chain().height

    @reg.method(result=HEX32)
    async def getbestblockhash() -> str:
        """Id of the best chain's tip."""
        return chain().tip_id.hex()

    @reg.method(params=[Param("height", {"type": "integer", "minimum": 0}, description="Block height.")],
                result=HEX32, errors=[E.INVALID_PARAMETER])
    async def getblockhash(height: int) -> str:
        """Id of the best-chain block at a height."""
        block_id = chain().get_block_id(height)
        if block_id is None:
            raise RpcError(E.INVALID_PARAMETER, f"block height {height} out of range (tip is {chain().height})")
        return block_id.hex()

    @reg.method(params=[Param("blockhash", HEX32, description="Block id."),
                        Param("verbosity", {"type": "integer", "minimum": 0, "maximum": 2, "default": 1},
                              required=False, description="0: hex; 1: JSON with txids; 2: JSON with txs.")],
                errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getblock(blockhash: str, verbosity: int = 1):
        """A block as hex (verbosity 0) or JSON (1, 2)."""
        block = await load_block(blockhash)
        return encode_block(block).hex() if verbosity == 0 else block_json(node, block, verbosity)

    @reg.method(params=[Param("blockhash", HEX32), Param("verbose", {"type": "boolean", "default": True},
                                                         required=False)],
                errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getblockheader(blockhash: str, verbose: bool = True):
        """A block header as hex (212 bytes) or JSON."""
        block = await load_block(blockhash)
        if not verbose:
            return block.header.encode().hex()
        out = block_json(node, block, 1)
        del out["tx"]
        return out

    @reg.method(result={"type": "array"})
    async def getchaintips() -> list:
        """Every branch tip known: the active one, valid side branches and invalid ones."""
        def tips():
            c = chain()
            index = {e.block_id: e for e in c.entries()}
            parents = {e.parent for e in index.values()}
            out = []
            for e in index.values():
                if e.block_id in parents:
                    continue
                fork = e
                while not c.is_main_chain(fork.block_id):
                    fork = index[fork.parent]
                status = ("active" if e.block_id == c.tip_id else "invalid" if c.is_invalid(e.block_id)
                          else "valid-fork")
                out.append({"height": e.height, "hash": e.block_id.hex(), "branchlen": e.height - fork.height,
                            "status": status, "chainwork": f"{e.chain_work:064x}"})
            return sorted(out, key=lambda t: -t["height"])
        return await node.call_chain(tips)

    @reg.method(params=[Param("txid", HEX32)], errors=[E.INVALID_ADDRESS_OR_KEY])
    async def gettransaction(txid: str) -> dict:
        """A transaction from the mempool or the best chain, with its block and confirmations."""
        tx_id = _id(txid)
        entry = node.mempool.get(tx_id)
        if entry is not None:
            return {**tx_json(node, entry.tx), "confirmations": 0, "blockhash": None, "in_mempool": True}
        block_id = await node.call_chain(chain().get_tx_block, tx_id)
        if block_id is None:
            raise RpcError(E.INVALID_ADDRESS_OR_KEY, f"transaction {txid} is neither in the mempool nor on the best chain")
        block = await load_block(block_id.hex())
        for t in block.transactions:
            if compute_tx_id(t) == tx_id:
                return {**tx_json(node, t), "blockhash": block_id.hex(), "blockheight": block.height,
                        "confirmations": chain().height - block.height + 1, "in_mempool": False}
        raise RpcError(E.INTERNAL_ERROR, "transaction index points at a block without the transaction")

    @reg.method(params=[Param("hexstring", HEX, description="An encoded transfer.")], result=HEX32,
                errors=[E.DESERIALIZATION_ERROR, E.VERIFY_REJECTED, E.VERIFY_ALREADY_IN_CHAIN])
    async def sendrawtransaction(hexstring: str) -> str:
        """Validate a signed transfer, add it to the mempool and relay it; returns its txid."""
        try:
            tx = decode_tx(bytes.fromhex(hexstring))
        except DecodeError as e:
            raise RpcError(E.DESERIALIZATION_ERROR, f"transaction decode failed: {e}") from None
        return (await submit_tx(tx)).hex()

    async def submit_tx(tx: Tx) -> bytes:
        if await node.call_chain(chain().get_tx_block, compute_tx_id(tx)) is not None:
            raise RpcError(E.VERIFY_ALREADY_IN_CHAIN, "transaction already in the best chain")
        try:
            return await node.submit_tx(tx, source="rpc")
        except MempoolError as e:
            raise RpcError(E.VERIFY_REJECTED, f"{e.reason}: {e}") from None
        except InvalidTx as e:
            raise RpcError(E.VERIFY_REJECTED, f"{getattr(e, 'rule', type(e).__name__)}: {e}") from None

    @reg.method(params=[Param("verbose", {"type": "boolean", "default": False}, required=False)])
    async def getrawmempool(verbose: bool = False):
        """Txids in the mempool, or (verbose) their sender, nonce, fee, size and arrival time."""
        entries = node.mempool.entries()
        if not verbose:
            return [e.tx_id.hex() for e in entries]
        return {e.tx_id.hex(): {"from": node.encode_address(e.sender), "nonce": e.nonce, "fee": e.fee,
                                "size": e.size, "time": e.time} for e in entries}

    @reg.method(result={"type": "object"})
    async def getmempoolinfo() -> dict:
        """Mempool size, bytes and limits."""
        mp = node.mempool
        return {"size": len(mp), "bytes": mp.bytes, "maxcount": mp.max_count, "maxbytes": mp.max_bytes}

    @reg.method(params=[Param("address", ADDRESS)], errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getaccount(address: str) -> dict:
        """Balance and nonce of an address at the tip, and the nonce its next transfer should use."""
        raw = address_of(address)
        acct = await node.call_chain(chain().get_account, raw)
        return {"address": address, "balance": acct.balance, "nonce": acct.nonce,
                "next_nonce": node.mempool.pending_nonce(raw), "height": chain().height}

    @reg.method(result={"type": "object"})
    async def getmininginfo() -> dict:
        """Miner state: address, backend, shape, matmuls and multiply-adds done, blocks found, difficulty."""
        miner = node.miner
        m, k, n = miner.shape
        tip = chain().tip
        return {"mining": miner.running, "address": node.encode_address(miner.address), "backend": miner.backend.name,
                "shape": {"m": m, "k": k, "n": n}, "matmuls": miner.matmuls, "macs": miner.macs,
                "blocks_found": miner.blocks_found, "blocks": tip.height, "difficulty": compute_work(tip.target),
                "target": f"{tip.target:064x}", "pooledtx": len(node.mempool), "chain": node.params.name,
                "jobs_queued": len(node.jobs.list("queued"))}

    @reg.method(params=[Param("address", ADDRESS, required=False, description="Coinbase address (default: the miner's).")],
                errors=[E.INVALID_ADDRESS_OR_KEY])
    async def getblocktemplate(address: str | None = None) -> dict:
        """A template to mine: HeaderPre (nonce 0), the transactions it commits to, target and shape."""
        raw = address_of(address) if address else node.miner.address
        m, k, n = node.miner.shape
        t = await node.make_template(raw, (m, n, k))
        p = t.pre
        return {"height": p.height, "previousblockhash": p.prev_id.hex(), "time": p.time, "target": f"{p.target:064x}",
                "shape": {"m": p.m, "n": p.n, "k": p.k}, "header_pre": p.encode().hex(), "tx_root": p.tx_root.hex(),
                "transactions": [encode_transaction(tx).hex() for tx in t.transactions]}

    @reg.method(params=[Param("hexdata", HEX, description="An encoded block.")],
                errors=[E.DESERIALIZATION_ERROR, E.VERIFY_ERROR, E.VERIFY_ALREADY_IN_CHAIN])
    async def submitblock(hexdata: str):
        """Validate and accept a block (the same path as blocks from peers); null on success."""
        try:
            block = decode_block(bytes.fromhex(hexdata))
        except DecodeError as e:
            raise RpcError(E.DESERIALIZATION_ERROR, f"block decode failed: {e}") from None
        try:
            result = await node.submit_block_checked(block, source="rpc")
        except ConsensusError as e:
            raise RpcError(E.VERIFY_ERROR, f"{getattr(e, 'rule', type(e).__name__)}: {e}") from None
        if result.status == DUPLICATE:
            raise RpcError(E.VERIFY_ALREADY_IN_CHAIN, "duplicate: block already known")
        return None if result.status != "orphan" else "orphan: parent unknown, held until it arrives"

    @reg.method(params=[Param("nblocks", {"type": "integer", "minimum": 1, "maximum": 1000}),
                        Param("address", ADDRESS)],
                result={"type": "array"}, errors=[E.INVALID_ADDRESS_OR_KEY, E.MISC_ERROR])
    async def generatetoaddress(nblocks: int, address: str) -> list:
        """Mine blocks paying ``address`` right now (devnet and regtest only); returns their ids."""
        if node.params.name not in ("devnet", "regtest"):
            raise RpcError(E.MISC_ERROR, f"generatetoaddress is for devnet and regtest, not {node.params.name}")
        ids = await node.miner.generate(nblocks, address_of(address))
        return [i.hex() for i in ids]

    @reg.method(params=[Param("header", HEX, description="212-byte header, hex."),
                        Param("certificate", HEX, description="Certificate, hex."),
                        Param("expected_target", {"type": "string", "pattern": "^(0x)?[0-9a-fA-F]{1,64}$"},
                              required=False, description="Hex target; default: the chain's, when the parent is known.")])
    async def verifycertificate(header: str, certificate: str, expected_target: str | None = None) -> dict:
        """Check a header and certificate (PROTOCOL.md section 8); says which rule failed, if any."""
        h, c = bytes.fromhex(header), bytes.fromhex(certificate)
        target, source = None, "none: internal consistency only"
        if expected_target is not None:
            target, source = int(expected_target, 16), "given"
        elif len(h) == 212:
            from pouw.header import Header
            parent = Header.decode(h).pre.prev_id
            if chain().get_entry(parent) is not None:
                info = await node.call_chain(chain().get_parent_info, parent)
                target = compute_expected_target(info, Header.decode(h).pre.time, node.params)
                source = "chain"
        start = time.perf_counter()
        try:
            v = await node.run_work(verify, h, c, target)
        except VerificationError as e:
            return {"valid": False, "rule": e.rule, "message": e.detail, "target_source": source}
        ms = (time.perf_counter() - start) * 1000
        node.metrics.certificate_verify_seconds.observe(ms / 1000)
        return {"valid": True, "rule": None, "block_id": v.block_id.hex(), "ticket": v.ticket.hex(),
                "target_source": source, "verify_ms": round(ms, 3)}

    @reg.method(result={"type": "object"})
    async def verifychain() -> dict:
        """Replay the best chain from genesis and compare accounts, indexes and tip with the database."""
        r = await node.call_chain(chain().verify_chain)
        return {"ok": r.ok, "tip": r.tip.hex(), "height": r.height, "blocks_replayed": r.blocks_replayed,
                "accounts_checked": r.accounts_checked, "problems": list(r.problems)}

    @reg.method(params=[Param("address", ADDRESS),
                        Param("amount", {"type": "integer", "minimum": 1, "maximum": FAUCET_MAX, "default": 10 * 10**8},
                              required=False, description="Base units (default 10 coins).")],
                errors=[E.INVALID_ADDRESS_OR_KEY, E.MISC_ERROR])
    async def faucet(address: str, amount: int = 10 * 10**8) -> dict:
        """Send devnet coins from the faucet account (devnet and regtest only); returns the txid."""
        if node.params.name not in ("devnet", "regtest"):
            raise RpcError(E.MISC_ERROR, f"the faucet exists on devnet and regtest, not {node.params.name}")
        key = devnet_keypairs(FAUCET_KEY_INDEX + 1)[FAUCET_KEY_INDEX]
        to = address_of(address)
        tx = make_transfer(key, node.params.chain_id, node.mempool.pending_nonce(key.address), to, amount, 1000)
        txid = await submit_tx(tx)
        return {"txid": txid.hex(), "amount": amount, "from": node.encode_address(key.address)}

    @reg.method(result={"type": "array"})
    async def getpeerinfo() -> list:
        """Connected peers: id, addresses, direction, score, their height and connection time."""
        return node.network.peer_info() if node.network is not None else []


    @reg.method(result={"type": "object"})
    async def getnetworkinfo() -> dict:
        """Node identity and networking: version, peer id, listen addresses, connections."""
        from . import __version__
        net = node.network
        return {"version": __version__, "subversion": f"/pouw-node:{__version__}/", "network": node.params.name,
                "chain_id": node.params.chain_id, "peer_id": net.host.peer_id if net else None,
                "localaddresses": net.host.listen_addrs if net else [],
                "connections": len(net.peer_info()) if net else 0, "networkactive": net is not None,
                "syncing": net.syncing if net else False, "uptime": int(time.time() - node.started)}

    def network():
        if node.network is None:
            raise RpcError(E.MISC_ERROR, "networking is off (--no-p2p)")
        return node.network

    @reg.method(params=[Param("node", {"type": "string", "minLength": 1, "maxLength": 512},
                              description="Peer multiaddr ending in /p2p/<peer id>."),
                        Param("command", {"type": "string", "enum": ["add", "remove", "onetry"]},
                              description="add: keep connected; remove: stop; onetry: dial once.")],
                errors=[E.MISC_ERROR, E.INVALID_PARAMETER])
    async def addnode(node: str, command: str):
        """Connect to a peer (and keep the connection), stop doing so, or dial once."""
        try:
            await network().addnode(node, command)  # `node` is the multiaddr here (Bitcoin's name)
        except Exception as e:  # noqa: BLE001 - dial errors of every kind become one RPC error
            raise RpcError(E.MISC_ERROR, f"addnode {node}: {e}") from None
        return None

    @reg.method(params=[Param("peer_id", {"type": "string", "minLength": 1, "maxLength": 128}),
                        Param("command", {"type": "string", "enum": ["add", "remove"]}),
                        Param("bantime", {"type": "integer", "minimum": 1, "maximum": 10 * 365 * 86400},
                              required=False, description="Seconds (default 24 hours).")],
                errors=[E.MISC_ERROR])
    async def setban(peer_id: str, command: str, bantime: int | None = None):
        """Ban a peer (and disconnect it) or lift its ban; bans survive restarts."""
        await network().setban(peer_id, command, bantime, "setban RPC")
        return None

    @reg.method(result={"type": "array"})
    async def listbanned() -> list:
        """Banned peers with the reason and when the ban ends."""
        return network().listbanned()

    @reg.method(result={"type": "string"})
    async def stop() -> str:
        """Stop the node cleanly (after this answer is sent)."""
        asyncio.get_running_loop().call_later(0.05, node.request_stop)
        return "pouwd stopping"
